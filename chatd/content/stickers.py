"""ASCII-art stickers: a few lines of art posted as one message.

Stickers are files ``<name>.txt``: the built-in ones in ``conf/stickers``
(found beside the package, so a checkout or an editable install has them)
and a sysadmin's own in ``stickers.dir``, which win on a name clash and are
read again on reload. A file that is not valid art is skipped with a
warning: art is printable text (no escape sequences reach a terminal) of at
most :data:`MAX_LINES` lines of :data:`MAX_WIDTH` characters.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.config import StickersConfig

log = logging.getLogger(__name__)

def _builtin_dir() -> Path:
    """conf/stickers beside the package (a checkout or editable install), else
    where a regular install puts it (setup.cfg's data_files: share/chatd/stickers)."""
    beside = Path(__file__).resolve().parents[2] / "conf" / "stickers"
    installed = Path(sys.prefix) / "share" / "chatd" / "stickers"
    return beside if beside.is_dir() or not installed.is_dir() else installed


BUILTIN_DIR = _builtin_dir()
NAME_RE = re.compile(r"[a-z0-9_-]{1,32}")
MAX_LINES = 20
MAX_WIDTH = 60
MAX_BYTES = 4096
# A directory of thousands of files is a mistake; stop reading there.
MAX_STICKERS = 500


class BadArt(ValueError):
    """A sticker file that cannot be offered (the reason is the message)."""


@dataclass(frozen=True, slots=True)
class Sticker:
    """One sticker: its name, its art, and the directory it came from."""

    name: str
    art: str
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """Width and height in characters."""
        lines = self.art.split("\n")
        return max(len(line) for line in lines), len(lines)


def parse_art(raw: bytes) -> str:
    """Validated art from a file's bytes (raises BadArt)."""
    if len(raw) > MAX_BYTES:
        raise BadArt(f"more than {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadArt("not UTF-8") from None
    lines = [line.expandtabs(4).rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise BadArt("empty")
    if len(lines) > MAX_LINES:
        raise BadArt(f"more than {MAX_LINES} lines")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_WIDTH:
            raise BadArt(f"line {number} is wider than {MAX_WIDTH} characters")
        if not line.isprintable():
            raise BadArt(f"line {number} holds a control character")
    return "\n".join(lines)


def load_dir(directory: Path) -> dict[str, Sticker]:
    """The valid stickers of ``directory`` (none when it does not exist)."""
    found: dict[str, Sticker] = {}
    try:
        paths = sorted(directory.glob("*.txt"))
    except OSError:
        paths = []
    if len(paths) > MAX_STICKERS:
        log.warning("stickers skipped", extra={"fields": {
            "dir": str(directory), "skipped": len(paths) - MAX_STICKERS, "read": MAX_STICKERS}})
    for path in paths[:MAX_STICKERS]:
        name = path.stem.lower()
        try:
            if not NAME_RE.fullmatch(name):
                raise BadArt("the name must be 1-32 of a-z, 0-9, _ and -")
            if name in found:
                # Cat.txt and cat.txt: names are case-blind, and the first (in the
                # listing's order) keeps it, said rather than replaced in silence.
                raise BadArt(f"another file already gives the sticker {name!r}")
            found[name] = Sticker(name, parse_art(_read_small(path)), str(directory))
        except (BadArt, OSError) as exc:
            log.warning("sticker skipped", extra={"fields": {"path": str(path),
                                                             "reason": str(exc)}})
    return found


def _read_small(path: Path) -> bytes:
    """A regular file's first bytes, one past :data:`MAX_BYTES` (so parse_art sees it
    is too long). Reading it whole first would let a huge file fill the memory, and
    a FIFO or a link to a device would block (or never end) at start or reload."""
    if not path.is_file():
        raise BadArt("not a regular file")
    with path.open("rb") as handle:
        return handle.read(MAX_BYTES + 1)


class Stickers:
    """The stickers on offer, read at start and again on every reload."""

    def __init__(self, config: StickersConfig, builtin_dir: Path = BUILTIN_DIR) -> None:
        self._builtin_dir = builtin_dir
        self._stickers: dict[str, Sticker] = {}
        self.reload(config)

    def reload(self, config: StickersConfig) -> None:
        """Read the directories again (small files: this is quick)."""
        stickers: dict[str, Sticker] = {}
        if config.builtin:
            if not self._builtin_dir.is_dir():
                log.info("no built-in stickers", extra={"fields": {
                    "dir": str(self._builtin_dir)}})
            stickers.update(load_dir(self._builtin_dir))
        if config.dir:
            if not Path(config.dir).is_dir():
                log.warning("sticker directory missing", extra={"fields": {"dir": config.dir}})
            stickers.update(load_dir(Path(config.dir)))
        self._stickers = stickers
        log.info("stickers loaded", extra={"fields": {"count": len(stickers)}})

    def get(self, name: str) -> Sticker | None:
        return self._stickers.get(name.lower())

    def all(self) -> list[Sticker]:
        return sorted(self._stickers.values(), key=lambda s: s.name)
