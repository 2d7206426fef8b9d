"""The sensor: seq persistence, which intersections an instance reports, and what it publishes
to a real Mosquitto (deterministic readings; a restart continues the seqs, never repeats them)."""

from __future__ import annotations

import json

import pytest

import sensor
import traffic
from common import ConfigError

from tests.pipeline.conftest import Subscriber, start_broker, wait_until


def test_seq_state_persists_and_continues(tmp_path):
    path = str(tmp_path / "sensor-state.json")
    s = sensor.SeqState(path)
    assert s.reserve(["i-01", "i-02"]) == {"i-01": 1, "i-02": 1}
    assert s.reserve(["i-01", "i-02"]) == {"i-01": 2, "i-02": 2}
    assert json.loads(open(path).read()) == {"i-01": 2, "i-02": 2}
    # a restart (possibly with one more intersection) continues after what was recorded
    again = sensor.SeqState(path)
    assert again.reserve(["i-01", "i-03"]) == {"i-01": 3, "i-03": 1}
    assert sensor.SeqState(path).last == {"i-01": 3, "i-02": 2, "i-03": 1}
    (tmp_path / "sensor-state.json").write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt"):
        sensor.SeqState(path)


@pytest.mark.parametrize("env, want", [
    ({}, ["i-01"]),
    ({"STRATUM_INSTANCE": "2"}, ["i-03"]),
    ({"STRATUM_INSTANCE": "1", "INTERSECTIONS_PER_INSTANCE": "3"}, ["i-04", "i-05", "i-06"]),
    ({"STRATUM_INSTANCE": "3", "INTERSECTIONS_PER_INSTANCE": "3"}, ["i-02", "i-03", "i-04"]),  # wraps around
    ({"STRATUM_INSTANCE": "5", "INTERSECTIONS": " i-08, i-01 "}, ["i-08", "i-01"]),
])
def test_intersections_of_an_instance(monkeypatch, env, want):
    for k in ("INTERSECTIONS", "INTERSECTIONS_PER_INSTANCE", "STRATUM_INSTANCE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert sensor.intersections_from_env() == want


@pytest.mark.parametrize("value, why", [("i-01,i-99", "unknown intersection"), ("i-01,i-01", "twice")])
def test_bad_intersections(monkeypatch, value, why):
    monkeypatch.setenv("INTERSECTIONS", value)
    with pytest.raises(ConfigError, match=why):
        sensor.intersections_from_env()


def test_sensor_publishes_deterministic_readings_and_continues_after_a_restart(apps):
    broker, port = start_broker(apps)
    sub = Subscriber(port, "traffic/+/counts")
    env = dict(STRATUM_BROKER_URL=f"mqtt://127.0.0.1:{port}", INTERSECTIONS="i-02,i-07", RATE=50, SEED=5,
               MAX_MESSAGES=6, SIM_START_HOUR=16)
    first = apps.start("sensor", "sensor", **env)
    assert first.proc.wait(30) == 0, first.log_tail()
    again = apps.start("sensor", "sensor", **env)  # the same working directory: the seqs continue
    assert again.proc.wait(30) == 0, again.log_tail()
    wait_until(lambda: len(sub.snapshot()) >= 24, 10, "24 readings on the broker", [broker])
    got = sub.snapshot()
    sub.close()
    assert len(got) == 24
    for name in ("i-02", "i-07"):
        msgs = [m for t, m in got if t == f"traffic/{name}/counts"]
        assert [m["seq"] for m in msgs] == list(range(1, 13))
        assert all(m["ts"] > 0 for m in msgs)
        # everything but the send time is traffic.reading's: the same seed gives the same city
        assert [{k: v for k, v in m.items() if k != "ts"} for m in msgs] == \
            [traffic.reading(5, name, s, 16 * 60, 1.0) for s in range(1, 13)]
    assert [e["published"] for e in first.log_events("stats")][-1] == 12
