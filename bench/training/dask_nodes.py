"""Candidate training on dask workers on 2 nodes against the local pool with the same cores.

    python -m bench.training.dask_nodes [--rows 100000] [--folds 5] [--rounds 2] [--tiny-rows 300] [--tiny-runs 3] [--seed 0]

Needs root (network namespaces). A real control plane on a bridge (`--training-workers 2`) and two
real node daemons, each in a network namespace of its own and pinned to one core (`taskset`), so
each runs one dask worker process: the dask variant gets the same 2 cores as the local pool of 2.
Both variants train through the API as users do (CreateModel; `training.engine` "local" or
"dask"), in the same run:

- big: the bench/training table and 6 candidates (bench/training/run.py), k folds, `--rounds`
  times each, in the order local, dask, then dask, local, ... (a neighbour's load drifting over
  the run weighs on both alike);
- tiny: a few hundred rows, logistic regression alone, 2 folds, `--tiny-runs` times each,
  alternating: what dask costs where there is nothing to spread (scheduler, workers starting
  and connecting).

Per variant: `train s`, cross-validation and refit as the training job measured them (the
version's `timings`, read from the control plane's store), and `operation s`, from the
operation's creation to its success (also loading the data and packaging the version, the same
work for both). Prints a table, the ratios of the medians (local / dask for the big model: the
speedup; dask / local for the tiny one: the overhead) and, as its last line, a JSON object of the figures. Both
engines must make the same version (leaderboard and artifact digest) or the bench exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

import psutil

from bench.training.run import CANDIDATES, make_table
from stratum.v1 import datasets_pb2 as ds, models_pb2 as m
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.lifecycle import upload
from tests.netns import TestNetwork

TRAIN_ON = m.TrainingWorkers(tiers=["cloud"], labels={"pool": "bench"})


def big_spec(name: str, folds: int, seed: int, engine: str) -> m.ModelSpec:
    spec = m.ModelSpec(name=name, dataset="big", task="classification", target="congested", seed=seed,
                       preprocessing=m.Preprocessing(scale="standard", one_hot=["road"]),
                       selection=m.Selection(metric="accuracy", cv_folds=folds), training=training(engine))
    for c in CANDIDATES:
        if isinstance(c, str):
            spec.candidates.append(c)
        else:
            spec.candidates.append(c["algorithm"])
            spec.grids[c["algorithm"]].update({k: [v] for k, v in c["grid"].items()})
    return spec


def tiny_spec(name: str, seed: int, engine: str) -> m.ModelSpec:
    return m.ModelSpec(name=name, dataset="tiny", task="classification", target="congested", seed=seed,
                       candidates=["logistic_regression"], preprocessing=m.Preprocessing(scale="standard", one_hot=["road"]),
                       selection=m.Selection(metric="accuracy", cv_folds=2), training=training(engine))


def training(engine: str) -> m.Training:
    return m.Training(engine="dask", workers=TRAIN_ON) if engine == "dask" else m.Training()


def cpu_s(pids: list[int]) -> float:
    """CPU seconds of these processes and of the children they reaped (the training job and its
    pool, the nodes' worker programs and theirs)."""
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
    return total


def train(c, plane: ControlPlane, spec: m.ModelSpec, pids: list[int], nodes: list[NodeDaemon]) -> dict:
    """Create the model, wait for its training; its figures and result."""
    load0, cpu0 = os.getloadavg()[0], cpu_s(pids)
    created = c.CreateModel(spec)
    op_id = created.operation.id

    def finished():
        op = c.GetOperation(m.GetOperationRequest(id=op_id))
        if op.state == "failed":
            raise SystemExit(f"training {spec.name} failed: {op.error}")
        return op if op.state == "succeeded" else None

    op = wait_for(finished, 3600, interval=0.2, what=f"training {spec.name}")
    # the nodes' worker programs stopped and reaped, so their CPU time is their daemons' to read
    wait_for(lambda: not any(any(Path(n.data_dir, "dask").glob("*.pid")) for n in nodes), 120, what="dask workers stopped")
    model = c.GetModel(m.GetModelRequest(name=spec.name)).serving
    db = sqlite3.connect(f"file:{os.path.join(plane.data_dir, 'stratum.db')}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT doc FROM model_versions WHERE model=? AND version=?", (spec.name, model.version)).fetchone()
    finally:
        db.close()
    timings = json.loads(row[0])["timings"]
    wall = (op.updated_at.ToNanoseconds() - op.created_at.ToNanoseconds()) / 1e9
    return {"cores_used": round((cpu_s(pids) - cpu0) / wall, 2), "model": spec.name, "engine": spec.training.engine or "local", "train_s": round(timings["total_s"], 2),
            "cv_s": round(timings["cv_s"], 2), "refit_s": round(timings["refit_s"], 2),
            "operation_s": round(wall, 2),
            "load_avg": round((load0 + os.getloadavg()[0]) / 2, 1), "digest": model.artifact_digest,
            "leaderboard": [(e.algorithm, e.params_json, e.score if e.HasField("score") else None, e.std)
                            for e in model.leaderboard], "best": model.best_algorithm}


def dataset(c, name: str, rows: int, seed: int) -> None:
    data = make_table(rows, seed).to_csv(index=False).encode()
    c.CreateDataset(ds.DatasetSpec(name=name, source=f"file://{name}.csv", target="congested", blob_sha256=upload(c, data)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tiny-rows", type=int, default=300)
    ap.add_argument("--tiny-runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        sys.exit("needs 2 cores: one per node")

    work = tempfile.mkdtemp(prefix="bench-training-dask-")
    net = TestNetwork(250)  # tests take 100-249
    plane = ControlPlane(work, host=net.gateway, extra=["--training-workers", "2"], heartbeat_interval="2s",
                         node_timeout="10s")
    nodes = []
    try:
        plane.start(wait=True)
        for i in range(2):
            node = NodeDaemon(work, f"bench-{i}", plane.endpoint, plane.join_token, tier="cloud", labels={"pool": "bench"},
                              netns=net.add_host().netns)
            node.argv = ["taskset", "-c", str(cores[i]), *node.argv]  # one core each: one dask worker each
            nodes.append(node.start())
        c = plane.client()
        wait_for(lambda: [n.capabilities.cpu_cores for n in c.nodes().values() if n.state == "ready"] == [1, 1], 60,
                 what="two one-core nodes ready")
        pids = [plane.proc.pid, *(n.proc.pid for n in nodes)]  # `ip netns exec` and taskset exec the daemon
        dataset(c, "big", args.rows, args.seed)
        dataset(c, "tiny", args.tiny_rows, args.seed)
        print(f"{args.rows} rows, {len(CANDIDATES)} candidates x {args.folds} folds; tiny: {args.tiny_rows} rows, "
              f"1 candidate x 2 folds; cores {cores[:2]}; load {os.getloadavg()[0]:.1f}", flush=True)

        rows = []
        for i in range(args.rounds):
            for engine in ("local", "dask") if i % 2 == 0 else ("dask", "local"):
                r = train(c, plane, big_spec(f"big-{engine}-{i}", args.folds, args.seed, engine), pids, nodes)
                print(f"big {engine} #{i + 1}: train {r['train_s']} s, operation {r['operation_s']} s", flush=True)
                rows.append(("big", r))
        for i in range(args.tiny_runs):  # alternating, so a neighbour's burst hits both alike
            for engine in ("local", "dask"):
                r = train(c, plane, tiny_spec(f"tiny-{engine}-{i}", args.seed, engine), pids, nodes)
                print(f"tiny {engine} #{i + 1}: train {r['train_s']} s, operation {r['operation_s']} s", flush=True)
                rows.append(("tiny", r))
        c.close()
    finally:
        for n in nodes:
            n.stop()
        plane.stop()
        net.close()
        shutil.rmtree(work, ignore_errors=True)

    def pick(kind, engine):
        return [r for k, r in rows if k == kind and r["engine"] == engine]

    big = {e: pick("big", e) for e in ("local", "dask")}
    tiny = {e: pick("tiny", e) for e in ("local", "dask")}
    identical = all(len({(r["digest"], json.dumps(r["leaderboard"])) for r in runs["local"] + runs["dask"]}) == 1
                    for runs in (big, tiny))

    # cores: CPU seconds of the control plane, the nodes and what they ran, over the operation's wall time
    print(f"\n{'model':<14} {'engine':<6} {'train s':>8} {'cv s':>8} {'refit s':>8} {'operation s':>12} {'cores':>6} {'load':>5}")
    for kind, r in rows:
        print(f"{r['model']:<14} {r['engine']:<6} {r['train_s']:>8.2f} {r['cv_s']:>8.2f} {r['refit_s']:>8.2f} "
              f"{r['operation_s']:>12.2f} {r['cores_used']:>6.2f} {r['load_avg']:>5.1f}")
    def medians(runs):
        return {e: {k: round(statistics.median(r[k] for r in runs[e]), 2) for k in ("train_s", "operation_s")} for e in runs}

    bmed, med = medians(big), medians(tiny)
    speedup = bmed["local"]["train_s"] / bmed["dask"]["train_s"]
    op_speedup = bmed["local"]["operation_s"] / bmed["dask"]["operation_s"]
    overhead = med["dask"]["train_s"] / med["local"]["train_s"]
    op_overhead = med["dask"]["operation_s"] / med["local"]["operation_s"]
    print(f"\nbig model, 2 one-core dask nodes against a local pool of 2 (local / dask, medians of {args.rounds}): "
          f"{speedup:.2f}x training ({bmed['local']['train_s']:.2f} s against {bmed['dask']['train_s']:.2f} s), "
          f"{op_speedup:.2f}x operation ({bmed['local']['operation_s']:.2f} s against {bmed['dask']['operation_s']:.2f} s)")
    print(f"tiny model, dask / local (medians of {args.tiny_runs}): {overhead:.2f}x training "
          f"({med['dask']['train_s']:.2f} s against {med['local']['train_s']:.2f} s), {op_overhead:.2f}x operation "
          f"({med['dask']['operation_s']:.2f} s against {med['local']['operation_s']:.2f} s)")
    print(f"same version from both engines: {identical}; best {big['local'][0]['best']}")
    print(json.dumps({"bench": "training-dask", "rows": args.rows, "candidates": len(CANDIDATES), "folds": args.folds,
                      "rounds": args.rounds, "tiny_rows": args.tiny_rows, "tiny_runs": args.tiny_runs, "cpus": os.cpu_count(),
                      "big_local_train_s": bmed["local"]["train_s"], "big_dask_train_s": bmed["dask"]["train_s"],
                      "big_local_operation_s": bmed["local"]["operation_s"],
                      "big_dask_operation_s": bmed["dask"]["operation_s"],
                      "speedup": round(speedup, 3), "operation_speedup": round(op_speedup, 3),
                      "tiny_local_train_s": med["local"]["train_s"], "tiny_dask_train_s": med["dask"]["train_s"],
                      "tiny_local_operation_s": med["local"]["operation_s"],
                      "tiny_dask_operation_s": med["dask"]["operation_s"],
                      "overhead": round(overhead, 3), "operation_overhead": round(op_overhead, 3),
                      "cores_used": [r["cores_used"] for _, r in rows], "load_avg": [r["load_avg"] for _, r in rows], "best": big["local"][0]["best"], "identical": identical}))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
