"""How much faster is model selection with 2 training workers than with one?

    python -m bench.training.run [--rows 100000] [--folds 5] [--workers 2] [--seed 0]

Generates a seeded classification table (8 numeric features, one categorical, a noisy nonlinear
target), then selects the best of 6 candidates (logistic regression, decision tree, random forest,
gradient boosting, naive Bayes, k-nearest neighbours; small settings so a run takes minutes)
with k-fold cross-validation, first with one worker (in process), then with N worker processes,
in the same run. Prints a table, the speedup ratio (serial / parallel wall time), and as its last
line a JSON object of the figures. The two runs must agree on every score and the artifact
digest; the bench fails otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

from control_plane.ml.train import train

CANDIDATES = [
    "logistic_regression",
    {"algorithm": "decision_tree", "grid": {"max_depth": 8}},
    {"algorithm": "random_forest", "grid": {"n_estimators": 20, "max_depth": 10}},
    {"algorithm": "gradient_boosting", "grid": {"n_estimators": 30, "max_depth": 3}},
    "naive_bayes",
    {"algorithm": "knn", "grid": {"n_neighbors": 15}},
]


def make_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 8))
    road = rng.choice(["motorway", "arterial", "local", "ring"], rows)
    signal = (X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 0.6 * np.abs(X[:, 3]) + 0.4 * np.sin(3 * X[:, 4])
              + (road == "motorway") * 0.7 + rng.normal(0, 0.8, rows))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    df["road"] = road
    df["congested"] = signal > 0.2
    return df


def run(df: pd.DataFrame, folds: int, workers: int, seed: int) -> tuple[dict, object]:
    spec = {"task": "classification", "target": "congested", "candidates": CANDIDATES,
            "preprocessing": [{"scale": "standard"}, {"one_hot": ["road"]}],
            "selection": {"metric": "accuracy", "cv_folds": folds}}
    c0, load0, t0 = os.times(), os.getloadavg()[0], time.perf_counter()
    result = train(df, spec, workers=workers, seed=seed)
    wall, c1, load1 = time.perf_counter() - t0, os.times(), os.getloadavg()[0]
    # CPU seconds of this process and of the workers it reaped: cores used = cpu / wall. On a
    # machine shared with other work, this shows whether the workers got the cores to run on.
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) \
        + (c1.children_system - c0.children_system)
    return {"workers": workers, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cores_used": round(cpu / wall, 2),
            "load_avg": round((load0 + load1) / 2, 1), "cv_s": round(result.timings["cv_s"], 2),
            "refit_s": round(result.timings["refit_s"], 2), "best": result.best_algorithm,
            "best_score": result.best.score, "digest": result.artifact_digest}, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    df = make_table(args.rows, args.seed)
    print(f"{args.rows} rows, {len(CANDIDATES)} candidates x {args.folds} folds; {os.cpu_count()} CPUs", flush=True)
    serial, r1 = run(df, args.folds, 1, args.seed)
    print(f"workers=1 done in {serial['wall_s']} s", flush=True)
    parallel, r2 = run(df, args.folds, args.workers, args.seed)
    print(f"workers={args.workers} done in {parallel['wall_s']} s", flush=True)

    same = [e.as_dict() for e in r1.leaderboard] == [e.as_dict() for e in r2.leaderboard] and serial["digest"] == parallel["digest"]
    print()
    # seconds: fit + score summed over the folds, as measured inside the serial run
    print(f"{'rank':>4}  {'algorithm':<20} {'accuracy':>10} {'std':>8} {'seconds':>8}")
    for e in r1.leaderboard:
        print(f"{e.rank:>4}  {e.algorithm:<20} {e.score:>10.5f} {e.std:>8.5f} {e.seconds:>8.2f}")
    print()
    print(f"{'workers':>7} {'wall s':>8} {'cv s':>8} {'refit s':>8} {'cpu s':>8} {'cores':>6} {'load':>5}  best")
    for row in (serial, parallel):
        print(f"{row['workers']:>7} {row['wall_s']:>8.2f} {row['cv_s']:>8.2f} {row['refit_s']:>8.2f} {row['cpu_s']:>8.2f} "
              f"{row['cores_used']:>6.2f} {row['load_avg']:>5.1f}  {row['best']}")
    speedup = serial["wall_s"] / parallel["wall_s"]
    cv_speedup = serial["cv_s"] / parallel["cv_s"]
    print(f"\nspeedup (workers=1 / workers={args.workers}): {speedup:.2f}x wall, {cv_speedup:.2f}x cross-validation; "
          f"results identical: {same}")
    print(json.dumps({"bench": "training", "rows": args.rows, "candidates": len(CANDIDATES), "folds": args.folds,
                      "cpus": os.cpu_count(), "workers": args.workers, "serial_s": serial["wall_s"],
                      "parallel_s": parallel["wall_s"], "serial_cv_s": serial["cv_s"], "parallel_cv_s": parallel["cv_s"],
                      "refit_s": serial["refit_s"], "speedup": round(speedup, 3), "cv_speedup": round(cv_speedup, 3),
                      "serial_cores_used": serial["cores_used"], "parallel_cores_used": parallel["cores_used"],
                      "load_avg": [serial["load_avg"], parallel["load_avg"]],
                      "best": serial["best"], "best_score": serial["best_score"], "identical": same}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
