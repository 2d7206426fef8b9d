"""Small seeded tables for the ML tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def classification(n: int = 240, seed: int = 0, classes: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"speed": rng.normal(50, 10, n), "hour": rng.integers(0, 24, n),
                       "road": rng.choice(["a1", "b2", "c3"], n), "rain": rng.random(n) > 0.7})
    signal = (60 - df.speed) / 10 + (df.road == "a1") + 0.8 * df.rain + rng.normal(0, 0.5, n)
    if classes == 2:
        df["congested"] = np.where(signal > 0.8, "yes", "no")
    else:
        df["congested"] = pd.cut(signal, classes, labels=[f"level{i}" for i in range(classes)]).astype(str)
    return df


def regression(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.uniform(0, 5, n), "zone": rng.choice(["n", "s"], n)})
    df["load"] = 3 * df.x1 - 2 * df.x2 + np.where(df.zone == "n", 1.5, 0.0) + rng.normal(0, 0.3, n)
    return df


def clustering(n: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [6, 6], [0, 8]])
    pts = centres[rng.integers(0, 3, n)] + rng.normal(0, 0.8, (n, 2))
    return pd.DataFrame({"lat": pts[:, 0], "lon": pts[:, 1]})


CLASSIFICATION_SPEC = {
    "task": "classification",
    "target": "congested",
    "candidates": ["logistic_regression", "naive_bayes",
                   {"algorithm": "decision_tree", "grid": {"max_depth": [2, 4]}}],
    "preprocessing": [{"scale": "standard"}, {"one_hot": "all"}],
    "selection": {"metric": "f1", "cv_folds": 4},
}
