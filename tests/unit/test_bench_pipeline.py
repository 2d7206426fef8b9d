"""bench/pipeline's judging, on windows made up here: a step is sustained only when the sensors
published the offered rate, the lag between published and stored did not grow, and the store took
it in; the largest sustained rate stops at the first step that was not; published readings are
read from the sensors' own state files. (The bench itself needs a control plane, a node, Mosquitto
and BentoML: python -m bench.pipeline.run.)"""

from __future__ import annotations

import json

import pytest

from bench.pipeline import measure as ms


def window(offered, published, stored, lag_start=10, lag_end=10, seconds=10.0) -> ms.Window:
    return ms.Window(arm="x", offered=offered, seconds=seconds, published=int(published * seconds),
                     stored=int(stored * seconds), lag_start=lag_start, lag_end=lag_end)


@pytest.mark.parametrize("w, why", [
    (window(1000, 1000, 1000), ""),
    (window(1000, 900, 900), "sensors published 900/s of 1000/s"),
    (window(1000, 1000, 1000, lag_start=0, lag_end=2100), "lag grew 210/s"),
    (window(1000, 1000, 940), "stored 940/s of 1000/s"),
])
def test_a_step_is_sustained_only_when_published_stored_and_the_lag_holds(w, why):
    assert ms.verdict(w) == (why == "", why)


def test_the_largest_sustained_rate_stops_at_the_first_step_not_sustained():
    steps = [window(400, 400, 400), window(800, 800, 800), window(1600, 1200, 1200), window(3200, 3200, 3200)]
    assert ms.largest_sustained(steps[::-1]) == 800  # in rate order, whatever order they come in
    assert ms.largest_sustained([window(400, 100, 100)]) == 0


def test_published_readings_are_the_sum_of_the_sensors_last_seqs(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"i-01": 40, "i-02": 41}))
    b.write_text(json.dumps({"i-03": 7}))
    assert ms.published([a, b, tmp_path / "not-yet.json"]) == 88


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (ms.pct(values, 0.5), ms.pct(values, 0.99), ms.pct([], 0.5)) == (51.0, 99.0, None)
