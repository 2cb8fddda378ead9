"""The client side of the control socket: one JSON line each way (see chatd.ops.control).

Shared by ``chatctl``, its live screen (``chatctl top``) and ``chatd
useradd``, so none of them imports another for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from typing import IO, Any

from chatd.ops.backups import RawSink, StreamError, TarSink, receive_stream


class ControlError(Exception):
    """The daemon refused a request, or could not be reached."""


class Unreachable(ControlError):
    """No daemon answers at the socket's path: no socket there (none made, or the
    control socket is off), or one left by a daemon that was killed."""


# How long a request waits for its answer by default. A daemon whose event loop
# is stuck (a stopped process, a runaway transaction) still accepts connections
# (the kernel queues them): without a bound, chatctl would wait forever.
ANSWER_TIMEOUT = 60.0


# The longest answer line read. One JSON line holds a whole listing: some 110
# bytes a user, so 16 MiB ran out at about 150,000 accounts. The reader's buffer
# grows only with what arrives: this is a bound, not an allocation.
ANSWER_LIMIT = 1 << 30


class ControlClient:
    """Talks JSON lines to the control socket."""

    def __init__(self, path: str, timeout: float | None = ANSWER_TIMEOUT,
                 switched_off: bool = False) -> None:
        self.path = path
        # The configuration that named the path turns the socket off: no socket there
        # says nothing about whether chatd runs.
        self.switched_off = switched_off
        # Seconds a request waits for its answer (None: for ever); streams (backup,
        # follow) wait as long as they last.
        self.timeout = timeout

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.open_unix_connection(self.path, limit=ANSWER_LIMIT)
        except TimeoutError as exc:
            raise self._no_answer() from exc
        except FileNotFoundError as exc:
            if self.switched_off:
                raise Unreachable("the configuration turns chatd's control socket off "
                                   "(control.enabled: false): chatctl cannot reach the "
                                   "daemon; set it to true and restart chatd") from exc
            raise Unreachable(f"chatd is not running (no control socket at {self.path}; "
                               "if storage.path or control.path changed since it started, "
                               "give --socket)") from exc
        except ConnectionRefusedError as exc:
            if not _is_socket(self.path):  # connect() says the same of a plain file
                raise ControlError(f"{self.path} is not a socket: give the control socket "
                                   "(--socket, such as chatd.db.sock) or the database "
                                   "(--db)") from exc
            raise Unreachable(f"chatd is not running (nobody answers on {self.path}, left "
                               "by a daemon that was killed)") from exc
        except PermissionError as exc:
            raise ControlError(f"permission denied on {self.path}: run as the daemon's user") \
                from exc
        except OSError as exc:  # e.g. a path longer than a Unix socket address allows
            raise ControlError(f"cannot reach the control socket {self.path}: {exc.strerror}") \
                from exc

    async def call(self, cmd: str, **args: Any) -> Any:
        reader, writer = await self._open()
        try:
            writer.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            async with asyncio.timeout(self.timeout):
                line = await reader.readline()
        except TimeoutError as exc:
            raise self._no_answer() from exc
        except ValueError as exc:  # asyncio's word for a line past the reader's limit
            raise ControlError(f"chatd's answer to {cmd} is longer than "
                               f"{ANSWER_LIMIT >> 20} MiB: too large to read") from exc
        finally:
            writer.close()
        return _result(line)

    def _no_answer(self) -> ControlError:
        return ControlError(f"chatd did not answer on {self.path} within {self.timeout:g} s "
                            "(its event loop may be stuck: see its log; chatctl "
                            "--timeout waits longer)")

    async def backup(self, out: IO[bytes], with_files: bool, to: str) -> dict[str, Any]:
        """Receive the daemon's consistent copy into ``out`` (a tar with ``with_files``)."""
        reader, writer = await self._open()
        try:
            request = {"cmd": "backup", "files": with_files, "to": to}
            writer.write(json.dumps(request).encode() + b"\n")
            result = _result(await reader.readline())
            sink = TarSink(out) if with_files else RawSink(out)
            end = await receive_stream(reader, sink)
        except (StreamError, OSError) as exc:
            raise ControlError(str(exc)) from exc
        finally:
            writer.close()
        return {**result, "files": end["files"], "bytes": end["bytes"]}

    async def follow(self, room: str | None = None, n: int = 0
                     ) -> AsyncIterator[dict[str, Any]]:
        """The daemon's stream: the last ``n`` audit entries, then each new one and
        status lines; ControlError for a refusal, and when the daemon ends the
        stream (it stopped)."""
        reader, writer = await self._open()
        try:
            writer.write(json.dumps({"cmd": "follow", "room": room, "n": n}).encode() + b"\n")
            while line := await reader.readline():
                item = json.loads(line)
                if item.get("ok") is False:
                    raise ControlError(f"{item.get('code')}: {item.get('error')}")
                yield item
        finally:
            writer.close()
        raise ControlError("chatd ended the stream (it stopped or restarted)")


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return True  # gone meanwhile: the usual account of a refused connection holds


def _result(line: bytes) -> Any:
    """The result of an answer line (ControlError for a refusal)."""
    if not line:
        raise ControlError("chatd closed the control connection")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise ControlError(f"{answer.get('code')}: {answer.get('error')}")
    return answer["result"]
