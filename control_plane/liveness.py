"""Which nodes change state now: a pure function the registry calls on a timer."""


def transitions(last_seen: dict[str, float], states: dict[str, str], now: float, timeout: float) -> list[tuple[str, str]]:
    """(node id, new state) for every node whose state is wrong at `now`.

    A node is "ready" while its last heartbeat is younger than `timeout`, and
    "down" once it is not. Nodes never seen count as down.
    """
    out = []
    for node_id, state in states.items():
        seen = last_seen.get(node_id)
        want = "ready" if seen is not None and now - seen < timeout else "down"
        if want != state:
            out.append((node_id, want))
    return out
