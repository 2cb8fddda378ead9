"""What the operations layer sees of the running daemon: facades, not classes.

The control socket, the metrics endpoint and the status line need a few
things of the process around them (its services, its connections, a reload).
They take these Protocols; the composition root (``chatd.app``) passes an
object that fits, so nothing in ``chatd.ops`` imports the application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.stats import Figure
    from chatd.protocol.services import Services


class NodeList(Protocol):
    """The nodes of the service, and this process's own figures."""

    @property
    def node_id(self) -> str: ...

    async def nodes(self) -> list[dict[str, Any]]:
        """A row per node: node, alive, version, addresses, connections,
        lag_ms, age, heartbeat_ms, config."""
        ...

    def figures(self) -> list[Figure]:
        """The cluster's metrics (none for the embedded daemon)."""
        ...


class Running(Protocol):
    """What metrics and ``chatctl status`` read of the running server."""

    @property
    def config(self) -> Config: ...

    @property
    def services(self) -> Services: ...

    @property
    def connection_count(self) -> int: ...

    @property
    def addresses(self) -> list[str]: ...

    @property
    def addresses_by_kind(self) -> dict[str, str]:
        """Each kind of listener ("line", "irc", "web" ...) and its addresses."""

    @property
    def nodes(self) -> NodeList:
        """The nodes serving chatd (this process alone, unless a cluster)."""


class Admin(Running, Protocol):
    """What the control socket may ask of the daemon beyond the services."""

    @property
    def restart_needed(self) -> list[str]:
        """Changed keys the last reload could not apply (they wait for a restart)."""

    @property
    def config_path(self) -> str | None:
        """The configuration file a reload re-reads; None when chatd was started
        without one (a reload then re-applies the defaults and the command line)."""

    def reload(self) -> str | None:
        """Re-read and apply the configuration; the problem when it is refused."""
