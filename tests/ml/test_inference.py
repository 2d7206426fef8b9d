"""Using an artifact: load it back, cast request instances, predict."""

from __future__ import annotations

import pytest

from control_plane.ml import inference
from control_plane.ml.train import train
from tests.ml import data


@pytest.fixture(scope="module")
def result():
    s = {"task": "classification", "target": "congested", "candidates": ["logistic_regression"],
         "preprocessing": [{"impute": "mean"}, {"one_hot": "all"}], "selection": {"cv_folds": 3}}
    return train(data.classification(), s)


def test_predict_from_saved_files(result, tmp_path):
    result.save(str(tmp_path))
    model, meta = inference.load(str(tmp_path))
    assert meta == result.metadata
    rows = [{"speed": 30.0, "hour": 8, "road": "a1", "rain": True, "id": 1},
            {"speed": 80, "hour": 3, "road": "never-seen", "rain": None}]
    got = inference.predict(model, meta, rows)
    assert got[0] in ("yes", "no") and got[1] in ("yes", "no") and all(type(v) is str for v in got)
    expected = result.model.predict(data.classification().drop(columns="congested").iloc[:3].astype(
        {f["name"]: f["input_dtype"] for f in meta["features"]}))
    same = inference.predict(*inference.load_bytes(result.files),
                             data.classification().drop(columns="congested").iloc[:3].to_dict("records"))
    assert same == list(expected)


def test_bad_instances_name_the_row_and_column(result):
    meta = result.metadata
    with pytest.raises(inference.PredictionError) as e:
        inference.instances_frame([{"speed": 1.0, "hour": 2, "road": "a1", "rain": False}, {"speed": 1.0}], meta)
    assert e.value.violations[0][0] == "instances[1].hour"
    with pytest.raises(inference.PredictionError) as e:
        inference.instances_frame([{"speed": 1.0, "hour": 2, "road": "a1", "rain": False},
                                   {"speed": "fast", "hour": 2, "road": "a1", "rain": False}], meta)
    assert e.value.violations == [("instances[1].speed", "'fast' is not a valid float value")]
    with pytest.raises(inference.PredictionError):
        inference.instances_frame([], meta)
