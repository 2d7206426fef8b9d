"""Which nodes give a point of the node series: only those whose utilisation has been reported."""

from __future__ import annotations

from control_plane.history import MINUTE_S, node_points
from stratum.v1 import types_pb2 as t


def node(name: str, *, heartbeat: bool = True, util: t.Utilisation | None = None) -> t.Node:
    n = t.Node(name=name, state="ready")
    if heartbeat:
        n.last_heartbeat.FromSeconds(1_000)
    if util is not None:
        n.utilisation.CopyFrom(util)
    return n


def test_a_node_gives_its_latest_reading_and_one_without_a_reading_gives_none():
    reading = t.Utilisation(cpu_percent=12.5, memory_percent=41.0, load1=0.3)
    points = node_points([node("reported", util=reading), node("enrolled-only"), node("never", heartbeat=False)], 7)
    assert [(series, key, at) for series, key, at, _ in points] == [("node", "reported", 7 * MINUTE_S)]
    assert points[0][3] == {"values": {"cpu_percent": 12.5, "memory_percent": 41.0, "load1": 0.3},
                            "notes": {"state": "ready"}}
