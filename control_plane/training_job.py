"""One training operation, run as a child process of the control plane:

    python -m control_plane.training_job REQUEST.json

Loads the dataset's rows from the artifact store, selects the best candidate (control_plane.ml),
writes the version's files, profiles the training distribution for drift checks, and packages
the version as a bento (control_plane.packaging).  It speaks JSON lines on stdout:

    {"progress": {"done": 3, "total": 13, "message": "random_forest fold 2/5"}}
    {"dask": {"port": 40123}}      # training.engine "dask": the scheduler listens; then 0: it closed
    {"result": {...}}                                      # last line on success
    {"error": {"code": "INVALID_ARGUMENT", "message": ..., "violations": [[path, msg], ...]}}

Why a process: the control plane runs with automatic GC off and serves thousands of node streams
on one event loop; training allocates heavily and runs for minutes.  A process also makes a
training cancellable (kill) and keeps a crashing estimator from taking the control plane down.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _say(**msg) -> None:
    sys.stdout.write(json.dumps(msg, allow_nan=False, default=str) + "\n")
    sys.stdout.flush()


def run(req: dict) -> dict:
    from control_plane.ml import datasets as ml_datasets, drift
    from control_plane.ml.train import train
    from control_plane.packaging.pipeline import package_model_version
    from control_plane.packaging.store import ArtifactStore

    data_dir = Path(req["data_dir"])
    store = ArtifactStore(data_dir)
    ds = req["dataset"]
    frame = ml_datasets.load_bytes(store.open(ds["blob"]).read(), ds["format"], ds["name"]).frame
    last = [0.0, 1]  # time of the last line, steps in all (+1: packaging)

    def progress(done: int, total: int, message: str) -> None:
        last[1] = total + 1
        now = time.monotonic()
        if now - last[0] >= 0.25 or done == total:  # enough for a progress bar, not a flood
            last[0] = now
            _say(progress={"done": done, "total": total + 1, "message": message})

    if req.get("dask"):
        from control_plane.ml.dask_cluster import JobScheduler

        d = req["dask"]
        # The scheduler lives as long as the cross-validation: nodes' workers stop once it closed.
        with JobScheduler(d["host"], d["ca_pem"], d["cert_pem"], d["key_pem"]) as scheduler:
            _say(dask={"port": scheduler.port})
            try:
                result = train(frame, req["spec"], seed=req["seed"], progress=progress, dataset_digest=ds["digest"],
                               client=scheduler.client)
            finally:
                _say(dask={"port": 0})
    else:
        result = train(frame, req["spec"], workers=req["workers"], seed=req["seed"], progress=progress,
                       dataset_digest=ds["digest"])
    versions_dir = data_dir / "models" / req["model"]
    final = versions_dir / result.version
    if not (final / "metadata.json").exists():
        versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=versions_dir, prefix=".tmp-"))
        result.save(str(tmp))
        if final.exists():  # a concurrent run of the same version got there first: same bytes
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
    reference = drift.reference_profile(frame, result.metadata["features"], seed=req["seed"])
    ref_digest = store.put_stream([json.dumps(reference, sort_keys=True).encode()])
    steps = last[1]
    _say(progress={"done": steps - 1, "total": steps, "message": f"packaging {result.best_algorithm} as a BentoML service"})
    packaged = package_model_version(final, req["model"], result.version, data_dir, workers=1)
    _say(progress={"done": steps, "total": steps, "message": "packaged"})
    best = result.best
    previous = None
    if req.get("previous_dir"):
        previous = _score_previous(req["previous_dir"], frame, req["spec"])
    return {
        "previous_score_on_this_data": previous,
        "version": result.version,
        "artifact_digest": result.artifact_digest,
        "best_algorithm": best.algorithm,
        "score": best.score,
        "leaderboard": [e.as_dict() for e in result.leaderboard],
        "dataset_digest": ds["digest"],
        "files_dir": str(final),
        "reference_digest": ref_digest,
        "bento_digest": packaged.digest,
        "bento_tag": packaged.tag,
        "bento_size_bytes": packaged.size_bytes,
        "load_time_s": packaged.load_time_s,
        "memory_mb": round((packaged.rss_bytes or 0) / 2**20),
        "p95_ms": packaged.p95_ms,
        "capacity_rps": packaged.capacity_rps,
        "ms_per_kib": packaged.ms_per_kib,
        "sizes": packaged.sizes,
        "timings": result.timings,
    }


def _score_previous(previous_dir: str, frame, spec: dict) -> float | None:
    """The serving version's score on this training data, with the same metric: what a new version
    must not fall below to replace it (CV scores on different data do not compare)."""
    from control_plane.ml import catalogue, inference
    from control_plane.ml.train import validate

    try:
        model, _ = inference.load(previous_dir)
        p = validate(frame, spec)
        return float(catalogue.scorer(p.spec.metric, p.spec.task, p.classes)(model, p.X, p.y))
    except Exception:  # noqa: BLE001 - e.g. the old version cannot read these columns: no comparison
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    req = json.loads(Path(argv[0]).read_text())
    from control_plane.errors import InvalidArgument, StratumError

    try:
        _say(result=run(req))
        return 0
    except InvalidArgument as e:
        _say(error={"code": "INVALID_ARGUMENT", "message": str(e), "violations": [list(v) for v in e.violations]})
    except StratumError as e:
        _say(error={"code": e.code, "message": str(e)})
    except Exception as e:  # noqa: BLE001 - reported to the operation, not a traceback to nobody
        _say(error={"code": "INTERNAL", "message": f"{type(e).__name__}: {e}"})
    return 1


if __name__ == "__main__":
    import signal

    from stratum.runtime.process import die_with_parent

    # SIGTERM (the control plane stopping, or gone: a control plane killed with -9 trains again
    # when it restarts) unwinds like an exception, so the `bentoml serve` that packaging starts to
    # profile the version, in a session of its own, is stopped on the way out, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    die_with_parent(signal.SIGTERM)
    sys.exit(main())
