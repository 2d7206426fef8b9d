import asyncio
import random

from node_daemon import agent
from node_daemon.identity import Identity


def test_backoff_grows_is_fully_jittered_and_capped_low():
    random.seed(7)  # the draws below are then the same on every run
    samples = {n: [agent.backoff(n) for _ in range(500)] for n in range(1, 15)}
    for n, values in samples.items():
        ceiling = min(agent.BACKOFF_CAP_S, agent.BACKOFF_BASE_S * 2 ** (n - 1))
        assert all(0 <= v <= ceiling for v in values), n
        # full jitter: the draws cover the whole range below the ceiling, so a fleet does not move in lockstep
        assert min(values) < 0.1 * ceiling and max(values) > 0.9 * ceiling, n
    assert agent.BACKOFF_CAP_S <= 5.0  # a node is back within 5 s of the control plane
    mean = {n: sum(v) / len(v) for n, v in samples.items()}
    assert mean[1] < mean[2] < mean[3] < mean[4]  # exponential until the cap
    assert abs(mean[14] - agent.BACKOFF_CAP_S / 2) < 0.25


def test_a_fleet_at_the_cap_spreads_its_tries_evenly_over_it():
    """The herd protection the heartbeat bench relies on: 10,000 nodes retrying at the cap send about
    10,000 / cap tries a second, never most of them in one second."""
    random.seed(11)
    per_s: dict[int, int] = {}
    for _ in range(10_000):
        second = int(agent.backoff(20))
        per_s[second] = per_s.get(second, 0) + 1
    even = 10_000 / agent.BACKOFF_CAP_S
    assert len(per_s) == int(agent.BACKOFF_CAP_S)
    assert max(per_s.values()) < 1.1 * even


def test_every_control_plane_in_the_list_is_tried_before_backing_off(tmp_path, monkeypatch):
    """With several control planes (a killed leader, a follower taking over), a refused try goes on to
    the next in the list at once; the backoff comes between rounds of the whole list."""
    ident = Identity(str(tmp_path), "node-1", "edge-1", "a.example:1,b.example:1,c.example:1", 7000, "edge")
    tried, slept = [], []

    class Refused(agent.Agent):
        async def _session(self):
            tried.append(self.endpoint)
            if len(tried) == 9:  # the third round's last: a session at last
                self.sessions += 1
                self.stop.set()
                return
            raise agent.SessionLost("connection refused")

    monkeypatch.setattr(agent, "backoff", lambda attempt: slept.append((len(tried), attempt)) or 0.0)
    asyncio.run(Refused(ident, {}).run())
    assert tried == ["a.example:7000", "b.example:7000", "c.example:7000"] * 3
    assert slept == [(3, 1), (6, 2)]  # after each full round, growing
