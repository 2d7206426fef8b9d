"""Training: good paths per task, every bad input with its message, determinism, parallel == serial."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading

import joblib
import numpy as np
import pytest

from control_plane.errors import FailedPrecondition, InvalidArgument
from control_plane.ml.train import METADATA_FILE, MODEL_FILE, TrainingError, TrainingFailed, pool_context, train
from tests.ml import data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def spec(**changes):
    s = copy.deepcopy(data.CLASSIFICATION_SPEC)
    s.update(changes)
    return s


@pytest.fixture(scope="module")
def classified():
    """One serial classification run shared by the tests that only read it."""
    calls = []
    result = train(data.classification(), spec(), workers=1, seed=3, progress=lambda *a: calls.append(a))
    return result, calls


def test_classification_leaderboard_best_and_artifact(classified, tmp_path):
    result, calls = classified
    board = result.leaderboard
    assert [(e.algorithm, e.params) for e in sorted(board, key=lambda e: e.candidate)] == [
        ("logistic_regression", {}), ("naive_bayes", {}), ("decision_tree", {"max_depth": 2}),
        ("decision_tree", {"max_depth": 4})]
    assert [e.rank for e in board] == [1, 2, 3, 4]
    assert [e.score for e in board] == sorted((e.score for e in board), reverse=True)
    assert all(len(e.fold_scores) == 4 and e.error is None for e in board)
    assert board[0].score == pytest.approx(np.mean(board[0].fold_scores))
    assert result.best_algorithm == board[0].algorithm and 0.5 < result.best.score <= 1.0
    assert result.artifact_digest.startswith("sha256:") and result.version == result.artifact_digest[7:19]
    # progress: every fold, then the refit, counted up to the total
    assert calls[-1][:2] == (17, 17) and [c[0] for c in calls[:16]] == list(range(1, 17))
    assert calls[0][2].endswith("fold 1/4")

    meta = result.metadata
    assert meta["classes"] == ["no", "yes"] and meta["target_dtype"] == "str"
    assert [f["name"] for f in meta["features"]] == ["speed", "hour", "road", "rain"]
    assert meta["features"][3] == {"name": "rain", "type": "boolean", "input_dtype": "float64"}
    assert meta["versions"]["scikit-learn"] and meta["seed"] == 3 and meta["metric"] == "f1"

    paths = result.save(str(tmp_path / "v1"))
    assert sorted(os.path.basename(p) for p in paths) == [METADATA_FILE, MODEL_FILE]
    model = joblib.load(tmp_path / "v1" / MODEL_FILE)
    rows = data.classification(n=5, seed=9).drop(columns="congested")
    rows = rows.astype({f["name"]: f["input_dtype"] for f in meta["features"]})
    assert set(model.predict(rows)) <= {"no", "yes"}
    assert json.loads((tmp_path / "v1" / METADATA_FILE).read_text()) == meta


def test_regression_reports_rmse_positive_and_lowest_first():
    s = {"task": "regression", "target": "load",
         "candidates": ["linear_regression", "ridge", {"algorithm": "knn", "grid": {"n_neighbors": [3, 7]}},
                        "decision_tree"],
         "preprocessing": [{"one_hot": ["zone"]}, {"scale": "standard"}], "selection": {"metric": "rmse", "cv_folds": 3}}
    result = train(data.regression(), s, seed=1)
    scores = [e.score for e in result.leaderboard]
    assert all(v > 0 for v in scores) and scores == sorted(scores)
    assert result.best_algorithm in ("linear_regression", "ridge")
    assert result.metadata["classes"] is None and result.metadata["target_dtype"] == "float64"


def test_clustering_selects_by_held_out_silhouette():
    s = {"task": "clustering", "candidates": [{"algorithm": "kmeans", "grid": {"n_clusters": [2, 3, 5]}}, "gaussian_mixture"],
         "selection": {"metric": "silhouette", "cv_folds": 3}}
    result = train(data.clustering(), s, seed=0)
    assert result.best_algorithm == "kmeans" and result.best.params == {"n_clusters": 3}
    assert -1 <= result.best.score <= 1
    assert len(set(result.model.predict(data.clustering(n=30, seed=5)))) == 3


def test_a_failing_candidate_ranks_last_with_its_error():
    s = spec(candidates=["naive_bayes", {"algorithm": "knn", "grid": {"n_neighbors": 500}}])
    result = train(data.classification(), s)
    assert [e.algorithm for e in result.leaderboard] == ["naive_bayes", "knn"]
    last = result.leaderboard[-1]
    assert last.score is None and last.error.startswith("ValueError: Expected n_neighbors <= n_samples_fit")
    with pytest.raises(TrainingFailed, match="^every candidate failed: knn: ValueError") as e:
        train(data.classification(), spec(candidates=[{"algorithm": "knn", "grid": {"n_neighbors": 500}}]))
    assert isinstance(e.value, FailedPrecondition)


def test_raising_from_progress_cancels():
    class Cancelled(Exception):
        pass

    def progress(done, total, job):
        if done == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        train(data.classification(), spec(), workers=2, progress=progress)


# ---------------------------------------------------------------- bad input


def _problems(df, s, **kw):
    calls = []
    with pytest.raises(TrainingError) as e:
        train(df, s, progress=lambda *a: calls.append(a), **kw)
    assert calls == []  # nothing started: no fold, no refit, no artifact
    assert isinstance(e.value, InvalidArgument) and isinstance(e.value, ValueError)
    assert str(e.value) == "; ".join(f"{p}: {m}" for p, m in e.value.violations)
    return e.value.violations


def test_missing_target_column():
    assert _problems(data.classification(), spec(target="jam")) == [
        ("target", "no column 'jam' in the dataset (columns: speed, hour, road, rain, congested)")]


def test_non_numeric_target_for_regression():
    s = {"task": "regression", "target": "road", "candidates": ["linear_regression"],
         "preprocessing": [{"one_hot": "all"}], "selection": {"metric": "r2", "cv_folds": 3}}
    assert _problems(data.classification(), s) == [
        ("target", "regression needs a numeric target; column 'road' is string")]


def test_unknown_algorithm():
    problems = _problems(data.classification(), spec(candidates=["naive_bayes", "random_forest", "xgboost"]))
    assert problems == [("candidates[2]", "unknown algorithm 'xgboost'; for classification use one of "
                                          "logistic_regression, decision_tree, random_forest, gradient_boosting, "
                                          "naive_bayes, knn, svm")]


def test_metric_that_does_not_fit_the_task():
    assert _problems(data.classification(), spec(selection={"metric": "rmse", "cv_folds": 4})) == [
        ("selection.metric", "'rmse' does not fit classification; use one of accuracy, f1, precision, recall, roc_auc")]


def test_every_problem_at_once_with_its_path():
    s = spec(task="classification", candidates=["svm", {"algorithm": "kmeans"},
                                                {"algorithm": "random_forest", "grid": {"trees": [1]}}],
             selection={"metric": "silhouette", "cv_folds": 1}, extra=True)
    paths = [p for p, _ in _problems(data.classification(), s)]
    assert paths == ["extra", "candidates[1]", "candidates[2].grid.trees", "selection.metric", "selection.cv_folds"]


def test_spec_and_data_problems_together():
    s = spec(target="jam", candidates=["naive_bayes", "xgboost"], selection={"metric": "r2", "cv_folds": 4},
             preprocessing=[{"select": ["speed", "nope"]}])
    assert [p for p, _ in _problems(data.classification(), s)] == [
        "target", "candidates[1]", "preprocessing[0].select", "selection.metric"]
    from control_plane.ml.train import check_spec
    assert [p for p, _ in check_spec(s)] == ["candidates[1]", "selection.metric"]  # plan time: no data needed


@pytest.mark.parametrize("df, s, expected", [
    (data.clustering(), {"task": "clustering", "target": "lat", "candidates": ["kmeans"]},
     [("target", "clustering takes no target; leave it out")]),
    (data.classification(), {"task": "classification", "candidates": ["svm"]},
     [("target", "classification needs a target column")]),
    (data.classification(), spec(task="forecasting"),
     [("task", "unknown task 'forecasting'; use one of classification, regression, clustering")]),
    (data.classification(), spec(candidates=[]), [("candidates", "give at least one algorithm")]),
    (data.regression(n=12), {"task": "regression", "target": "load", "candidates": ["ridge"],
                             "preprocessing": [{"one_hot": ["zone"]}], "selection": {"cv_folds": 10}},
     [("selection.cv_folds", "12 usable rows are too few for 10 folds (need at least 20)")]),
    (data.classification(classes=3), spec(candidates=["svm", "knn"], selection={"metric": "roc_auc"}),
     [("candidates[0]", "svm gives no class probabilities, which roc_auc needs for more than two classes")]),
    (data.regression(), spec(target="x1", selection={"metric": "accuracy", "cv_folds": 3},
                             preprocessing=[{"one_hot": ["zone"]}]),
     [("target", "column 'x1' holds continuous values; use task = \"regression\"")]),
    (data.classification().assign(road="a1"), spec(target="road", preprocessing=[{"select": ["speed"]}]),
     [("target", "column 'road' has only one class ('a1') in the rows used")]),
    (data.classification(), spec(preprocessing=[{"select": ["speed", "road"]}]),
     [("preprocessing", 'column \'road\' is text; one-hot encode it ({"one_hot": ["road"]}) or leave it out with select')]),
    (data.classification().iloc[:0], spec(), [("dataset", "no rows")]),
])
def test_bad_input(df, s, expected):
    assert _problems(df, s) == expected


def test_rare_class_needs_enough_rows_per_fold():
    df = data.classification()
    df.loc[:2, "congested"] = "jammed"
    problems = _problems(df, spec())
    assert problems == [("selection.cv_folds", "4 folds need at least 4 rows of each class; too few of 'jammed' (3 rows)")]


def test_workers_and_seed_are_checked():
    assert _problems(data.classification(), spec(), workers=0) == [("workers", "give a whole number of at least 1")]
    assert _problems(data.classification(), spec(), seed=-1) == [("seed", "give a whole number from 0 to 2**32 - 1")]


# ---------------------------------------------------------------- determinism


RUN_ONCE = """
import json, sys
from control_plane.ml.train import train
from tests.ml import data
r = train(data.classification(), {spec!r}, workers=int(sys.argv[1]), seed=11)
print(json.dumps({{"digest": r.artifact_digest, "board": [e.as_dict() for e in r.leaderboard]}}))
"""


def _run_in_process(workers: int, hash_seed: str) -> dict:
    s = spec(candidates=["logistic_regression", {"algorithm": "random_forest", "grid": {"n_estimators": [5, 15]}},
                         "gradient_boosting", "knn"])
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", RUN_ONCE.format(spec=s), str(workers)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_same_inputs_same_scores_and_digest_across_processes_and_worker_counts():
    # Different hash seeds: nothing may depend on set or dict-of-str iteration order.
    serial = _run_in_process(1, "1")
    parallel = _run_in_process(2, "2")
    assert serial == parallel
    assert len(serial["board"]) == 5 and all(e["score"] is not None for e in serial["board"])


def test_parallel_equals_serial_in_process(classified):
    serial, _ = classified
    parallel = train(data.classification(), spec(), workers=2, seed=3)
    assert [e.as_dict() for e in parallel.leaderboard] == [e.as_dict() for e in serial.leaderboard]
    assert parallel.artifact_digest == serial.artifact_digest


def test_another_seed_gives_another_version(classified):
    serial, _ = classified
    other = train(data.classification(), spec(), seed=4)
    assert other.artifact_digest != serial.artifact_digest


def test_the_pool_forks_only_a_process_without_other_threads():
    # A training job runs one thread: its workers fork from it with scikit-learn imported. Any other
    # thread (gRPC's, a test's) could hold a lock a fork would copy held: a forkserver then.
    code = "from control_plane.ml.train import pool_context; print(pool_context().get_start_method())"
    alone = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.strip() == "fork"
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert pool_context().get_start_method() == "forkserver"
    finally:
        release.set()
        other.join()
