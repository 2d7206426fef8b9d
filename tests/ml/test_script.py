"""The downloadable training script: run outside Stratum, it gets the leaderboard's scores exactly."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from control_plane.ml.datasets import load_file
from control_plane.ml.script import render
from control_plane.ml.train import train
from tests.ml import data


def _run_script(tmp_path, result, dataset_path):
    source = render(result.metadata, result.version, dataset_path.name)
    ast.parse(source)
    assert "control_plane" not in source and "stratum" not in source.split('"""', 2)[2]  # plain scikit-learn
    script = tmp_path / "train.py"
    script.write_text(source)
    out = subprocess.run([sys.executable, str(script), str(dataset_path), "--out", str(tmp_path / "m.joblib")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no warnings either
    assert (tmp_path / "m.joblib").exists()
    return json.loads(out.stdout.strip().splitlines()[-1]), source


def test_classification_script_from_csv(tmp_path):
    path = tmp_path / "traffic.csv"
    df = data.classification()
    df.loc[5, "speed"] = None  # exercise imputation in both
    df.to_csv(path, index=False)
    ds = load_file(str(path))
    s = {"task": "classification", "target": "congested",
         "candidates": ["naive_bayes", {"algorithm": "random_forest", "grid": {"n_estimators": [20], "max_depth": [4]}}],
         "preprocessing": [{"impute": {"strategy": "median"}}, {"one_hot": "all"}, {"scale": "standard"}],
         "selection": {"metric": "f1", "cv_folds": 4}}
    result = train(ds.frame, s, seed=5, dataset_digest=ds.digest)
    got, source = _run_script(tmp_path, result, path)
    best = result.best
    assert (got["score"], got["std"], got["fold_scores"]) == (best.score, best.std, best.fold_scores)
    assert 'make_scorer(f1_score, pos_label="yes")' in source
    assert f"Train {best.algorithm} the way Stratum did for model version {result.version}." in source


def test_regression_script_from_parquet_reports_rmse_positive(tmp_path):
    path = tmp_path / "load.parquet"
    data.regression().to_parquet(path)
    s = {"task": "regression", "target": "load", "candidates": [{"algorithm": "gradient_boosting",
                                                                  "grid": {"n_estimators": [30], "max_depth": [2]}}],
         "preprocessing": [{"one_hot": ["zone"]}], "selection": {"metric": "rmse", "cv_folds": 3}}
    result = train(load_file(str(path)).frame, s, seed=2)
    got, _ = _run_script(tmp_path, result, path)
    assert got["score"] > 0
    assert (got["score"], got["std"], got["fold_scores"]) == (result.best.score, result.best.std, result.best.fold_scores)


def test_clustering_script_from_excel(tmp_path):
    path = tmp_path / "points.xlsx"
    data.clustering().to_excel(path, index=False)
    s = {"task": "clustering", "candidates": [{"algorithm": "kmeans", "grid": {"n_clusters": [3]}}],
         "preprocessing": [{"scale": "minmax"}], "selection": {"metric": "silhouette", "cv_folds": 3}}
    result = train(load_file(str(path)).frame, s, seed=0)
    got, source = _run_script(tmp_path, result, path)
    assert (got["score"], got["fold_scores"]) == (result.best.score, result.best.fold_scores)
    assert "def silhouette(estimator, X, y=None) -> float:" in source


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "roc_auc"])
def test_every_classification_scorer_renders(metric):
    from control_plane.ml import catalogue

    for classes in (["no", "yes"], [0, 1, 2]):
        imports, expr = catalogue.scorer_source(metric, "classification", classes)
        ns: dict = {}
        for line in imports:
            exec(line, ns)
        built = eval(expr, ns)
        assert repr(built) == repr(catalogue.scorer(metric, "classification", classes))


def _every_algorithm():
    from control_plane.ml import catalogue

    return [(name, task) for name, alg in catalogue.ALGORITHMS.items() for task in alg.estimators]


@pytest.mark.parametrize("name, task", _every_algorithm())
def test_every_algorithm_trains_and_its_script_builds_the_same_pipeline(name, task):
    if task == "classification":
        df, s = data.classification(n=120), {"target": "congested", "preprocessing": [{"one_hot": "all"}]}
    elif task == "regression":
        df, s = data.regression(n=120), {"target": "load", "preprocessing": [{"one_hot": "all"}, {"scale": "minmax"}]}
    else:
        df, s = data.clustering(n=90), {}
    s.update(task=task, candidates=[name], selection={"cv_folds": 3})
    result = train(df, s, seed=4)
    assert result.best.score is not None, result.best.error
    namespace = {"__name__": "generated"}
    exec(compile(render(result.metadata, result.version), "train.py", "exec"), namespace)
    built = namespace["build_model"]()
    assert repr(built.get_params(deep=True)) == repr(result.model.get_params(deep=True))
