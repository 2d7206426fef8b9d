"""The algorithms and metrics a model spec may name, and how they become scikit-learn objects.

Every estimator is built the same way: Stratum's defaults over scikit-learn's, `random_state`
set to the seed and `n_jobs` to 1 wherever the estimator has them (parallelism is ours: one
candidate fold per worker process; nested thread pools would make runs slower and, for some
estimators, the floating-point sums order-dependent), then the grid point's parameters.
`n_jobs` is reserved in grids for every estimator, so a grid cannot undo this.
"""

from __future__ import annotations

import importlib
import json
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from stratum.validation import shown
from sklearn.metrics import (
    accuracy_score,
    calinski_harabasz_score,
    f1_score,
    make_scorer,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
    silhouette_score,
)

TASKS = ("classification", "regression", "clustering")
MAX_GRID_POINTS = 100  # per candidate: a typo like range(1000) should not queue a day of work
MAX_GRID_NUMBER = 1e12  # magnitude of a number in a grid: larger ones are typos (and slow to compare exactly)
MAX_GRID_STRING = 256  # characters of a string in a grid
RESERVED_PARAMS = {"random_state": "the model's seed", "n_jobs": "workers"}

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class Algorithm:
    name: str
    estimators: dict[str, tuple[str, str]]  # task -> (public module, class name)
    defaults: dict[str, dict[str, Any]]  # task -> parameters that differ from scikit-learn's defaults
    probabilities: bool = True  # has predict_proba (multiclass roc_auc needs it)
    threads: bool = False  # has a working n_jobs (LogisticRegression's does nothing since 1.8)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in [
    Algorithm("linear_regression", {"regression": ("sklearn.linear_model", "LinearRegression")}, {}),
    Algorithm("ridge", {"regression": ("sklearn.linear_model", "Ridge")}, {}),
    Algorithm("lasso", {"regression": ("sklearn.linear_model", "Lasso")}, {}),
    # lbfgs stops at 100 iterations by default, often before converging on unscaled data.
    Algorithm("logistic_regression", {"classification": ("sklearn.linear_model", "LogisticRegression")},
              {"classification": {"max_iter": 1000}}),
    Algorithm("decision_tree", {"classification": ("sklearn.tree", "DecisionTreeClassifier"),
                                "regression": ("sklearn.tree", "DecisionTreeRegressor")}, {}),
    Algorithm("random_forest", {"classification": ("sklearn.ensemble", "RandomForestClassifier"),
                                "regression": ("sklearn.ensemble", "RandomForestRegressor")}, {}, threads=True),
    Algorithm("gradient_boosting", {"classification": ("sklearn.ensemble", "GradientBoostingClassifier"),
                                    "regression": ("sklearn.ensemble", "GradientBoostingRegressor")}, {}),
    Algorithm("naive_bayes", {"classification": ("sklearn.naive_bayes", "GaussianNB")}, {}),
    Algorithm("knn", {"classification": ("sklearn.neighbors", "KNeighborsClassifier"),
                      "regression": ("sklearn.neighbors", "KNeighborsRegressor")}, {}, threads=True),
    # SVC's probability=True is deprecated in scikit-learn 1.9; roc_auc uses decision_function.
    Algorithm("svm", {"classification": ("sklearn.svm", "SVC"), "regression": ("sklearn.svm", "SVR")}, {},
              probabilities=False),
    Algorithm("kmeans", {"clustering": ("sklearn.cluster", "KMeans")}, {}),
    # One component (the default) is no clustering at all; start where KMeans does.
    Algorithm("gaussian_mixture", {"clustering": ("sklearn.mixture", "GaussianMixture")},
              {"clustering": {"n_components": 8}}),
]}


def algorithms_for(task: str) -> list[str]:
    return [n for n, a in ALGORITHMS.items() if task in a.estimators]


def estimator_class(name: str, task: str) -> type:
    module, cls = ALGORITHMS[name].estimators[task]
    return getattr(importlib.import_module(module), cls)


def fixed_params(name: str, task: str, seed: int) -> dict[str, Any]:
    """The parameters Stratum sets before the grid's: defaults, seed, one thread."""
    params = dict(ALGORITHMS[name].defaults.get(task, {}))
    known = estimator_class(name, task)().get_params()
    if "random_state" in known:
        params["random_state"] = seed
    if ALGORITHMS[name].threads:
        params["n_jobs"] = 1
    return params


def make_estimator(name: str, task: str, params: dict[str, Any], seed: int):
    return estimator_class(name, task)(**{**fixed_params(name, task, seed), **params})


def check_algorithm(name: Any, task: str, path: str) -> Problems:
    if not isinstance(name, str) or name not in ALGORITHMS:
        return [(path, f"unknown algorithm {shown(name)}; for {task} use one of {', '.join(algorithms_for(task))}")]
    if task not in ALGORITHMS[name].estimators:
        return [(path, f"{name} does not do {task}; for {task} use one of {', '.join(algorithms_for(task))}")]
    return []


def _scalar(v: Any) -> bool:
    if isinstance(v, str):
        return len(v) <= MAX_GRID_STRING
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return math.isfinite(v) and abs(v) <= MAX_GRID_NUMBER
    return v is None or isinstance(v, bool)


def check_grid(name: str, task: str, grid: Any, path: str) -> Problems:
    """A grid maps parameter -> list of values (a single value means that value alone). Every
    parameter must be one the estimator has (estimator.get_params()) and every value one that
    scikit-learn's own parameter validation accepts."""
    if grid is None:
        return []
    if not isinstance(grid, dict):
        return [(path, 'give an object of parameter -> list of values, e.g. {"max_depth": [3, 5]}')]
    problems: Problems = []
    est = estimator_class(name, task)()
    known = est.get_params()
    points = math.prod(len(v) if isinstance(v, list) and v else 1 for v in grid.values())
    if points > MAX_GRID_POINTS:  # before checking each value: a list of 10,000 would take a while
        return [(path, f"{points} parameter combinations; at most {MAX_GRID_POINTS} per candidate")]
    for param, values in grid.items():
        where = f"{path}.{param}"
        if param in RESERVED_PARAMS:
            problems.append((where, f"{param} is set by Stratum from {RESERVED_PARAMS[param]}; leave it out"))
            continue
        if param not in known:
            params = ", ".join(p for p in sorted(known) if p not in RESERVED_PARAMS)
            problems.append((where, f"{name} has no parameter {shown(param)} (parameters: {params})"))
            continue
        values = values if isinstance(values, list) else [values]
        if not values:
            problems.append((where, "give at least one value"))
            continue
        for k, v in enumerate(values):
            if not _scalar(v):
                problems.append((f"{where}[{k}]", f"{shown(v)} is not a number (finite, at most {MAX_GRID_NUMBER:g} "
                                                  f"in magnitude), string (at most {MAX_GRID_STRING} characters), "
                                                  "boolean or null"))
                continue
            try:
                estimator_class(name, task)(**{param: v})._validate_params()
            except AttributeError:
                pass  # an estimator without declared constraints: fit will tell
            except (ValueError, TypeError) as e:  # InvalidParameterError is a ValueError
                problems.append((f"{where}[{k}]", " ".join(str(e).split())[:300]))  # it quotes the value
    return problems


def expand_grid(grid: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Grid points in a fixed order: parameters sorted by name, values in the order given."""
    if not grid:
        return [{}]
    names = sorted(grid)
    lists = [v if isinstance(v, list) else [v] for v in (grid[n] for n in names)]
    return [dict(zip(names, combo)) for combo in itertools.product(*lists)]


# ---------------------------------------------------------------- metrics

METRICS = {
    "classification": ("accuracy", "f1", "precision", "recall", "roc_auc"),
    "regression": ("r2", "rmse", "mae"),
    "clustering": ("silhouette", "calinski_harabasz"),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2", "clustering": "silhouette"}
LOWER_IS_BETTER = {"rmse", "mae"}  # their scorers return the negative, so higher is better throughout


def check_metric(metric: Any, task: str, path: str = "selection.metric") -> Problems:
    fits = METRICS.get(task, ())
    if metric in fits:
        return []
    for other, names in METRICS.items():
        if metric in names:
            return [(path, f"{shown(metric)} does not fit {task}; use one of {', '.join(fits)}")]
    return [(path, f"unknown metric {shown(metric)}; for {task} use one of {', '.join(fits)}")]


def natural(metric: str, value: float) -> float:
    """A scorer's value (higher is better) in the metric's own sign (rmse and mae positive)."""
    return -value if metric in LOWER_IS_BETTER else value


def _cluster_input(estimator, X):
    # Score clusters in the space the model sees: after the pipeline's preprocessing.
    return estimator[:-1].transform(X) if hasattr(estimator, "steps") else X


def silhouette(estimator, X, y=None) -> float:
    """Silhouette of the held-out rows under the clusters the model assigns them; -1 (the worst)
    when they fall into fewer than 2 clusters or each into its own, where it is undefined."""
    labels = estimator.predict(X)
    if not 2 <= len(np.unique(labels)) <= len(labels) - 1:
        return -1.0
    return float(silhouette_score(_cluster_input(estimator, X), labels))


def calinski_harabasz(estimator, X, y=None) -> float:
    """Calinski-Harabasz index of the held-out rows; 0 (the worst) when undefined."""
    labels = estimator.predict(X)
    if not 2 <= len(np.unique(labels)) <= len(labels) - 1:
        return 0.0
    return float(calinski_harabasz_score(_cluster_input(estimator, X), labels))


def scorer(metric: str, task: str, classes: list | None = None):
    """A callable scorer(estimator, X, y) -> float, higher is better. Binary f1/precision/recall
    score the positive class, the last of the sorted classes (scikit-learn's classes_[1]);
    with more classes they are macro averages."""
    if task == "clustering":
        return {"silhouette": silhouette, "calinski_harabasz": calinski_harabasz}[metric]
    if task == "regression":
        return {"r2": make_scorer(r2_score),
                "rmse": make_scorer(root_mean_squared_error, greater_is_better=False),
                "mae": make_scorer(mean_absolute_error, greater_is_better=False)}[metric]
    binary = classes is not None and len(classes) == 2
    if metric == "accuracy":
        return make_scorer(accuracy_score)
    if metric == "roc_auc":
        if binary:
            return make_scorer(roc_auc_score, response_method=("decision_function", "predict_proba"))
        return make_scorer(roc_auc_score, response_method="predict_proba", multi_class="ovr")
    fn = {"f1": f1_score, "precision": precision_score, "recall": recall_score}[metric]
    kw: dict[str, Any] = {"pos_label": classes[-1]} if binary else {"average": "macro"}
    if metric != "f1":
        kw["zero_division"] = 0.0  # no predicted positives in a fold scores 0, silently
    return make_scorer(fn, **kw)


def scorer_source(metric: str, task: str, classes: list | None = None) -> tuple[list[str], str]:
    """The same scorer as Python source for the generated script: (import lines, expression).
    Clustering scorers are functions the script defines itself (see script.py)."""
    if task == "clustering":
        return [], metric
    if task == "regression":
        fn, kw = {"r2": ("r2_score", ""), "rmse": ("root_mean_squared_error", ", greater_is_better=False"),
                  "mae": ("mean_absolute_error", ", greater_is_better=False")}[metric]
        return [f"from sklearn.metrics import make_scorer, {fn}"], f"make_scorer({fn}{kw})"
    binary = classes is not None and len(classes) == 2
    if metric == "accuracy":
        return ["from sklearn.metrics import accuracy_score, make_scorer"], "make_scorer(accuracy_score)"
    if metric == "roc_auc":
        imports = ["from sklearn.metrics import make_scorer, roc_auc_score"]
        if binary:
            return imports, 'make_scorer(roc_auc_score, response_method=("decision_function", "predict_proba"))'
        return imports, 'make_scorer(roc_auc_score, response_method="predict_proba", multi_class="ovr")'
    fn = {"f1": "f1_score", "precision": "precision_score", "recall": "recall_score"}[metric]
    label = classes[-1]
    kw = f"pos_label={json.dumps(label) if isinstance(label, str) else repr(label)}" if binary else 'average="macro"'
    if metric != "f1":
        kw += ", zero_division=0.0"
    return [f"from sklearn.metrics import make_scorer, {fn}"], f"make_scorer({fn}, {kw})"
