"""The processor's pure parts: window aggregation, the model's input row, the signal timing rule,
and the parsing of readings off the wire."""

from __future__ import annotations

import json

import pytest

import processor
import windows

from tests.pipeline.conftest import TRAFFIC_CSV


def reading(name, seq, **kw):
    r = {"intersection": name, "seq": seq, "ts": 1000.0 + seq, "slot": 28, "hour": 7, "weekday": 0, "weather": "clear",
         "temperature_c": 10.0, "vehicles_per_min": 40.0, "pedestrians_per_min": 10.0, "queue_length": 8.0}
    r.update(kw)
    return r


def test_aggregate_one_row_per_intersection():
    rows = windows.aggregate([
        reading("i-02", 5, vehicles_per_min=30.0, queue_length=4.0, temperature_c=None),
        reading("i-01", 2, vehicles_per_min=40.0, pedestrians_per_min=10.0, queue_length=8.0, temperature_c=9.0),
        reading("i-01", 3, vehicles_per_min=50.0, pedestrians_per_min=20.0, queue_length=10.0, temperature_c=None,
                hour=8, weather="rain"),
        reading("i-01", 1, vehicles_per_min=45.0, pedestrians_per_min=12.0, queue_length=9.0, temperature_c=11.0,
                ts=2000.0),
    ])
    assert [r["intersection"] for r in rows] == ["i-01", "i-02"]
    a, b = rows
    assert (a["vehicles_per_min"], a["pedestrians_per_min"], a["queue_length"]) == (45.0, 14.0, 9.0)
    assert a["temperature_c"] == 10.0  # the mean of the readings that have one
    assert (a["hour"], a["weather"]) == (8, "rain")  # the latest reading by seq, not by arrival
    assert (a["observations"], a["first_seq"], a["last_seq"], a["sensor_ts"]) == (3, 1, 3, 2000.0)
    assert b["temperature_c"] is None and b["observations"] == 1
    assert windows.aggregate([]) == []


def test_model_row_has_exactly_the_training_columns():
    header = TRAFFIC_CSV.read_text().splitlines()[0].split(",")
    assert list(windows.MODEL_COLUMNS) == [c for c in header if c != "congestion"]
    row = windows.aggregate([reading("i-03", 1)])[0]
    assert list(windows.model_instance(row)) == list(windows.MODEL_COLUMNS)


def test_green_time_follows_the_prediction():
    low, medium, high = (windows.green_seconds(p, 5.0) for p in ("low", "medium", "high"))
    assert low < medium < high
    assert windows.green_seconds(None, 5.0) == windows.FIXED_GREEN_S == windows.green_seconds("jammed", 5.0)
    # a crowd at the crossing gets its walk phase, unless the queue is the emergency
    assert windows.green_seconds("medium", 30.0) < medium and windows.green_seconds("high", 30.0) == high
    for p in ("low", "medium", "high", None):
        for ped in (0.0, 100.0):
            assert windows.MIN_GREEN_S <= windows.green_seconds(p, ped) <= windows.CYCLE_S - windows.MIN_GREEN_S


def test_window_hands_over_and_starts_empty():
    w = windows.Window()
    w.add([reading("i-01", 1)])
    w.add([reading("i-01", 2)])
    assert [r["seq"] for r in w.close()] == [1, 2]
    assert w.close() == []


def test_parse_reading():
    good = reading("i-01", 3)
    assert processor.parse_reading("traffic/i-01/counts", json.dumps(good).encode()) == good
    nulls = dict(good, temperature_c=None, slot=None)
    assert processor.parse_reading("traffic/i-01/counts", json.dumps(nulls).encode())["temperature_c"] is None
    for bad, why in [(b"not json", "not JSON"), (b"[1]", "not a JSON object"),
                     (json.dumps(dict(good, seq=0)).encode(), "seq"),
                     (json.dumps(dict(good, seq=1.5)).encode(), "seq"),
                     (json.dumps(dict(good, hour=24)).encode(), "hour"),
                     (json.dumps(dict(good, vehicles_per_min="many")).encode(), "vehicles_per_min"),
                     (json.dumps(dict(good, queue_length=None)).encode(), "queue_length"),
                     (json.dumps({k: v for k, v in good.items() if k != "weather"}).encode(), "weather")]:
        with pytest.raises(processor.BadReading, match=why):
            processor.parse_reading("traffic/i-01/counts", bad)
    with pytest.raises(processor.BadReading, match="topic"):  # a sensor may only speak for its own topic
        processor.parse_reading("traffic/i-02/counts", json.dumps(good).encode())
