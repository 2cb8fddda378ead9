"""Previews: ASCII art, PDF metadata, text heads; hostile files get error previews."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time
from pathlib import Path

import pytest

from chatd.content import previews
from chatd.content.previews import Job, clean, sniff
from tests.content import image, member_of, pdf, png_declaring, text_file, upload
from tests.helpers import Clients

CONTROL = {chr(c) for c in (*range(0x00, 0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


def assert_safe(preview: str) -> None:
    """Printable characters and newlines only: no escape sequence, no carriage return."""
    assert not CONTROL & set(preview), repr(preview)


async def preview_of(clients: Clients, name: str, data: bytes) -> dict[str, object]:
    alice = await clients.user("alice")
    if clients.server.services.rooms.find("general") is None:
        await member_of(alice, "general")
    reply = await upload(alice, name, data, "general")
    assert reply.ok, reply.final
    message = next(line for line in reply.lines if line["type"] == "message")
    file: dict[str, object] = message["file"]
    assert_safe(str(file["preview"]))
    return file


@pytest.mark.parametrize(("name", "fmt", "mode"), [
    ("a.png", "PNG", "RGBA"), ("b.jpg", "JPEG", "RGB"), ("c.gif", "GIF", "P"),
    ("d.webp", "WEBP", "RGB")])
async def test_images_become_ascii_art_within_the_width(clients: Clients, name: str, fmt: str,
                                                        mode: str) -> None:
    file = await preview_of(clients, name, image(fmt, (400, 300), mode))
    header, *art = str(file["preview"]).split("\n")
    assert header == f"{fmt} image, 400x300"
    assert art and any(line.strip() for line in art)
    assert all(len(line) <= 60 for line in art)
    assert len(art) <= 30
    assert set("".join(art)) <= set(previews.RAMP)
    # The dark square in the middle and the light border differ in the art.
    middle = art[len(art) // 2]
    assert middle[len(middle) // 2] != art[1][-1]


async def test_a_sixteen_bit_grey_image_keeps_its_shades(clients: Clients) -> None:
    # A 16-bit grey PNG (scans, scientific images) opens as Pillow's "I;16": taken
    # to 8 bits by clipping, everything over 255 of 65535 was white, all "@".
    from PIL import Image

    picture = Image.new("I;16", (60, 10))
    for x in range(60):
        for y in range(10):
            picture.putpixel((x, y), x * 65535 // 59)  # black to white, left to right
    out = io.BytesIO()
    picture.save(out, "PNG")
    file = await preview_of(clients, "grey16.png", out.getvalue())
    header, *art = str(file["preview"]).split("\n")
    assert header == "PNG image, 60x10"
    row = art[len(art) // 2]
    assert row[0] == " " and row[-1] == "@", row
    assert len(set(row)) >= len(previews.RAMP) - 1, row  # every shade in between


async def test_the_art_width_follows_the_configuration(db_path: Path) -> None:
    from tests.helpers import start_server

    server = await start_server(db_path, files__preview_width=20)
    clients = Clients(server)
    try:
        file = await preview_of(clients, "wide.png", image("PNG", (1000, 100)))
        art = str(file["preview"]).split("\n")[1:]
        assert max(len(line) for line in art) <= 20 and len(art) >= 1
    finally:
        await clients.close()
        await server.stop()


async def test_pdf_preview_shows_its_metadata(clients: Clients) -> None:
    file = await preview_of(clients, "report.pdf", pdf(pages=3))
    lines = str(file["preview"]).split("\n")
    assert lines[0].startswith("PDF document, 3 pages")
    assert "Title: Quarterly Report" in lines
    assert "Author: Alice Example" in lines
    assert "Producer: chatd tests" in lines
    assert "Created: 2026-01-02 03:04" in lines


async def test_text_preview_is_the_first_ten_sanitised_lines(clients: Clients) -> None:
    data = b"\x1b[31mred\x1b[0m and \x07bell\ttab\r\n" + text_file(20)
    file = await preview_of(clients, "log.txt", data)
    lines = str(file["preview"]).split("\n")
    assert len(lines) == 10
    assert lines[0].startswith("[31mred[0m and bell")
    assert lines[1] == "line 1: the quick brown fox" and lines[9] == "line 9: the quick brown fox"


async def test_other_files_show_type_and_size(clients: Clients) -> None:
    file = await preview_of(clients, "data.bin", bytes(range(256)) * 8)
    assert file["mime"] == "application/octet-stream"
    assert file["preview"] == "application/octet-stream, 2.0 KiB"


async def test_a_decompression_bomb_gets_an_error_preview(clients: Clients) -> None:
    started = time.monotonic()
    file = await preview_of(clients, "bomb.png", png_declaring(50000, 50000))
    assert file["mime"] == "image/png"
    assert "no preview" in str(file["preview"]) and "too large" in str(file["preview"])
    assert time.monotonic() - started < 5
    # The server is still fine.
    alice = await clients.user("alice")
    assert (await alice.command("/ping")).ok


@pytest.mark.parametrize(("name", "data"), [
    ("cut.png", image("PNG", (200, 200))[:300]),
    ("junk.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 100),
    ("fake.gif", b"GIF89a" + b"\xff" * 50),
])
async def test_broken_files_get_an_error_preview(clients: Clients, name: str, data: bytes) -> None:
    file = await preview_of(clients, name, data)
    assert "no preview" in str(file["preview"]), file["preview"]


async def test_a_preview_that_overruns_is_stopped(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"hello\n")
    # A stand-in for a decoder that hangs: the child process sleeps instead of working.
    monkeypatch.setattr(previews, "_command", lambda job: ["/bin/sleep", "30"])
    started = time.monotonic()
    text = await previews.preview(Job(str(path), "text/plain", 6, 60, 1000, 1 << 29, 2), 0.5)
    assert text == "text/plain, 6 bytes: no preview (timed out)"
    assert time.monotonic() - started < 3


async def test_previews_of_many_uploads_at_once_run_a_few_at_a_time(
        clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each preview is a process of up to files.preview_memory: uploads from many
    # connections at once must not start one each, all together.
    running = tmp_path / "running"
    running.mkdir()
    seen = tmp_path / "seen"
    # A stand-in preview process that notes how many run beside it.
    script = (f'mkdir {running}/$$; ls {running} | wc -l >> {seen}; sleep 0.2; '
              f'rmdir {running}/$$; echo \'{{"preview": "x"}}\'')
    monkeypatch.setattr(previews, "_command", lambda job: ["/bin/sh", "-c", script])
    users = [await clients.user(f"user{i}") for i in range(12)]
    await member_of(users[0], "general", *users[1:])
    replies = await asyncio.gather(*(upload(u, "t.txt", b"hi\n", "general") for u in users))
    assert all(reply.ok for reply in replies)
    counts = [int(line) for line in seen.read_text().split()]
    assert len(counts) == len(users)
    assert max(counts) <= 4, counts  # previews.MAX_RUNNING


def test_previews_run_with_limits_in_the_child(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"one\ntwo\n")
    job = Job(str(path), "text/plain", 8, 60, 1000, 1 << 29, 2)
    assert asyncio.run(previews.preview(job, 10)) == "one\ntwo"


@pytest.mark.parametrize(("head", "name", "mime"), [
    (image("PNG"), "x.txt", "image/png"),             # content wins over the name
    (image("JPEG"), "x", "image/jpeg"),
    (image("GIF", mode="P"), "x", "image/gif"),
    (image("WEBP"), "x", "image/webp"),
    (b"%PDF-1.4\n...", "x.bin", "application/pdf"),
    (b"PK\x03\x04rest", "doc.docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (b"PK\x03\x04rest", "x.png", "application/zip"),
    (b"# Title\nhello\n", "README.md", "text/markdown"),
    (b'{"a": 1}', "d.json", "application/json"),
    (b"plain words", "noext", "text/plain"),
    (b"plain words", "fake.png", "text/plain"),       # a text file named .png is text
    (b"\x00\x01\x02\x03", "song.mp3", "audio/mpeg"),  # unknown bytes: the name may say
    (b"\x00\x01\x02\x03", "fake.png", "application/octet-stream"),
    ("héllo wörld".encode()[:-1], "t", "text/plain"),  # a character cut at the end
])
def test_sniffing(head: bytes, name: str, mime: str) -> None:
    assert sniff(head[:previews.HEAD], name) == mime


def test_clean_keeps_only_printable_text() -> None:
    text = "a\x1b[2Jb\r\nc\td\u202ee\x9b31m\n" + "x" * 500
    cleaned = clean(text)
    assert cleaned == "a[2Jb\nc   de31m\n" + "x" * previews.LINE_CHARS
    assert_safe(cleaned)


# -- the preview functions themselves, in this process (the server runs them in a child) ----


def job_for(tmp_path: Path, name: str, data: bytes, width: int = 60) -> Job:
    path = tmp_path / name
    path.write_bytes(data)
    return Job(str(path), sniff(data[:previews.HEAD], name), len(data), width, 10_000_000,
               1 << 29, 5)


@pytest.mark.parametrize(("name", "data", "start"), [
    ("a.png", image("PNG", (90, 10), "LA"), "PNG image, 90x10\n"),
    ("b.jpg", image("JPEG", (2000, 1000)), "JPEG image, 2000x1000\n"),
    ("tall.gif", image("GIF", (10, 400), "P"), "GIF image, 10x400\n"),
    ("d.pdf", pdf(pages=1), "PDF document, 1 page, "),
    ("e.txt", b"a\nb\n", "a\nb"),
    ("f.zip", b"PK\x03\x04" + bytes(100), "application/zip, 104 bytes"),
])
def test_make_preview(tmp_path: Path, name: str, data: bytes, start: str) -> None:
    text = previews.make_preview(job_for(tmp_path, name, data))
    assert text.startswith(start)
    art = text.split("\n")[1:] if "image" in start else []
    assert all(len(line) <= 60 for line in art)
    assert len(art) <= 30


def test_make_preview_refuses_what_is_too_big_or_broken(tmp_path: Path) -> None:
    # Just over the limit (Pillow only warns there) and far over it (Pillow refuses).
    bomb = previews.make_preview(job_for(tmp_path, "b.png", png_declaring(3500, 3000)))
    assert bomb == "image/png, 74 bytes: no preview (image too large)"
    huge = previews.make_preview(job_for(tmp_path, "h.png", png_declaring(50000, 5000)))
    assert huge.endswith("(image too large)")
    cut = previews.make_preview(job_for(tmp_path, "c.png", image("PNG", (64, 64))[:200]))
    assert cut.endswith("no preview (unreadable file)")
    empty = previews.make_preview(job_for(tmp_path, "e.pdf", b"%PDF-1.4\n%%EOF\n"))
    assert empty.endswith("no preview (unreadable file)")


def test_a_pdf_without_metadata(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    out = tmp_path / "plain.pdf"
    with out.open("wb") as handle:
        writer.write(handle)
    text = previews.make_preview(job_for(tmp_path, "plain.pdf", out.read_bytes()))
    assert text.startswith("PDF document, 1 page,")
    assert "Title" not in text


def test_the_child_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    job = job_for(tmp_path, "t.txt", b"hello\n")
    limits: list[tuple[int, int]] = []
    monkeypatch.setattr(previews, "_limit", lambda memory, cpu: limits.append((memory, cpu)))
    monkeypatch.setattr(previews.sys, "argv", ["previews", json.dumps(dataclasses.asdict(job))])
    previews.main()
    assert json.loads(capsys.readouterr().out) == {"preview": "hello"}
    assert limits == [(1 << 29, 5)]


async def test_a_child_that_fails_gives_an_error_preview(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    job = job_for(tmp_path, "t.txt", b"hello\n")
    monkeypatch.setattr(previews, "_command", lambda job: ["/bin/false"])
    assert await previews.preview(job, 5) == "text/plain, 6 bytes: no preview (preview process " \
                                             "failed)"


async def test_a_preview_process_that_cannot_start_gives_an_error_preview(
        clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    # No process at all (fork refused under load, the interpreter gone in an upgrade):
    # the upload still succeeds, with an error preview, never internal-error.
    monkeypatch.setattr(previews, "_command", lambda job: ["/nonexistent/python3"])
    file = await preview_of(clients, "t.txt", b"hello\n")
    assert file["preview"] == "text/plain, 6 bytes: no preview (preview process failed)"


def test_human_size_never_says_1024_of_a_unit() -> None:
    # Just under a MiB (or a GiB) was rounded up to "1024.0 KiB" instead of the next unit.
    assert [previews.human_size(n) for n in (1024 * 1024 - 1, (1 << 30) - 1,
                                             1024 * 1024 - 52)] == [
        "1.0 MiB", "1.0 GiB", "1023.9 KiB"]


def test_human_size() -> None:
    assert [previews.human_size(n) for n in (0, 1, 1023, 1024, 5 * 1024 * 1024, 3 << 30,
                                             5000 << 30)] == [
        "0 bytes", "1 byte", "1023 bytes", "1.0 KiB", "5.0 MiB", "3.0 GiB", "5000.0 GiB"]
