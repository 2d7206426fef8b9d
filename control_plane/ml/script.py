"""A plain Python training script for a model version, to download and run outside Stratum.

The script reads the dataset file given on its command line, builds the same pipeline as the
winning candidate, runs the same cross-validation (same splitter, seed and scorer), prints the
scores as JSON and saves the fitted model. It depends on scikit-learn, pandas and numpy only,
and everything it needs comes from the version's metadata, so a stored version can be rendered
again at any time: render(metadata).
"""

from __future__ import annotations

import inspect
import json

from control_plane.ml import catalogue

_SCALERS = {"standard": "StandardScaler", "minmax": "MinMaxScaler"}


def _py(value) -> str:
    """A JSON-native value as Python source (double-quoted strings, like the rest of the script)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _list(names: list[str]) -> str:
    return "[" + ", ".join(_py(n) for n in names) + "]"


def _preprocess_source(prep: dict) -> tuple[dict[str, set[str]], list[str]]:
    """({module: names to import}, the lines of build_model that make `preprocess`)."""
    imports: dict[str, set[str]] = {"sklearn.compose": {"ColumnTransformer"}, "sklearn.pipeline": {"Pipeline"}}
    lines, branches = [], []
    impute = prep["impute"]

    def branch(name: str, steps: list[str], columns: str) -> None:
        if not steps:
            branches.append(f'("{name}", "passthrough", {columns})')
            return
        lines.append(f"{name} = Pipeline([")
        lines.extend(f"    {step}," for step in steps)
        lines.append("])")
        branches.append(f'("{name}", {name}, {columns})')

    if prep["numeric"]:
        steps = []
        if impute:
            imports.setdefault("sklearn.impute", set()).add("SimpleImputer")
            kw = f", fill_value={_py(impute['fill_value'])}" if impute["strategy"] == "constant" else ""
            steps.append(f'("impute", SimpleImputer(strategy={_py(impute["strategy"])}{kw}))')
        if prep["scale"]:
            imports.setdefault("sklearn.preprocessing", set()).add(_SCALERS[prep["scale"]])
            steps.append(f'("scale", {_SCALERS[prep["scale"]]}())')
        branch("numeric", steps, "NUMERIC")
    if prep["categorical"]:
        imports.setdefault("sklearn.preprocessing", set()).add("OneHotEncoder")
        steps = []
        if impute:
            imports.setdefault("sklearn.impute", set()).add("SimpleImputer")
            if impute["strategy"] == "constant":
                steps.append('("impute", SimpleImputer(strategy="constant", fill_value="missing"))')
            else:  # mean and median mean nothing for categories
                steps.append('("impute", SimpleImputer(strategy="most_frequent"))')
        steps.append('("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))')
        branch("categorical", steps, "CATEGORICAL")
    lines.append("preprocess = ColumnTransformer(")
    lines.append(f"    [{', '.join(branches)}],")
    lines.append('    remainder="drop",')
    lines.append("    sparse_threshold=0.0,  # dense output: some estimators take no sparse input")
    lines.append(")")
    return imports, lines


def _estimator_source(best: dict) -> tuple[str, str]:
    module, cls = best["estimator"].rsplit(".", 1)
    params = {**best["fixed_params"], **best["params"]}
    args = ", ".join(f"{k}={'SEED' if k == 'random_state' else _py(v)}" for k, v in params.items())
    return f"from {module} import {cls}", f"{cls}({args})"


def _cluster_scorer_source(metric: str) -> tuple[list[str], str]:
    fn = {"silhouette": catalogue.silhouette, "calinski_harabasz": catalogue.calinski_harabasz}[metric]
    metric_fn = {"silhouette": "silhouette_score", "calinski_harabasz": "calinski_harabasz_score"}[metric]
    body = inspect.getsource(catalogue._cluster_input) + "\n\n" + inspect.getsource(fn)
    return [f"from sklearn.metrics import {metric_fn}"], body


def render(metadata: dict, version: str | None = None, dataset_name: str = "data.csv") -> str:
    """The script's source for a version's metadata (TrainResult.metadata); `version` is the
    name the caller shows for it (TrainResult.version or its own sequential number)."""
    m = metadata
    task, metric, best = m["task"], m["metric"], m["best"]
    prep = m["preprocessing"]
    imports: dict[str, set[str]] = {
        "sklearn.model_selection": {"cross_validate", "StratifiedKFold" if task == "classification" else "KFold"},
        "threadpoolctl": {"threadpool_limits"},
    }
    p_imports, p_lines = _preprocess_source(prep)
    e_import, e_source = _estimator_source(best)
    helpers = ""
    if task == "clustering":
        s_imports, helpers = _cluster_scorer_source(metric)
        scorer = metric
    else:
        s_imports, scorer = catalogue.scorer_source(metric, task, m["classes"])
    for line in [*s_imports, e_import]:
        module, names = line[len("from "):].split(" import ")
        imports.setdefault(module, set()).update(n.strip() for n in names.split(","))
    for module, names in p_imports.items():
        imports.setdefault(module, set()).update(names)
    from_lines = [f"from {mod} import {', '.join(sorted(names))}" for mod, names in sorted(imports.items())]
    dtypes = {f["name"]: f["input_dtype"] for f in m["features"]}
    lower = metric in catalogue.LOWER_IS_BETTER
    splitter = ("StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)" if task == "classification"
                else "KFold(n_splits=FOLDS, shuffle=True, random_state=SEED)")
    has_target = m["target"] is not None

    out = []
    w = out.append
    w("#!/usr/bin/env python3")
    w(f'"""Train {best["algorithm"]} the way Stratum did' + (f" for model version {version}." if version else "."))
    w("")
    w(f"Task: {task}{', target: ' + m['target'] if has_target else ''}. Metric: {metric}, {m['cv_folds']}-fold "
      f"cross-validation, seed {m['seed']}.")
    w(f"Stratum's leaderboard gave this candidate {metric} = {best['score']!r} (std {best['std']!r}).")
    w("")
    w("Usage:")
    w(f"    python train.py {dataset_name} [--out model.joblib]")
    w("")
    w("Reads the dataset (.csv, .parquet or .xlsx), cross-validates the pipeline, prints the scores")
    w("as JSON, then fits it on every row and saves it with joblib. Made with:")
    w("    " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    w("the same versions give the same scores to the last digit.")
    w('"""')
    w("")
    out.extend(["import argparse", "import json", "import sys", "", "import joblib", "import numpy as np",
                "import pandas as pd"])
    out.extend(from_lines)
    w("")
    w(f"TARGET = {_py(m['target'])}")
    w(f"FEATURES = {_list([f['name'] for f in m['features']])}")
    w(f"NUMERIC = {_list(prep['numeric'])}")
    w(f"CATEGORICAL = {_list(prep['categorical'])}")
    w("# The dtypes the pipeline takes: booleans as 0.0/1.0, text as strings.")
    w(f"DTYPES = {json.dumps(dtypes)}")
    w(f"METRIC = {_py(metric)}")
    w(f"FOLDS = {m['cv_folds']}")
    w(f"SEED = {m['seed']}")
    w("")
    w("")
    w("def read_table(path):")
    w('    if path.endswith(".csv"):')
    w("        return pd.read_csv(path)")
    w('    if path.endswith((".parquet", ".pq")):')
    w("        return pd.read_parquet(path)")
    w('    if path.endswith((".xlsx", ".xlsm")):')
    w("        return pd.read_excel(path, sheet_name=0)")
    w('    sys.exit(f"{path}: give a .csv, .parquet or .xlsx file")')
    w("")
    w("")
    w("def load(path):")
    w("    data = read_table(path)")
    if has_target:
        w("    data = data[data[TARGET].notna()]  # a row without a label teaches nothing")
    if prep["drop_missing"]:
        w("    data = data.dropna(subset=FEATURES)")
    w("    X = data[FEATURES].astype(DTYPES).reset_index(drop=True)")
    if has_target:
        w(f"    y = data[TARGET].astype({_py(m['target_dtype'])}).reset_index(drop=True)")
        w("    return X, y")
    else:
        w("    return X, None")
    w("")
    w("")
    w("def build_model():")
    out.extend("    " + line for line in p_lines)
    w(f"    model = {e_source}")
    w('    return Pipeline([("preprocess", preprocess), ("model", model)])')
    w("")
    w("")
    if helpers:
        w("# Clusters are scored on held-out rows: fit on the other folds, assign, then score.")
        w(helpers.rstrip())
        w("")
        w("")
    w("def main():")
    w("    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])")
    w('    parser.add_argument("data", help="the dataset file")')
    w('    parser.add_argument("--out", default="model.joblib", help="where to save the fitted model")')
    w("    args = parser.parse_args()")
    w("    X, y = load(args.data)")
    w("    # One BLAS thread, as in Stratum: multi-threaded sums can differ in the last digit.")
    w("    with threadpool_limits(1):")
    w(f"        cv = {splitter}")
    w(f"        scorer = {scorer}")
    w('        scores = cross_validate(build_model(), X, y, cv=cv, scoring=scorer)["test_score"]')
    w("        model = build_model().fit(X, y)")
    w("    joblib.dump(model, args.out)")
    if lower:
        w(f"    # The scorer returns -{metric} so that higher is better; report {metric} itself.")
        w("    mean, std, folds = -float(np.mean(scores)), float(np.std(scores)), [-float(s) for s in scores]")
    else:
        w("    mean, std, folds = float(np.mean(scores)), float(np.std(scores)), [float(s) for s in scores]")
    w('    print(json.dumps({"metric": METRIC, "score": mean, "std": std, "fold_scores": folds, "model": args.out}))')
    w("")
    w("")
    w('if __name__ == "__main__":')
    w("    main()")
    return "\n".join(out) + "\n"
