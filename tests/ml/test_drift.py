"""Input drift: reference profiles of the training data, compared with sampled request rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.ml import drift
from tests.ml import data

FEATURES = [{"name": "speed", "type": "float", "input_dtype": "float64"},
            {"name": "hour", "type": "integer", "input_dtype": "int64"},
            {"name": "road", "type": "string", "input_dtype": "str"},
            {"name": "rain", "type": "boolean", "input_dtype": "float64"}]


def rows(df: pd.DataFrame) -> list[dict]:
    """Request rows as a router would sample them: JSON-native values, no target."""
    return json.loads(df.drop(columns="congested").to_json(orient="records"))


@pytest.fixture(scope="module")
def reference():
    return drift.reference_profile(data.classification(n=2000, seed=0), FEATURES)


def drifted(report) -> set[str]:
    return {name for name, f in report.features.items() if f.drifted}


# ---------------------------------------------------------------- same distribution


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fresh_sample_of_the_same_distribution_does_not_drift(reference, seed):
    report = drift.compare(reference, rows(data.classification(n=300, seed=seed)))
    assert report.enough and not report.drifted, report.reason
    assert report.samples == 300 and set(report.features) == {"speed", "hour", "road", "rain"}
    assert all(f.psi < 0.1 and f.n == 300 for f in report.features.values())
    assert all(f.ks_pvalue is not None for n, f in report.features.items() if n in ("speed", "hour"))
    assert report.reason == "no drift in 4 features over 300 samples"


def test_the_json_round_trip_of_the_profile_changes_nothing(reference):
    sample = rows(data.classification(n=300, seed=1))
    assert drift.compare(json.loads(json.dumps(reference)), sample) == drift.compare(reference, sample)


# ---------------------------------------------------------------- real drift


def test_a_shifted_mean_drifts_only_that_feature(reference):
    df = data.classification(n=300, seed=1)
    df["speed"] += 15  # 1.5 standard deviations
    report = drift.compare(reference, rows(df))
    assert report.drifted and drifted(report) == {"speed"}
    speed = report.features["speed"]
    assert speed.psi > 0.2 and speed.ks_statistic > 0.1 and speed.ks_pvalue < 0.01
    assert report.reason.startswith("drift in speed (PSI ") and "hour" not in report.reason


def test_a_changed_category_mix_drifts_exactly_those_features(reference):
    df = data.classification(n=300, seed=1)
    rng = np.random.default_rng(7)
    df["road"] = rng.choice(["a1", "b2", "c3"], len(df), p=[0.8, 0.1, 0.1])  # was a third each
    df["rain"] = rng.random(len(df)) > 0.3  # was 30% rain, now 70%
    report = drift.compare(reference, rows(df))
    assert drifted(report) == {"road", "rain"}
    road, rain = report.features["road"], report.features["rain"]
    assert road.ks_statistic is None and road.ks_pvalue is None
    # Named most drifted first, each with its PSI to two places.
    first, second = sorted([("road", road.psi), ("rain", rain.psi)], key=lambda x: -x[1])
    assert report.reason == f"drift in {first[0]} (PSI {first[1]:.2f}), {second[0]} (PSI {second[1]:.2f})"


def test_categories_never_seen_in_training_count_as_drift(reference):
    df = data.classification(n=300, seed=1)
    df.loc[::2, "road"] = "z9"  # half the traffic on a road the model never saw
    report = drift.compare(reference, rows(df))
    assert drifted(report) == {"road"} and report.features["road"].psi > 1


def test_ks_catches_a_moderate_shift_that_psi_alone_would_miss(reference):
    df = data.classification(n=2000, seed=1)
    df["speed"] += 3.5  # 0.35 standard deviations
    speed = drift.compare(reference, rows(df)).features["speed"]
    assert speed.psi < 0.2 and speed.ks_statistic > 0.1 and speed.ks_pvalue < 0.01 and speed.drifted


def test_a_trivial_shift_is_significant_with_many_samples_but_not_drift():
    reference = drift.reference_profile(data.classification(n=20000, seed=0), FEATURES, max_values=20000)
    df = data.classification(n=20000, seed=1)
    df["speed"] += 1  # 0.1 standard deviations
    speed = drift.compare(reference, rows(df)).features["speed"]
    assert speed.ks_pvalue < 0.01 and speed.ks_statistic < 0.1  # KS alone would flag it
    assert speed.psi < 0.2 and not speed.drifted


def test_thresholds_are_the_callers(reference):
    df = data.classification(n=300, seed=1)
    df["speed"] += 3.5
    strict = drift.compare(reference, rows(df), psi_threshold=0.05)
    lax = drift.compare(reference, rows(df), psi_threshold=5, ks_alpha=1e-300)
    assert "speed" in drifted(strict) and not lax.drifted


# ---------------------------------------------------------------- too few samples


def test_too_few_samples_is_not_enough_and_never_drift(reference):
    df = data.classification(n=49, seed=1)
    df["speed"] += 50  # blatant, but 49 rows are too few to say
    report = drift.compare(reference, rows(df))
    assert not report.enough and not report.drifted and report.samples == 49 and report.features == {}
    assert report.reason == "not enough samples: 49 usable rows of 49, need 50"
    assert drift.compare(reference, rows(data.classification(n=50, seed=1))).enough
    assert not drift.compare(reference, []).enough


def test_rows_without_a_usable_value_do_not_count_towards_enough(reference):
    good = rows(data.classification(n=45, seed=1))
    junk = [None, "speed=3", [1, 2], {}, {"speed": "fast", "unknown": 1}, {"hour": None}]
    report = drift.compare(reference, good + junk)
    assert report.samples == 45 and report.received == 51 and not report.enough
    assert "45 usable rows of 51" in report.reason


# ---------------------------------------------------------------- bad rows


def test_bad_values_count_as_missing_without_raising(reference):
    good = rows(data.classification(n=100, seed=1))
    bad = [{"speed": "fast", "hour": "7", "road": "a1", "rain": True},  # text in numeric; numeric text
           {"speed": None, "hour": 7.0, "road": None, "rain": "yes"},
           {"hour": True, "road": ["a1"], "rain": 2},  # wrong types; speed absent
           {"speed": "nan", "hour": float("inf"), "road": {"x": 1}, "rain": "maybe", "extra": 1},
           {"speed": 10 ** 400, "hour": "1e999", "rain": None}]  # overflows
    report = drift.compare(reference, good + bad)
    assert report.samples == 102 and report.received == 105  # the last three have nothing usable
    n = {name: f.n for name, f in report.features.items()}
    assert n == {"speed": 100, "hour": 102, "road": 101, "rain": 101}
    assert report.features["speed"].missing_rate == pytest.approx(2 / 102)
    json.dumps(report.to_dict(), allow_nan=False)


def test_numbers_as_text_and_booleans_as_numbers_read_the_same(reference):
    plain = rows(data.classification(n=200, seed=1))
    texty = [{"speed": str(r["speed"]), "hour": f" {r['hour']} ", "road": r["road"],
              "rain": ["false", "true"][r["rain"]]} for r in plain]
    served = [{**r, "rain": float(r["rain"]), "hour": float(r["hour"])} for r in plain]  # as inference casts
    assert drift.compare(reference, texty) == drift.compare(reference, plain) == drift.compare(reference, served)


def test_a_feature_with_too_few_values_is_reported_but_not_judged(reference):
    sample = rows(data.classification(n=200, seed=1))
    for r in sample[:180]:
        del r["hour"]
    hour = drift.compare(reference, sample).features["hour"]
    assert hour.n == 20 and hour.psi is None and not hour.drifted and hour.missing_rate == pytest.approx(0.9)


# ---------------------------------------------------------------- the profile


def test_profile_is_bounded_json_and_deterministic():
    df = data.classification(n=5000, seed=0)
    df.loc[::10, "speed"] = np.nan  # 10% missing
    profile = drift.reference_profile(df, FEATURES, max_values=100, seed=3)
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile
    assert profile == drift.reference_profile(df, FEATURES, max_values=100, seed=3)
    speed = profile["features"]["speed"]
    assert len(speed["values"]) == 100 and speed["values"] == sorted(speed["values"])
    assert set(speed["values"]) <= set(df["speed"].dropna()) and not any(map(math.isnan, speed["values"]))
    assert speed["missing_rate"] == pytest.approx(0.1)
    assert speed["edges"] == sorted(speed["edges"]) and len(speed["edges"]) == 9
    assert len(speed["bins"]) == 10 and sum(speed["bins"]) == pytest.approx(1)
    assert profile["features"]["hour"]["edges"] == [float(int(e)) for e in profile["features"]["hour"]["edges"]]
    assert profile["features"]["rain"]["frequencies"].keys() == {"true", "false"}
    assert len(json.dumps(drift.reference_profile(df, FEATURES, max_values=10))) < 3000
    assert drift.reference_profile(df, FEATURES, max_values=100, seed=4) != profile


def test_small_columns_keep_every_value():
    df = data.classification(n=30, seed=0)
    speed = drift.reference_profile(df, FEATURES)["features"]["speed"]
    assert speed["values"] == sorted(df["speed"].tolist())


def test_only_the_top_50_categories_are_kept():
    names = [f"r{i:02d}" for i in range(80) for _ in range(i + 1)]  # r79 most frequent, r00 least
    df = pd.DataFrame({"road": names + [None] * 10, "when": pd.Timestamp("2024-01-01")})
    profile = drift.reference_profile(df, [{"name": "road", "type": "string"}, {"name": "when", "type": "datetime"}])
    road = profile["features"]["road"]
    assert list(road["frequencies"]) == [f"r{i:02d}" for i in range(79, 29, -1)] + ["__other__"]
    assert road["frequencies"]["__other__"] == pytest.approx(sum(range(1, 31)) / len(names))
    assert sum(road["frequencies"].values()) == pytest.approx(1)
    assert road["missing_rate"] == pytest.approx(10 / (len(names) + 10))
    assert "when" not in profile["features"]  # datetimes never reach a model


def test_empty_and_all_missing_columns_profile_without_error():
    df = pd.DataFrame({"x": [np.nan] * 5, "c": [None] * 5})
    features = [{"name": "x", "type": "float"}, {"name": "c", "type": "string"}]
    profile = drift.reference_profile(df, features)
    assert profile["features"]["x"] == {"type": "float", "missing_rate": 1.0, "values": [], "edges": [], "bins": []}
    report = drift.compare(profile, [{"x": 1.0, "c": "a"}] * 60)
    assert report.enough and not report.drifted and report.features["x"].psi is None
    assert drift.reference_profile(df.iloc[:0], features)["features"]["x"]["missing_rate"] == 0.0


# ---------------------------------------------------------------- properties

counts = st.lists(st.integers(0, 10_000), min_size=1, max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["1", "0", "true", "nan", "inf", "-3.5", "a1", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5)
request_rows = st.lists(
    st.dictionaries(st.sampled_from(["speed", "hour", "road", "rain", "other"]), json_values) | json_values,
    max_size=80)


@given(counts, st.data())
def test_psi_is_never_negative_and_zero_for_identical_histograms(expected, draw):
    actual = draw.draw(st.lists(st.integers(0, 10_000), min_size=len(expected), max_size=len(expected)))
    value = drift.psi(expected, actual)
    assert value >= 0 and math.isfinite(value)
    assert drift.psi(expected, expected) == 0


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request_rows, st.integers(0, 60))
def test_compare_never_raises_on_arbitrary_rows(reference, sample, min_samples):
    report = drift.compare(reference, sample, min_samples=min_samples)
    json.dumps(report.to_dict(), allow_nan=False)
    assert report.samples <= report.received == len(sample)
    assert all(f.psi is None or f.psi >= 0 for f in report.features.values())
    assert report.drifted == any(f.drifted for f in report.features.values())
    assert not report.drifted or report.enough
