"""Input drift: compare request inputs sampled by the routers with the training distribution.

    profile = reference_profile(train_frame, metadata["features"])   # stored with the model
    report = compare(profile, sampled_rows)                           # later, on the control plane
    if report.drifted: ...retrain...

Pure functions, no I/O. The profile is small JSON (a bounded sample and decile edges per numeric
feature, top category shares per text/boolean one), so it can live next to the model metadata.
Per feature, compare computes PSI over the reference bins or categories, and for numeric features
the two-sample Kolmogorov–Smirnov test against the stored sample.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

FORMAT = 1
NUMERIC = ("integer", "float")
CATEGORICAL = ("string", "boolean")  # datetime features never reach a model, so they are not profiled
TOP_CATEGORIES = 50
OTHER = "__other__"
EPSILON = 1e-4  # stands in for an empty bin's share, so PSI stays finite
KS_MIN_STATISTIC = 0.1  # with many samples KS finds tiny shifts significant; ignore those


# ---------------------------------------------------------------- reading values


def _number(value: Any) -> float | None:
    """A finite float from a JSON value (number or numeric text); None for missing or wrong type."""
    if value is None or isinstance(value, (bool, np.bool_)):  # true is not a measurement
        return None
    if isinstance(value, str):
        value = value.strip()
    elif not isinstance(value, (int, float, np.number)):
        return None
    try:
        x = float(value)
    except (ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


_TRUE, _FALSE = {"true", "1", "1.0"}, {"false", "0", "0.0"}


def _category(value: Any, kind: str) -> str | None:
    """The category a value counts as; booleans as "true"/"false" however they arrive
    (serving sends them as 0.0/1.0, JSON as true/false)."""
    if value is None or value is pd.NA or isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    if kind == "boolean":
        if isinstance(value, (bool, np.bool_, int, float, np.number)) and value in (0, 1):
            return "true" if value else "false"
        text = value.strip().lower() if isinstance(value, str) else None
        return "true" if text in _TRUE else "false" if text in _FALSE else None
    if isinstance(value, (str, bool, int, float, np.generic)):
        return str(value)  # as serving's astype(str) would see it
    return None


# ---------------------------------------------------------------- the reference


def _numeric_profile(column: pd.Series, kind: str, max_values: int, seed: int) -> dict:
    values = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()
    values = values[np.isfinite(values)]
    profile = {"type": kind, "missing_rate": 1 - len(values) / len(column) if len(column) else 0.0}
    if len(values) == 0:
        return {**profile, "values": [], "edges": [], "bins": []}
    # Deciles over all values; ties (integer columns) merge edges, so bins need not hold 10% each
    # and their shares are stored rather than assumed.
    edges = np.unique(np.quantile(values, np.arange(1, 10) / 10, method="inverted_cdf"))  # data values
    bins = np.bincount(np.searchsorted(edges, values), minlength=len(edges) + 1) / len(values)
    sample = values
    if len(values) > max_values:
        sample = values[np.random.default_rng(seed).choice(len(values), max_values, replace=False)]
    return {**profile, "values": np.sort(sample).tolist(), "edges": edges.tolist(), "bins": bins.tolist()}


def _categorical_profile(column: pd.Series, kind: str) -> dict:
    cats = [c for c in (_category(v, kind) for v in column.tolist()) if c is not None]
    counts = pd.Series(cats, dtype=object).value_counts()
    # Most frequent first, ties by name, so the same data always keeps the same 50.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shares = {c: n / len(cats) for c, n in ranked[:TOP_CATEGORIES]}
    rest = sum(n for _, n in ranked[TOP_CATEGORIES:])
    if rest:
        shares[OTHER] = shares.get(OTHER, 0.0) + rest / len(cats)
    return {"type": kind, "missing_rate": 1 - len(cats) / len(column) if len(column) else 0.0,
            "frequencies": shares}


def reference_profile(frame: pd.DataFrame, features: list[dict], *, max_values: int = 1000, seed: int = 0) -> dict:
    """A JSON-ready summary of the training inputs, bounded in size and deterministic for the same
    frame, features and seed. `features` is the model metadata's list of {name, type, ...}."""
    if max_values < 1:
        raise ValueError("max_values must be at least 1")
    out = {}
    for f in features:
        name, kind = f["name"], f["type"]
        if kind in NUMERIC:
            out[name] = _numeric_profile(frame[name], kind, max_values, seed)
        elif kind in CATEGORICAL:
            out[name] = _categorical_profile(frame[name], kind)
    return {"format": FORMAT, "rows": len(frame), "features": out}


# ---------------------------------------------------------------- comparing


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two histograms over the same bins (counts or shares).
    Each term (a - e)·ln(a / e) is >= 0, so the sum is too; empty bins count as EPSILON."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    e = np.maximum(e / e.sum() if e.sum() > 0 else e, EPSILON)
    a = np.maximum(a / a.sum() if a.sum() > 0 else a, EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class FeatureDrift:
    psi: float | None  # None: too few usable values to judge
    ks_statistic: float | None  # numeric features only
    ks_pvalue: float | None
    drifted: bool
    n: int  # usable values of this feature in the samples
    missing_rate: float = 0.0  # share of usable rows without a usable value here


@dataclass(frozen=True)
class DriftReport:
    drifted: bool
    features: dict[str, FeatureDrift]
    samples: int  # usable rows: objects with at least one usable feature value
    reason: str
    enough: bool
    received: int = 0  # rows given, usable or not

    def to_dict(self) -> dict:
        return asdict(self)


def _judge(ref: dict, values: list, min_samples: int, psi_threshold: float, ks_alpha: float,
           missing_rate: float) -> FeatureDrift:
    n = len(values)
    if n == 0 or n < min_samples or not (ref.get("bins") or ref.get("frequencies")):
        return FeatureDrift(None, None, None, False, n, missing_rate)
    if ref["type"] in NUMERIC:
        edges = np.asarray(ref["edges"], dtype="float64")
        x = np.asarray(values, dtype="float64")
        observed = np.bincount(np.searchsorted(edges, x), minlength=len(edges) + 1)
        p = psi(ref["bins"], observed)
        ks = stats.ks_2samp(x, np.asarray(ref["values"], dtype="float64"))
        stat, pvalue = float(ks.statistic), float(ks.pvalue)
        drifted = p > psi_threshold or (pvalue < ks_alpha and stat > KS_MIN_STATISTIC)
        return FeatureDrift(p, stat, pvalue, bool(drifted), n, missing_rate)
    shares = ref["frequencies"]
    cats = list(shares) + ([] if OTHER in shares else [OTHER])  # unseen categories pool as OTHER
    counts = dict.fromkeys(cats, 0)
    for v in values:
        counts[v if v in shares else OTHER] += 1
    p = psi([shares.get(c, 0.0) for c in cats], [counts[c] for c in cats])
    return FeatureDrift(p, None, None, bool(p > psi_threshold), n, missing_rate)


def compare(reference: dict, samples: list[dict], *, psi_threshold: float = 0.2, ks_alpha: float = 0.01,
            min_samples: int = 50) -> DriftReport:
    """Judge sampled request rows against a reference_profile. Never raises on bad rows: a value
    of the wrong type counts as missing, a row that is not an object or has no usable value is
    skipped, unknown keys are ignored. A feature with fewer than min_samples usable values is
    reported (psi None) but not judged."""
    profiles = reference.get("features", {})
    values: dict[str, list] = {name: [] for name in profiles}
    rows = 0
    for row in samples:
        if not isinstance(row, dict):
            continue
        usable = False
        for name, ref in profiles.items():
            raw = row.get(name)
            v = _number(raw) if ref["type"] in NUMERIC else _category(raw, ref["type"])
            if v is not None:
                values[name].append(v)
                usable = True
        rows += usable
    need = max(min_samples, 1)  # zero rows can never be judged, whatever min_samples says
    if rows < need:
        return DriftReport(False, {}, rows, f"not enough samples: {rows} usable rows of {len(samples)}, "
                                            f"need {need}", False, len(samples))
    features = {name: _judge(profiles[name], vals, min_samples, psi_threshold, ks_alpha, 1 - len(vals) / rows)
                for name, vals in values.items()}
    drifted = sorted((f for f in features.items() if f[1].drifted), key=lambda f: (-(f[1].psi or 0.0), f[0]))
    if drifted:
        reason = "drift in " + ", ".join(_describe(name, f) for name, f in drifted)
    else:
        reason = f"no drift in {len(features)} features over {rows} samples"
    return DriftReport(bool(drifted), features, rows, reason, True, len(samples))


def _describe(name: str, f: FeatureDrift) -> str:
    ks = f", KS {f.ks_statistic:.2f}" if f.ks_statistic is not None and f.ks_statistic > KS_MIN_STATISTIC else ""
    return f"{name} (PSI {f.psi:.2f}{ks})"
