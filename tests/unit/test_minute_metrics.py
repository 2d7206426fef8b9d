"""Per-minute endpoint metrics (stratum/runtime/latency.py): pure, the clock passed in."""

from __future__ import annotations

from stratum.runtime.latency import BUCKETS_MS, MinuteMetrics, percentile_ms


def test_minutes_are_counted_and_handed_out_once_when_they_end():
    m = MinuteMetrics()
    m.record(60.0, 0.004, in_flight=2)
    m.record(61.0, 0.030, failed=True, in_flight=5)
    m.record(119.9, 0.0005)
    assert m.take(119.9) == []  # minute 1 has not ended
    m.record(120.5, 3.0)
    (first,) = m.take(121.0)
    assert first["minute"] == 1 and first["requests"] == 3 and first["failures"] == 1 and first["max_in_flight"] == 5
    assert first["buckets"][BUCKETS_MS.index(5)] == 1 and first["buckets"][BUCKETS_MS.index(50)] == 1
    assert first["buckets"][0] == 1  # 0.5 ms goes in the first bucket
    assert m.take(121.0) == []  # handed out once
    assert [x["minute"] for x in m.take(200.0)] == [2]


def test_only_the_last_keep_minutes_are_held_while_nobody_takes_them():
    m = MinuteMetrics(keep=3)
    for minute in range(10):
        m.record(minute * 60.0, 0.001)
    assert [x["minute"] for x in m.take(10 * 60.0)] == [7, 8, 9]


def test_percentiles_from_buckets():
    b = [0] * (len(BUCKETS_MS) + 1)
    b[BUCKETS_MS.index(10)] = 90
    b[BUCKETS_MS.index(200)] = 10
    assert percentile_ms(b, 0.5) == 10 and percentile_ms(b, 0.95) == 200
    assert percentile_ms([0] * len(b), 0.95) == 0
    b[-1] = 1000
    assert percentile_ms(b, 0.99) == 2 * BUCKETS_MS[-1]


def test_the_control_planes_series_adds_nodes_up_keeps_order_and_drops_expired_minutes():
    from control_plane.autoscale.metrics import ServiceSeries
    from stratum.v1 import node_agent_pb2 as na

    def sample(minute, requests):
        b = [0] * (len(BUCKETS_MS) + 1)
        b[BUCKETS_MS.index(10)] = requests
        return na.MinuteSample(minute=minute, requests=requests, latency_buckets=b, latency_sum_ms=10.0 * requests)

    s = ServiceSeries(retention_min=5)
    s.add("svc", [sample(10, 3), sample(11, 4)])
    s.add("svc", [sample(11, 2), sample(9, 1)])  # a second node, with a late minute
    assert s.arrivals("svc") == [(9, 1), (10, 3), (11, 6)]
    s.add("svc", [sample(15, 1)])  # minutes <= 15 - 5 expire
    assert s.arrivals("svc") == [(11, 6), (15, 1)]
    assert s.totals["svc"][0] == 11  # totals only grow
    s.add("svc", [na.MinuteSample(minute=16, requests=5, latency_buckets=[1, 2])])  # other buckets: ignored
    assert s.arrivals("svc")[-1] == (15, 1)
    assert s.points("svc", 1)[0]["p95_ms"] == 10
