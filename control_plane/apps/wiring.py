"""connects_to: which endpoint of a target each consumer is pointed at, and cycles. Pure.

The nearest endpoint: on the same node, then at the same site (the `zone` label), then in the
same tier, then any; ties by node name, so every consumer on a node gets the same answer.
"""

from __future__ import annotations

from control_plane.placement.types import NodeView


def nearest(consumer: NodeView | None, candidates: list[tuple[NodeView, str]]) -> str | None:
    """The URL of the candidate (node, url) nearest to the consumer's node."""
    if not candidates:
        return None

    def distance(c: tuple[NodeView, str]):
        n = c[0]
        if consumer is None:
            return (3, n.name, c[1])
        if n.id == consumer.id:
            return (0, n.name, c[1])
        if consumer.zone and n.zone == consumer.zone:
            return (1, n.name, c[1])
        if n.tier == consumer.tier:
            return (2, n.name, c[1])
        return (3, n.name, c[1])

    return min(candidates, key=distance)[1]


def cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in a connects_to graph (name -> names it connects to), as the path a, b, ..., a; or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in edges.get(n, ()):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None
