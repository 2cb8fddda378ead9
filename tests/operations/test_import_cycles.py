"""No import cycle runs through the application, the transport, operations or
the IRC listener and connection.

import-linter's contracts (setup.cfg) forbid imports upward; this checks the
other half: no module of these layers is imported, however indirectly, by a
module it imports, imports under ``if TYPE_CHECKING:`` included (a cycle
there still couples the two modules' types).
"""

from __future__ import annotations

import grimp
import pytest

PACKAGES = ("chatd.app", "chatd.net", "chatd.ops")
MODULES = ("chatd.cli", "chatd.config", "chatd.irc.listener", "chatd.irc.connection")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("chatd", "commands", "storage")


def test_no_cycle_through_app_net_ops_or_the_irc_listener(graph: grimp.ImportGraph) -> None:
    ours = sorted(m for m in graph.modules
                  if m.startswith(tuple(p + "." for p in PACKAGES)) or m in PACKAGES + MODULES)
    assert ours
    cycles = []
    for module in ours:
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join((module, *back)))
    assert cycles == []


def test_the_control_client_stands_alone(graph: grimp.ImportGraph) -> None:
    """chatctl and its live screen share the client; neither imports the other for it."""
    assert not graph.find_shortest_chain(importer="chatd.ops.top", imported="chatd.ops.chatctl")
    assert not graph.find_shortest_chain(importer="chatd.ops.control_client",
                                         imported="chatd.ops.chatctl")
