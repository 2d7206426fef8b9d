"""Preprocessing specs: what they build, and errors that name the step and the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from control_plane.ml import preprocess


@pytest.fixture
def df():
    return pd.DataFrame({"speed": [50.0, np.nan, 30.0, 20.0], "hour": [1, 2, 3, 4], "road": ["a", "b", None, "a"],
                         "rain": pd.array([True, None, False, True], dtype="boolean"),
                         "seen": pd.to_datetime(["2024-01-01"] * 4), "y": [0, 1, 0, 1]})


def test_full_plan_builds_a_dense_transformer(df):
    steps = [{"select": ["speed", "hour", "road", "rain"]}, {"impute": {"strategy": "median"}}, {"scale": "minmax"},
             {"one_hot": "all"}]
    plan, problems = preprocess.plan(steps, df, "y")
    assert problems == []
    assert plan.features == ["speed", "hour", "road", "rain"]
    assert plan.categorical == ["road", "rain"] and plan.numeric == ["speed", "hour"]
    X = preprocess.model_input(df, plan)
    assert X.dtypes.astype(str).to_dict() == {"speed": "float64", "hour": "int64", "road": "str", "rain": "float64"}
    out = preprocess.build(plan).fit_transform(X)
    assert out.shape == (4, 2 + 2 + 2)  # speed, hour; road a/b (None imputed to a); rain 0/1
    assert not np.isnan(out).any()
    assert out[:, 0].min() == 0.0 and out[:, 0].max() == 1.0


def test_steps_apply_in_one_order_whatever_the_list_says(df):
    a, _ = preprocess.plan([{"scale": "standard"}, {"impute": "mean"}, {"select": ["speed", "hour"]}], df, "y")
    b, _ = preprocess.plan([{"select": ["speed", "hour"]}, {"impute": "mean"}, {"scale": "standard"}], df, "y")
    assert a == b


def test_drop_missing_drops_training_rows(df):
    plan, problems = preprocess.plan(["drop_missing", {"select": ["speed", "hour"]}], df, "y")
    assert problems == []
    assert preprocess.rows_to_use(df, plan, "y").tolist() == [True, False, True, True]


def test_constant_impute_fills_text_with_missing(df):
    plan, _ = preprocess.plan([{"impute": {"strategy": "constant", "fill_value": -1}}, {"one_hot": ["road"]},
                               {"select": ["speed", "road"]}], df, "y")
    ct = preprocess.build(plan).fit(preprocess.model_input(df, plan))
    assert list(ct.get_feature_names_out()) == ["numeric__speed", "categorical__road_a", "categorical__road_b",
                                                "categorical__road_missing"]


@pytest.mark.parametrize("steps, problems", [
    ([{"select": ["speed", "nope"]}],
     [("preprocessing[0].select", "no column 'nope' in the dataset (columns: speed, hour, road, rain, seen, y)")]),
    ([{"select": ["speed", "y"]}], [("preprocessing[0].select", "'y' is the target; it cannot also be a feature")]),
    ([{"impute": "mean"}, {"frobnicate": 1}],
     [("preprocessing[1]", "unknown step 'frobnicate'; use one of select, drop_missing, impute, scale, one_hot")]),
    ([{"impute": {"strategy": "mode"}}, {"select": ["hour"]}],
     [("preprocessing[0].impute.strategy", "unknown strategy 'mode'; use one of mean, median, most_frequent, constant")]),
    ([{"impute": {"strategy": "mean", "fill_value": 0}}, {"select": ["hour"]}],
     [("preprocessing[0].impute.fill_value", "only the constant strategy takes a fill_value")]),
    ([{"select": ["hour"]}, {"scale": "robust"}],
     [("preprocessing[1].scale", "unknown scaler 'robust'; use one of standard, minmax")]),
    ([{"select": ["hour"]}, {"scale": "standard"}, {"scale": "minmax"}],
     [("preprocessing[2]", "'scale' already given at preprocessing[1]; give each step once")]),
    ([{"select": ["hour", "road"]}, {"one_hot": ["road", "speed"]}],
     [("preprocessing[1].one_hot", "column 'speed' is left out by select")]),
    ([{"select": ["hour", "road"]}],
     [("preprocessing", 'column \'road\' is text; one-hot encode it ({"one_hot": ["road"]}) or leave it out with select')]),
    ([{"select": ["hour", "seen"]}],
     [("preprocessing", "column 'seen' is a datetime, which models cannot take; leave it out with select")]),
    ([{"select": ["speed", "hour"]}],
     [("preprocessing", "column 'speed' has 1 missing values; add an impute or drop_missing step")]),
    ([{"scale": {"nope": 1}, "impute": "mean"}],
     [("preprocessing[0]", 'a step is an object with one key, e.g. {"scale": "standard"}')]),
])
def test_errors_name_the_step_and_the_column(df, steps, problems):
    plan, got = preprocess.plan(steps, df, "y")
    assert plan is None
    assert got == problems
