from node_daemon import agent


def test_backoff_grows_is_jittered_and_capped():
    samples = {n: [agent.backoff(n) for _ in range(200)] for n in range(1, 15)}
    for n, values in samples.items():
        ceiling = min(agent.BACKOFF_CAP_S, agent.BACKOFF_BASE_S * 2 ** (n - 1))
        assert all(ceiling / 2 <= v <= ceiling for v in values), n
        assert len(set(values)) > 1  # jitter: a fleet does not reconnect in lockstep
    assert max(samples[14]) <= agent.BACKOFF_CAP_S
    assert min(samples[4]) > max(samples[1])
