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
