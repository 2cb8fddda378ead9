"""Who a reload reaches, and which configuration keys each one reads.

Every part of the daemon that applies keys marked "applied" in
``config.RELOAD_POLICY`` registers here when the composition root wires it,
naming those keys ("files" for a whole section, "limits.typing_rate" for
one). A reload hands the new configuration to each, in registration order.
The declarations are checked: a registered key must exist, and every
"applied" key must be declared by some part, or a test fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.config import RELOAD_POLICY

if TYPE_CHECKING:
    from chatd.config import Config, Reconfigurable


@dataclass(frozen=True, slots=True)
class Applies:
    """A part whose own method takes a slice of the configuration, as a Reconfigurable."""

    name: str
    apply: Callable[[Config], None]

    def reconfigure(self, config: Config) -> None:
        self.apply(config)


@dataclass(frozen=True, slots=True)
class Registered:
    target: Reconfigurable
    keys: tuple[str, ...]


class Reloads:
    """The registry of Reconfigurables of one daemon."""

    def __init__(self) -> None:
        self.entries: list[Registered] = []

    def register(self, target: Reconfigurable, *keys: str) -> None:
        """``target`` reads ``keys`` (sections or dotted keys) and applies their changes."""
        for key in keys:
            if not any(known == key or known.startswith(key + ".") for known in RELOAD_POLICY):
                raise ValueError(f"no configuration key or section {key!r}")
        self.entries.append(Registered(target, keys))

    def apply(self, config: Config) -> None:
        for entry in self.entries:
            entry.target.reconfigure(config)

    def unread(self) -> list[str]:
        """The "applied" keys no registered part declares it reads (none, or a test fails)."""
        declared = {key for entry in self.entries for key in entry.keys}
        return [dotted for dotted, policy in RELOAD_POLICY.items() if policy == "applied"
                and dotted not in declared and dotted.partition(".")[0] not in declared]
