"""The front ends implement the domain's ports, and agree with it on shared names."""

from __future__ import annotations

from chatd.content import files
from chatd.delivery.bus import LocalBus
from chatd.delivery.outgoing import Outgoing
from chatd.domain.ports import Bus
from chatd.protocol import render
from chatd.protocol.session import Session


def test_the_download_record_is_the_line_protocols_text_only_record() -> None:
    assert files._TEXT_ONLY == render.TEXT_ONLY


def test_the_session_is_an_endpoint_and_a_reader() -> None:
    # mypy checks it where sessions are passed to the domain; this names the parts.
    for name in ("id", "peer", "user", "closing", "signed_in", "signed_out", "gone",
                 "left_room", "send", "close", "congested"):
        assert hasattr(Session, name), name


def test_the_local_bus_is_a_bus() -> None:
    bus: Bus = LocalBus()
    assert bus.of_user is not None


def test_a_lane_renderer_is_shared_by_its_style() -> None:
    style = render.Style(fmt="text", color=True)
    assert render.lane_renderer(style, True) is render.lane_renderer(render.Style("text", True),
                                                                    True)
    assert render.lane_renderer(style, False) is not render.lane_renderer(style, True)
    json = render.Style(fmt="json")
    # JSON shows no current room: one renderer for both.
    assert render.lane_renderer(json, False) is render.lane_renderer(json, True)
    record = {"type": "notice", "text": "hi"}
    item = Outgoing.of_record(record)
    assert render.lane_renderer(style, False)(item) == render.render(record, style, False)
