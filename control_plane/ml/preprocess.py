"""Preprocessing spec -> a plan (which columns, which steps) -> a scikit-learn ColumnTransformer.

A spec is a list of steps, each a one-key object:

    {"select": ["speed", "hour", "road"]}           feature columns (default: every column but the target)
    {"drop_missing": true}                          drop training rows with a missing feature or target
    {"impute": {"strategy": "mean"}}                mean | median | most_frequent | constant (+ "fill_value")
    {"scale": "standard"}                           standard | minmax, numeric features only
    {"one_hot": ["road"]} or {"one_hot": "all"}     one-hot encode these (or all text/boolean) features

Steps are declarative: each may appear once and they always apply in one order (select, drop
missing rows, impute, then scale numeric / one-hot encode categorical features), whatever order
the list gives. Text features must be one-hot encoded or left out with select: a model cannot
take raw strings, and guessing silently would hide a mistake. Datetime features must be left out.

Only scikit-learn classes end up in the pipeline, so a saved model loads with scikit-learn
alone (the downloadable training script relies on that). The one conversion scikit-learn cannot
do itself, booleans with gaps and nullable integers to floats, is `model_input`, which training,
serving and the generated script all apply (as DataFrame.astype to the recorded dtypes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from control_plane.ml.datasets import column_type
from stratum.validation import shown

STEPS = ("select", "drop_missing", "impute", "scale", "one_hot")
IMPUTE_STRATEGIES = ("mean", "median", "most_frequent", "constant")
SCALERS = ("standard", "minmax")
CATEGORICAL_FILL = "missing"  # what `constant` imputation puts in text columns

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class Plan:
    features: list[str]  # in table order
    types: dict[str, str]  # feature -> datasets.COLUMN_TYPES
    categorical: list[str]  # one-hot encoded features; the rest are numeric
    drop_missing: bool = False
    impute: dict[str, Any] | None = None  # {"strategy": ..., "fill_value": ...}
    scale: str | None = None

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.features if c not in self.categorical]


def model_input(df: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The feature columns as the pipeline takes them: booleans as 0.0/1.0 (NaN where missing),
    text as pandas strings, nullable integers as floats (NaN where missing). Training records the
    resulting dtypes in the metadata; serving and the script cast to them with DataFrame.astype."""
    X = df[plan.features].copy()
    for c in plan.features:
        if plan.types[c] == "boolean" or (plan.types[c] == "integer" and isinstance(X[c].dtype, pd.api.extensions.ExtensionDtype)):
            X[c] = X[c].astype("float64")
        elif plan.types[c] == "string":
            X[c] = X[c].astype("str")
    return X


def _one_key(step: Any, i: int, problems: Problems) -> tuple[str, Any] | None:
    path = f"preprocessing[{i}]"
    if isinstance(step, str):
        step = {step: True}  # "drop_missing" alone
    if not isinstance(step, dict) or len(step) != 1:
        problems.append((path, 'a step is an object with one key, e.g. {"scale": "standard"}'))
        return None
    (name, arg), = step.items()
    if name not in STEPS:
        problems.append((path, f"unknown step {shown(name)}; use one of {', '.join(STEPS)}"))
        return None
    return name, arg


def _columns_arg(arg: Any, path: str, known: list[str], problems: Problems) -> list[str] | None:
    if not isinstance(arg, list) or not arg or not all(isinstance(c, str) for c in arg):
        problems.append((path, "give a non-empty list of column names"))
        return None
    bad = [c for c in arg if c not in known]
    for c in bad:
        problems.append((path, f"no column {shown(c)} in the dataset (columns: {', '.join(known)})"))
    return None if bad else list(dict.fromkeys(arg))


def plan(steps: list | None, df: pd.DataFrame, target: str | None) -> tuple[Plan | None, Problems]:
    """Check the steps against the table; return (plan, []) or (None, problems with field paths)."""
    problems: Problems = []
    steps = steps or []
    if not isinstance(steps, list):
        return None, [("preprocessing", "give a list of steps")]
    columns = [str(c) for c in df.columns]
    types = {c: column_type(df[c]) for c in columns}
    given: dict[str, tuple[int, Any]] = {}
    for i, step in enumerate(steps):
        parsed = _one_key(step, i, problems)
        if parsed is None:
            continue
        name, arg = parsed
        if name in given:
            problems.append((f"preprocessing[{i}]", f"{name!r} already given at preprocessing[{given[name][0]}]; give each step once"))
            continue
        given[name] = (i, arg)

    features = [c for c in columns if c != target]
    if "select" in given:
        i, arg = given["select"]
        chosen = _columns_arg(arg, f"preprocessing[{i}].select", columns, problems)
        if chosen is not None:
            if target in chosen:
                problems.append((f"preprocessing[{i}].select", f"{target!r} is the target; it cannot also be a feature"))
            features = [c for c in columns if c in chosen and c != target]  # table order: stable pipelines

    drop_missing = False
    if "drop_missing" in given:
        i, arg = given["drop_missing"]
        if not isinstance(arg, bool) and arg not in ({}, None):
            problems.append((f"preprocessing[{i}].drop_missing", "give true"))
        drop_missing = arg is not False

    impute = None
    if "impute" in given:
        i, arg = given["impute"]
        path = f"preprocessing[{i}].impute"
        arg = {"strategy": arg} if isinstance(arg, str) else arg
        if not isinstance(arg, dict) or set(arg) - {"strategy", "fill_value"}:
            problems.append((path, 'give {"strategy": "mean|median|most_frequent|constant"} (and "fill_value" for constant)'))
        elif arg.get("strategy") not in IMPUTE_STRATEGIES:
            problems.append((f"{path}.strategy", f"unknown strategy {shown(arg.get('strategy'))}; use one of {', '.join(IMPUTE_STRATEGIES)}"))
        elif "fill_value" in arg and arg["strategy"] != "constant":
            problems.append((f"{path}.fill_value", "only the constant strategy takes a fill_value"))
        elif "fill_value" in arg and (isinstance(arg["fill_value"], bool) or not isinstance(arg["fill_value"], (int, float))):
            problems.append((f"{path}.fill_value", "give a number (text columns are filled with 'missing')"))
        else:
            impute = {"strategy": arg["strategy"], "fill_value": arg.get("fill_value", 0) if arg["strategy"] == "constant" else None}

    scale = None
    if "scale" in given:
        i, arg = given["scale"]
        arg = arg.get("method") if isinstance(arg, dict) else arg
        if arg not in SCALERS:
            problems.append((f"preprocessing[{i}].scale", f"unknown scaler {shown(arg)}; use one of {', '.join(SCALERS)}"))
        else:
            scale = arg

    categorical: list[str] = []
    if "one_hot" in given:
        i, arg = given["one_hot"]
        path = f"preprocessing[{i}].one_hot"
        if arg in ("all", True):
            categorical = [c for c in features if types[c] in ("string", "boolean")]
        else:
            chosen = _columns_arg(arg, path, columns, problems)
            for c in chosen or []:
                if c == target:
                    problems.append((path, f"{c!r} is the target, not a feature"))
                elif c not in features:
                    problems.append((path, f"column {c!r} is left out by select"))
                elif types[c] == "datetime":
                    problems.append((path, f"column {c!r} is a datetime; it cannot be one-hot encoded"))
                elif types[c] == "float":
                    problems.append((path, f"column {c!r} holds floats; one-hot encode only text, boolean or integer columns"))
                else:
                    categorical.append(c)
            categorical = [c for c in features if c in categorical]

    if problems:
        return None, problems  # with a broken step, the column checks below would mislead
    for c in features:
        if types[c] == "datetime":
            problems.append(("preprocessing", f"column {c!r} is a datetime, which models cannot take; leave it out with select"))
        elif types[c] == "string" and c not in categorical:
            problems.append(("preprocessing", f'column {c!r} is text; one-hot encode it ({{"one_hot": ["{c}"]}}) or leave it out with select'))
    if not features:
        problems.append(("preprocessing", "no feature columns left"))
    if not drop_missing and impute is None:
        for c in features:
            missing = int(df[c].isna().sum())
            # The encoder treats a missing category as a category; text and dates are reported above.
            if missing and c not in categorical and types[c] in ("integer", "float", "boolean"):
                problems.append(("preprocessing", f"column {c!r} has {missing} missing values; add an impute or drop_missing step"))
    if problems:
        return None, problems
    return Plan(features=features, types={c: types[c] for c in features}, categorical=categorical,
                drop_missing=drop_missing, impute=impute, scale=scale), []


def build(plan: Plan) -> ColumnTransformer:
    """The fitted-later transformer for a plan: numeric and categorical branches, dense output
    (GaussianNB and friends take no sparse input)."""
    branches = []
    if plan.numeric:
        steps = []
        if plan.impute:
            kw = {"fill_value": plan.impute["fill_value"]} if plan.impute["strategy"] == "constant" else {}
            steps.append(("impute", SimpleImputer(strategy=plan.impute["strategy"], **kw)))
        if plan.scale:
            steps.append(("scale", StandardScaler() if plan.scale == "standard" else MinMaxScaler()))
        branches.append(("numeric", Pipeline(steps) if steps else "passthrough", plan.numeric))
    if plan.categorical:
        steps = []
        if plan.impute:
            # mean/median mean nothing for categories: the most frequent one, or a 'missing' category.
            strategy = "constant" if plan.impute["strategy"] == "constant" else "most_frequent"
            kw = {"fill_value": CATEGORICAL_FILL} if strategy == "constant" else {}
            steps.append(("impute", SimpleImputer(strategy=strategy, **kw)))
        steps.append(("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
        branches.append(("categorical", Pipeline(steps), plan.categorical))
    return ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0)


def rows_to_use(df: pd.DataFrame, plan: Plan, target: str | None) -> pd.Series:
    """Boolean mask of training rows: a missing target always drops the row (nothing to learn
    from); a missing feature only with drop_missing."""
    mask = pd.Series(True, index=df.index)
    if target is not None:
        mask &= df[target].notna()
    if plan.drop_missing:
        mask &= df[plan.features].notna().all(axis=1)
    return mask


def describe_plan(plan: Plan) -> dict:
    """JSON-able summary for metadata and the generated script."""
    return {"features": plan.features, "types": plan.types, "categorical": plan.categorical, "numeric": plan.numeric,
            "drop_missing": plan.drop_missing, "impute": plan.impute, "scale": plan.scale}

