"""The algorithm catalogue, grid validation and metrics."""

from __future__ import annotations

import pytest

from control_plane.ml import catalogue


def test_every_algorithm_builds_seeded_and_single_threaded():
    for name, alg in catalogue.ALGORITHMS.items():
        for task in alg.estimators:
            est = catalogue.make_estimator(name, task, {}, seed=7)
            params = est.get_params()
            if "random_state" in params:
                assert params["random_state"] == 7, name
            if alg.threads:
                assert params["n_jobs"] == 1, name


def test_required_algorithms_are_there():
    assert {"linear_regression", "logistic_regression", "decision_tree", "random_forest", "gradient_boosting",
            "naive_bayes", "knn", "svm", "kmeans"} <= set(catalogue.ALGORITHMS)
    assert catalogue.algorithms_for("clustering") == ["kmeans", "gaussian_mixture"]


def test_unknown_or_unfit_algorithm():
    assert catalogue.check_algorithm("xgboost", "regression", "candidates[2]") == [
        ("candidates[2]", "unknown algorithm 'xgboost'; for regression use one of linear_regression, ridge, lasso, "
                          "decision_tree, random_forest, gradient_boosting, knn, svm")]
    assert catalogue.check_algorithm("naive_bayes", "regression", "candidates[0]")[0][1].startswith(
        "naive_bayes does not do regression; for regression use one of")


def test_grid_validation_names_algorithm_and_param():
    problems = catalogue.check_grid("random_forest", "classification",
                                    {"n_trees": [10], "max_depth": ["deep", 3], "n_jobs": 4, "min_samples_leaf": []},
                                    "candidates[1].grid")
    paths = [p for p, _ in problems]
    assert paths == ["candidates[1].grid.n_trees", "candidates[1].grid.max_depth[0]", "candidates[1].grid.n_jobs",
                     "candidates[1].grid.min_samples_leaf"]
    assert problems[0][1].startswith("random_forest has no parameter 'n_trees' (parameters: bootstrap, ccp_alpha,")
    assert "max_depth" in problems[1][1] and "'deep'" in problems[1][1]
    assert problems[2][1] == "n_jobs is set by Stratum from workers; leave it out"
    assert problems[3][1] == "give at least one value"


def test_grid_size_is_bounded_and_expanded_in_a_fixed_order():
    big = {"n_estimators": list(range(1, 21)), "max_depth": list(range(1, 7))}
    assert catalogue.check_grid("random_forest", "regression", big, "g") == [
        ("g", "120 parameter combinations; at most 100 per candidate")]
    assert catalogue.expand_grid({"b": [1, 2], "a": "x"}) == [{"a": "x", "b": 1}, {"a": "x", "b": 2}]
    assert catalogue.expand_grid(None) == [{}]


def test_metric_must_fit_the_task():
    assert catalogue.check_metric("rmse", "classification") == [
        ("selection.metric", "'rmse' does not fit classification; use one of accuracy, f1, precision, recall, roc_auc")]
    assert catalogue.check_metric("silhouette", "regression") == [
        ("selection.metric", "'silhouette' does not fit regression; use one of r2, rmse, mae")]
    assert catalogue.check_metric("auc", "classification")[0][1].startswith("unknown metric 'auc'")
    assert catalogue.check_metric("f1", "classification") == []


def test_lower_is_better_metrics_report_their_natural_sign():
    from sklearn.dummy import DummyRegressor
    import numpy as np

    X, y = np.zeros((4, 1)), np.array([0.0, 2.0, 0.0, 2.0])
    est = DummyRegressor().fit(X, y)
    value = catalogue.scorer("rmse", "regression")(est, X, y)
    assert value == pytest.approx(-1.0)
    assert catalogue.natural("rmse", value) == pytest.approx(1.0)
    assert catalogue.natural("r2", 0.5) == 0.5
