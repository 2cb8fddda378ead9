"""An upload refused before its handler runs still reads its data lines."""

from __future__ import annotations

from tests.helpers import Clients


async def test_an_upload_before_login_swallows_its_data_and_answers_after_the_dot(
        clients: Clients) -> None:
    raw = await clients.raw()
    await raw.line()  # banner
    raw.send("@up /upload a.txt 2")
    raw.send("aGk=")
    raw.send("/ping")  # still data: it must not run
    raw.send(".")
    raw.send("@after /ping")
    lines = await raw.until(lambda line: line.startswith("@after "))
    errors = [line for line in lines if line.startswith("@up ! ")]
    assert len(errors) == 1 and errors[0].startswith("@up ! not-logged-in:")
    assert lines.index(errors[0]) == 0  # nothing answered the data lines
    assert sum(1 for line in lines if "pong" in line) == 1


async def test_a_damaged_line_among_a_refused_uploads_data_does_not_end_it(
        clients: Clients) -> None:
    raw = await clients.raw()
    await raw.line()  # banner
    raw.send("@up /upload a.txt 2")
    raw.send(b"QUJD" * 1100 + b"\r\n")  # over the 4096-byte line limit: damaged data
    raw.send(b"aGk\xc3(\r\n")  # not UTF-8: damaged data too
    raw.send("/ping")  # still data: it must not run
    raw.send(".")
    raw.send("@after /ping")
    lines = await raw.until(lambda line: line.startswith("@after "))
    # Each damaged line is told by its own framing error, as in an upload that runs.
    assert [line for line in lines if line.startswith("! ")] == [
        "! line-too-long: that line was over the limit of 4096 bytes and was dropped: "
        "send shorter lines, or share a long text as a file with /upload.",
        "! invalid-utf8: that line was not valid UTF-8 and was dropped: send text "
        "encoded as UTF-8."]
    # The refusal is told once, after the ".", and nothing after it ran.
    errors = [line for line in lines if line.startswith("@up ! ")]
    assert len(errors) == 1 and errors[0].startswith("@up ! not-logged-in:")
    assert lines.index(errors[0]) == len(lines) - 2
    assert sum(1 for line in lines if "pong" in line) == 1
