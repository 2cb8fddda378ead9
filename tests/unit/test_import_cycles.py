"""No import cycle anywhere in chatd, commands or storage.

import-linter's contracts (setup.cfg, the ``layers`` one above all) forbid
imports upward between layers; this checks the other half, inside a layer as
well: no module is imported, however indirectly, by a module it imports,
imports under ``if TYPE_CHECKING:`` included (a cycle there still couples the
two modules' types).
"""

from __future__ import annotations

import grimp
import pytest


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("chatd", "commands", "storage")


def test_no_import_cycle(graph: grimp.ImportGraph) -> None:
    ours = sorted(graph.modules)
    assert len(ours) > 100
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
