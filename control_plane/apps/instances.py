"""Which node runs which instance of an app: placement says how many per node, instances keep
their index (STRATUM_INSTANCE) where they stay, so a move restarts only the instances that moved."""

from __future__ import annotations


def assign(old: dict[int, str], placement: dict[str, int], count: int) -> dict[int, str]:
    """Instance index -> node id for `count` instances over `placement` (node id -> instances):
    an index stays on its node while the node keeps room for it; the rest fill the nodes with room
    in node order, lowest index first."""
    room = dict(placement)
    out: dict[int, str] = {}
    for i in sorted(old):
        node = old[i]
        if i < count and room.get(node, 0) > 0:
            out[i] = node
            room[node] -= 1
    spare = [n for n in sorted(room) for _ in range(room[n])]
    for i in range(count):
        if i not in out and spare:
            out[i] = spare.pop(0)
    return out
