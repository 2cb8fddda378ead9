"""The browser client's static files, served from the package's ``static`` directory.

Only names of plain characters are served, only files inside that directory
(no ``..``, no symbolic link out of it), with a type from a short list and
``Cache-Control: no-cache`` (a browser revalidates, so a new release shows at
once). Files are read in a worker thread: the loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from chatd.errors import Code
from chatd.web.http import HttpError, Response

ROOT = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
ADMIN = "admin.html"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
         ".woff2": "font/woff2", ".webmanifest": "application/manifest+json"}
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")


async def static_file(name: str, root: Path = ROOT) -> Response:
    """The file ``name`` (relative to ``root``) as a response; ``not-found`` otherwise."""
    path = _resolve(name, root)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError:
        raise _missing(name) from None
    return Response(200, data, TYPES[path.suffix], [("Cache-Control", "no-cache")])


def _resolve(name: str, root: Path) -> Path:
    if not _NAME.fullmatch(name) or ".." in name:
        raise _missing(name)
    path = (root / name).resolve()
    if root.resolve() not in path.parents or path.suffix not in TYPES:
        raise _missing(name)
    return path


def _missing(name: str) -> HttpError:
    return HttpError(404, Code.NOT_FOUND, f"there is no file {name!r} here.")
