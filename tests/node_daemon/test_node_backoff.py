import random

from node_daemon import agent


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
