"""Previews of uploaded files, made in a separate, bounded process.

An upload's preview is a few lines of plain text shown under its
announcement: an image as ASCII art, a PDF's metadata, the first lines of a
text file, or else the type and size. Decoders of untrusted files can be
slow, hungry or buggy, so the work runs in a child process (``python -m
chatd.content.previews``) with a memory and CPU limit, killed after
``files.preview_timeout``; whatever goes wrong gives an error preview, never
a crash or a stalled server.

The MIME type comes from the content's magic bytes, with the file name as a
hint only where the content cannot tell (text flavours, unknown binaries).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import mimetypes
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Magic numbers of the types we recognise: (offset, bytes, mime).
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"BZh", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (4, b"ftyp", "video/mp4"),
    (257, b"ustar", "application/x-tar"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
# Pillow decodes only these formats here: a smaller attack surface.
IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF",
                 "image/webp": "WEBP"}
_TEXT_LIKE = ("application/json", "application/xml", "application/javascript",
              "application/x-sh", "application/x-yaml", "application/yaml", "application/toml")
HEAD = 8192
TEXT_LINES = 10
TEXT_READ = 64 * 1024
LINE_CHARS = 200
MAX_PREVIEW = 8192
# From dark to bright: on the usual dark terminal, bright pixels are dense glyphs.
RAMP = " .:-=+*#%@"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
log = logging.getLogger(__name__)
# Preview processes running at once, server-wide: each may use files.preview_memory
# and a CPU, so uploads from many connections together wait their turn instead of
# starting one each.
MAX_RUNNING = 4


@dataclass(frozen=True, slots=True)
class Job:
    """What the child process is asked to preview."""

    path: str
    mime: str
    size: int
    width: int
    max_pixels: int
    memory: int
    cpu_seconds: int


# -- MIME sniffing (cheap: runs in the server on the first bytes) ------------------------


def sniff(head: bytes, name: str) -> str:
    """The MIME type of content starting with ``head``, named ``name``."""
    for offset, magic, mime in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return _refine_container(mime, name)
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    hint = mimetypes.guess_type(name, strict=False)[0] or ""
    if _looks_like_text(head):
        return hint if hint.startswith("text/") or hint in _TEXT_LIKE else "text/plain"
    # Unknown bytes: believe the name, except for a type we would have recognised.
    if hint and hint not in IMAGE_FORMATS and hint != "application/pdf" \
            and not hint.startswith("text/"):
        return hint
    return "application/octet-stream"


def _refine_container(mime: str, name: str) -> str:
    """A zip is also a docx, an epub, a jar...: the name says which."""
    if mime != "application/zip":
        return mime
    hint = mimetypes.guess_type(name, strict=False)[0] or ""
    zip_family = ("application/vnd.openxmlformats", "application/vnd.oasis.opendocument",
                  "application/epub+zip", "application/java-archive")
    return hint if hint.startswith(zip_family) else mime


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is still text.
        if exc.start < len(head) - 3:
            return False
        text = head[:exc.start].decode("utf-8")
    # Escape sequences (coloured logs) are common in text; other controls are not.
    controls = sum(1 for ch in text if ch < " " and ch not in "\t\n\r\f\x1b")
    return controls <= len(text) // 10


# -- sanitising (every preview passes here, in the child and again in the server) ---------


def clean(text: str, max_lines: int = 60) -> str:
    """Printable characters and newlines only: no escape sequence reaches a terminal."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n")[:max_lines]:
        line = "".join(ch for ch in raw.expandtabs(4) if ch.isprintable())
        lines.append(line.rstrip()[:LINE_CHARS])
    return "\n".join(lines).strip("\n")[:MAX_PREVIEW]


def human_size(size: int) -> str:
    """``1 byte``, ``512 bytes``, ``1.5 KiB`` ... ``2.0 GiB``."""
    if size < 1024:
        return f"{size} byte{'s' * (size != 1)}"
    value = float(size)
    for unit in ("KiB", "MiB"):
        value /= 1024
        # Rounded as shown: 1023.96 KiB is "1.0 MiB", never "1024.0 KiB".
        if round(value, 1) < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} GiB"


# -- the previews themselves (run in the child process) ------------------------------------


def make_preview(job: Job) -> str:
    """The preview text of ``job`` (errors become an error preview)."""
    try:
        if job.mime in IMAGE_FORMATS:
            return _image(job)
        if job.mime == "application/pdf":
            return _pdf(job)
        if job.mime.startswith("text/") or job.mime in _TEXT_LIKE:
            return _text(job)
    except Exception as exc:  # a hostile file: say so, never fail the upload
        return failed(job.mime, job.size, _reason(exc))
    return f"{job.mime}, {human_size(job.size)}"


def failed(mime: str, size: int, reason: str) -> str:
    return f"{mime}, {human_size(size)}: no preview ({reason})"


def _reason(exc: Exception) -> str:
    name = type(exc).__name__
    if "DecompressionBomb" in name:
        return "image too large"
    if isinstance(exc, MemoryError):
        return "too much memory needed"
    return "unreadable file"


def _image(job: Job) -> str:
    from PIL import Image  # noqa: PLC0415 (only the child process needs Pillow)

    Image.MAX_IMAGE_PIXELS = job.max_pixels
    with warnings.catch_warnings():
        # Pillow only warns between 1x and 2x the pixel limit: refuse those too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(job.path, formats=[IMAGE_FORMATS[job.mime]]) as image:
            width, height = image.size
            if width * height > job.max_pixels or not width or not height:
                return failed(job.mime, job.size, f"image too large: {width}x{height}")
            art = _ascii_art(image, job.width)
    header = f"{IMAGE_FORMATS[job.mime]} image, {width}x{height}"
    return clean(f"{header}\n{art}")


def _ascii_art(image: Any, columns: int) -> str:
    from PIL import Image  # noqa: PLC0415

    width, height = image.size
    # Terminal cells are about twice as tall as wide; the art fits in a box of
    # ``columns`` by ``columns / 2`` cells.
    columns = max(1, min(columns, width))
    rows = round(height / width * columns / 2)
    max_rows = max(1, columns // 2)
    if rows > max_rows:
        rows, columns = max_rows, max(1, round(max_rows * 2 * width / height))
    rows = max(1, rows)
    image.draft("RGB", (columns, rows))  # JPEG: decode at a reduced scale
    if image.mode.startswith("I;16"):
        # 16-bit grey: scaled to 8 bits; a plain conversion clips at 255 (all white).
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA")  # palettes and the like; most photos skip this copy
    frame = image.resize((columns, rows), Image.Resampling.BOX).convert("RGBA")
    # Transparent parts show as the (dark) background.
    background = Image.new("RGBA", frame.size, (0, 0, 0, 255))
    grey = Image.alpha_composite(background, frame).convert("L")
    pixels = grey.tobytes()
    lines = []
    for row in range(rows):
        cells = pixels[row * columns:(row + 1) * columns]
        lines.append("".join(RAMP[value * len(RAMP) // 256] for value in cells).rstrip())
    return "\n".join(lines)


def _pdf(job: Job) -> str:
    from pypdf import PdfReader  # noqa: PLC0415 (only the child process needs pypdf)

    reader = PdfReader(job.path, strict=False)
    if reader.is_encrypted:
        with contextlib.suppress(Exception):
            reader.decrypt("")
    pages = len(reader.pages)
    lines = [f"PDF document, {pages} page{'s' * (pages != 1)}, {human_size(job.size)}"]
    meta = reader.metadata
    if meta is not None:
        for label, read in (("Title", lambda: meta.title), ("Author", lambda: meta.author),
                            ("Producer", lambda: meta.producer),
                            ("Created", lambda: _date(meta.creation_date))):
            value = _safe(read)
            if value:
                lines.append(f"{label}: {value}")
    return clean("\n".join(lines))


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


def _safe(read: Any) -> str:
    """One metadata field; a malformed one is skipped, not fatal."""
    try:
        value = read()
    except Exception:
        return ""
    return " ".join(str(value).split())[:LINE_CHARS] if value else ""


def _text(job: Job) -> str:
    with open(job.path, "rb") as handle:
        head = handle.read(TEXT_READ)
    text = head.decode("utf-8", errors="replace")
    return clean("\n".join(text.splitlines()[:TEXT_LINES]), TEXT_LINES)


# -- the child process ---------------------------------------------------------------------


def _limit(memory: int, cpu_seconds: int) -> None:
    """Bound this process: a decompression bomb dies here, not in the server."""
    import resource  # noqa: PLC0415 (POSIX only, and only in the child)

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))


def main() -> None:
    job = Job(**json.loads(sys.argv[1]))
    with contextlib.suppress(ImportError, ValueError, OSError):
        _limit(job.memory, job.cpu_seconds)
    sys.stdout.write(json.dumps({"preview": make_preview(job)}))


# -- the server side -----------------------------------------------------------------------


def read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEAD)


async def preview(job: Job, timeout: float) -> str:
    """Run ``job`` in a child process; an error preview when it fails or overruns."""
    # The child imports this module by name, wherever the server was started from.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
    try:
        proc = await asyncio.create_subprocess_exec(
            *_command(job), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env)
    except OSError as exc:  # no process at all (fork refused, the interpreter gone)
        log.warning("preview process not started", extra={"fields": {
            "error": exc.strerror or str(exc)}})
        return failed(job.mime, job.size, "preview process failed")
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        return failed(job.mime, job.size, "timed out")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    try:
        text = json.loads(out)["preview"]
    except (ValueError, KeyError, TypeError):
        return failed(job.mime, job.size, "preview process failed")
    return clean(str(text))


def _command(job: Job) -> list[str]:
    return [sys.executable, "-m", "chatd.content.previews", json.dumps(dataclasses.asdict(job))]


if __name__ == "__main__":
    main()
