"""Train every candidate with k-fold cross-validation, pick the best by the user's metric, refit it.

    result = train(df, spec, workers=2, seed=0, progress=lambda done, total, job: ...)

The spec (see README.md) is checked against the table before any work starts; every problem is
reported at once in a TrainingError with its field path. Each (candidate, grid point) is a job;
each of its folds is one task for a pool of `workers` spawned processes, so a slow candidate's
folds spread over the pool. Results do not depend on the worker count: the splits are computed
once here, each fold is fit from a fresh clone with the seed in every random_state, BLAS runs
one thread everywhere, and scores are aggregated in fold order.

With `client=` (a dask.distributed Client, see dask_cluster.py) the same fold tasks run on the
training's dask workers instead (nodes, `training.engine = "dask"`), with the same result.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import os
import platform
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from control_plane.errors import FailedPrecondition, InvalidArgument
from control_plane.ml import catalogue, preprocess
from control_plane.ml.datasets import column_type, frame_digest
from stratum.validation import shown

MAX_FOLDS = 20
SPEC_FIELDS = ("task", "target", "candidates", "preprocessing", "selection")
MODEL_FILE, METADATA_FILE = "model.joblib", "metadata.json"

Progress = Callable[[int, int, str], None]


class TrainingError(InvalidArgument, ValueError):
    """The spec or the data cannot be trained on; `violations` lists (field path, problem)."""

    def __init__(self, violations: list[tuple[str, str]]):
        super().__init__(violations)

    @property
    def problems(self) -> list[tuple[str, str]]:
        return self.violations


class TrainingFailed(FailedPrecondition, RuntimeError):
    """Training started but produced no model (every candidate failed, a worker died)."""


@dataclass(frozen=True)
class Candidate:
    algorithm: str
    grid: dict[str, Any] | None = None
    index: int = 0  # position in the spec's candidates list, for field paths


@dataclass(frozen=True)
class Spec:
    task: str
    target: str | None
    candidates: list[Candidate]
    preprocessing: list
    metric: str | None  # None: given but invalid (parse_spec reported it)
    cv_folds: int | None


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: a candidate at one grid point."""

    rank: int
    algorithm: str
    params: dict[str, Any]  # the grid point; Stratum's fixed parameters are in the metadata
    score: float | None  # mean over folds, in the metric's natural sign (rmse positive)
    std: float | None
    fold_scores: list[float]
    error: str | None = None  # why it produced no score
    candidate: int = 0  # index into spec.candidates
    seconds: float = 0.0  # fit + score time over all folds; varies run to run, so not in as_dict()

    def as_dict(self) -> dict:
        return {"rank": self.rank, "algorithm": self.algorithm, "params": self.params, "score": self.score,
                "std": self.std, "fold_scores": self.fold_scores, "error": self.error, "candidate": self.candidate}


@dataclass
class TrainResult:
    task: str
    target: str | None
    metric: str
    leaderboard: list[Entry]
    model: Pipeline  # fitted on every usable row
    metadata: dict
    files: dict[str, bytes]  # the artifact: model.joblib and metadata.json
    artifact_digest: str  # "sha256:<hex>" over files
    version: str  # content-derived id: the digest's first 12 hex digits
    timings: dict[str, float] = field(default_factory=dict)  # seconds; not part of the artifact

    @property
    def best(self) -> Entry:
        return self.leaderboard[0]

    @property
    def best_algorithm(self) -> str:
        return self.best.algorithm

    def save(self, directory: str) -> list[str]:
        os.makedirs(directory, exist_ok=True)
        paths = []
        for name, data in sorted(self.files.items()):
            path = os.path.join(directory, name)
            with open(path, "wb") as f:
                f.write(data)
            paths.append(path)
        return paths


# ---------------------------------------------------------------- validation


def parse_spec(spec: Any) -> tuple[Spec | None, list[tuple[str, str]]]:
    """Checks that need no data (shape, task, algorithms, grids, metric, folds), for plan time.
    Returns the spec as far as it is usable (None only without a known task: everything else
    depends on it) and every problem found; bad candidates are left out, a bad metric or fold
    count is None, so the data checks can still run and report theirs too."""
    if not isinstance(spec, dict):
        return None, [("spec", "give an object")]
    problems: list[tuple[str, str]] = []
    for key in spec:
        if key not in SPEC_FIELDS:
            problems.append((str(key), f"unknown field; use {', '.join(SPEC_FIELDS)}"))
    task = spec.get("task")
    if task not in catalogue.TASKS:
        problems.append(("task", f"unknown task {shown(task)}; use one of {', '.join(catalogue.TASKS)}"))
        return None, problems
    target = spec.get("target")
    if task == "clustering" and target is not None:
        problems.append(("target", "clustering takes no target; leave it out"))
        target = None
    elif task != "clustering" and not (isinstance(target, str) and target):
        problems.append(("target", f"{task} needs a target column"))
        target = None

    candidates: list[Candidate] = []
    raw = spec.get("candidates")
    if not isinstance(raw, list) or not raw:
        problems.append(("candidates", "give at least one algorithm"))
        raw = []
    for i, c in enumerate(raw):
        path = f"candidates[{i}]"
        if isinstance(c, str):
            c = {"algorithm": c}
        if not isinstance(c, dict) or set(c) - {"algorithm", "grid"}:
            problems.append((path, 'give an algorithm name or {"algorithm": ..., "grid": {...}}'))
            continue
        bad = catalogue.check_algorithm(c.get("algorithm"), task, path)
        if not bad:
            bad = catalogue.check_grid(c["algorithm"], task, c.get("grid"), f"{path}.grid")
        problems.extend(bad)
        if not bad:
            candidates.append(Candidate(c["algorithm"], c.get("grid"), i))

    selection = spec.get("selection") or {}
    if not isinstance(selection, dict):
        problems.append(("selection", 'give {"metric": ..., "cv_folds": ...}'))
        selection = {}
    for key in selection:
        if key not in ("metric", "cv_folds"):
            problems.append((f"selection.{key}", "unknown field; use metric, cv_folds"))
    metric = selection.get("metric") or catalogue.DEFAULT_METRIC[task]
    bad = catalogue.check_metric(metric, task)
    problems.extend(bad)
    folds = selection.get("cv_folds", 5)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
        problems.append(("selection.cv_folds", f"give a whole number from 2 to {MAX_FOLDS}"))
        folds = None
    return Spec(task, target, candidates, spec.get("preprocessing") or [], None if bad else metric, folds), problems


def check_spec(spec: Any) -> list[tuple[str, str]]:
    """Every problem knowable without the data (plan time): [(field path, message)]."""
    return parse_spec(spec)[1]


@dataclass(frozen=True)
class _Prepared:
    spec: Spec
    plan: preprocess.Plan
    X: pd.DataFrame
    y: pd.Series | None
    target_dtype: str | None
    classes: list | None


def _native(v):
    return v.item() if isinstance(v, np.generic) else v


def _target(df: pd.DataFrame, spec: Spec, mask: pd.Series, problems: list) -> tuple[pd.Series | None, str | None, list | None]:
    """The target as the models take it, its dtype, and the sorted classes (classification)."""
    if spec.target is None:
        return None, None, None
    raw = df.loc[mask, spec.target]
    kind = column_type(df[spec.target])
    if spec.task == "regression":
        if kind not in ("integer", "float"):
            problems.append(("target", f"regression needs a numeric target; column {spec.target!r} is {kind}"))
            return None, None, None
        return raw.astype("float64"), "float64", None
    # classification
    if kind == "datetime":
        problems.append(("target", f"column {spec.target!r} is a datetime; classification needs labels"))
        return None, None, None
    if kind == "float":
        if not np.all(np.mod(raw.to_numpy(dtype="float64"), 1) == 0):
            problems.append(("target", f"column {spec.target!r} holds continuous values; use task = \"regression\""))
            return None, None, None
        kind = "integer"  # 0.0/1.0 labels of an integer column that had gaps
    dtype = {"integer": "int64", "boolean": "bool", "string": "str"}[kind]
    y = raw.astype(dtype)
    counts = y.value_counts(sort=False)
    classes = sorted(_native(c) for c in counts.index)
    if len(classes) < 2:
        problems.append(("target", f"column {spec.target!r} has only one class ({classes[0]!r}) in the rows used"))
        return None, None, None
    rare = [(c, int(counts[c])) for c in classes if counts[c] < spec.cv_folds]
    if rare:
        listed = ", ".join(f"{c!r} ({n} rows)" for c, n in rare[:5])
        problems.append(("selection.cv_folds", f"{spec.cv_folds} folds need at least {spec.cv_folds} rows of each class; "
                                               f"too few of {listed}"))
    return y, dtype, classes


def validate(df: pd.DataFrame, spec: Any) -> _Prepared:
    """Every check, before any work; raises TrainingError listing all problems."""
    parsed, problems = parse_spec(spec)
    if parsed is None:
        raise TrainingError(problems)
    if len(df) == 0:
        raise TrainingError(sorted(problems + [("dataset", "no rows")], key=_field_order))
    columns = [str(c) for c in df.columns]
    target = parsed.target
    if target is not None and target not in columns:
        problems.append(("target", f"no column {target!r} in the dataset (columns: {', '.join(columns)})"))
        target = None
    plan, plan_problems = preprocess.plan(parsed.preprocessing, df, target)
    if target is None and parsed.task != "clustering":
        # Without a known target, any column may be it: keep only the problems of the steps themselves.
        plan_problems = [p for p in plan_problems if p[0] != "preprocessing"]
    problems += plan_problems
    if plan is None or target is None and parsed.task != "clustering" or parsed.cv_folds is None:
        raise TrainingError(sorted(problems, key=_field_order))  # the checks below need all three
    parsed = replace(parsed, target=target)
    mask = preprocess.rows_to_use(df, plan, target)
    y, target_dtype, classes = _target(df, parsed, mask, problems)
    rows = int(mask.sum())
    if rows < 2 * parsed.cv_folds:
        problems.append(("selection.cv_folds", f"{rows} usable rows are too few for {parsed.cv_folds} folds "
                                               f"(need at least {2 * parsed.cv_folds})"))
    if parsed.metric == "roc_auc" and classes is not None and len(classes) > 2:
        for c in parsed.candidates:
            if not catalogue.ALGORITHMS[c.algorithm].probabilities:
                problems.append((f"candidates[{c.index}]", f"{c.algorithm} gives no class probabilities, which "
                                                           "roc_auc needs for more than two classes"))
    if problems:
        raise TrainingError(sorted(problems, key=_field_order))
    X = preprocess.model_input(df.loc[mask], plan).reset_index(drop=True)
    return _Prepared(parsed, plan, X, None if y is None else y.reset_index(drop=True), target_dtype, classes)


def _field_order(problem: tuple[str, str]) -> int:
    """Problems in the order the spec reads: unknown fields, task, target, candidates, ..."""
    order = ["task", "target", "candidates", "preprocessing", "selection", "dataset"]
    head = problem[0].split(".")[0].split("[")[0]
    return order.index(head) + 1 if head in order else 0


# ---------------------------------------------------------------- folds, in this process or a worker


def splitter(task: str, folds: int, seed: int):
    """Stratified for classification so every fold sees every class; shuffled with the seed."""
    if task == "classification":
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return KFold(n_splits=folds, shuffle=True, random_state=seed)


def pipeline(plan: preprocess.Plan, algorithm: str, task: str, params: dict, seed: int) -> Pipeline:
    return Pipeline([("preprocess", preprocess.build(plan)),
                     ("model", catalogue.make_estimator(algorithm, task, params, seed))])


_STATE: dict[str, Any] = {}


def _init_worker(state: dict) -> None:
    """Runs once per worker: keep the data and splits, so each task carries only two indices."""
    from stratum.runtime.process import die_with_parent

    die_with_parent()  # its training process killed: nothing reads what it computes
    _STATE.clear()
    _STATE.update(state)
    threadpool_limits(1)  # this process is one worker; BLAS threads would only contend
    warnings.simplefilter("ignore")


def _run_fold(job: int, fold: int, state: dict | None = None) -> tuple[int, int, float | None, str | None, float]:
    """One fold of one job; in a worker the state is the one _init_worker kept."""
    t0 = time.perf_counter()
    return (*_fit_and_score(state if state is not None else _STATE, job, fold), time.perf_counter() - t0)


def _fit_and_score(s: dict, job: int, fold: int) -> tuple[int, int, float | None, str | None]:
    algorithm, params = s["jobs"][job]
    train_idx, test_idx = s["splits"][fold]
    X, y = s["X"], s["y"]
    try:
        est = pipeline(s["plan"], algorithm, s["task"], params, s["seed"])  # fresh per fold, as cross_validate clones
        est.fit(X.iloc[train_idx], None if y is None else y.iloc[train_idx])
        score = float(s["scorer"](est, X.iloc[test_idx], None if y is None else y.iloc[test_idx]))
        if not np.isfinite(score):
            return job, fold, None, "the score is undefined (not a finite number)"
        return job, fold, score, None
    except Exception as e:  # a candidate failing is a result, not a crash
        return job, fold, None, f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"


def _describe_job(jobs, job: int, fold: int, folds: int) -> str:
    algorithm, params = jobs[job]
    text = " ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{algorithm}{' ' + text if text else ''} fold {fold + 1}/{folds}"


def pool_context() -> mp.context.BaseContext:
    """How the fold workers start. A plain fork when this process runs no other thread, as a
    training job does (control_plane/training_job.py): the workers begin with scikit-learn already
    imported, at no cost. With other threads running (gRPC, a test's) a fork could copy a lock
    another thread holds, so a forkserver instead: a fresh process that imports this module once
    (1-2 CPU-seconds) and forks each worker from itself; it ends when its parent does, and the
    workers with it (die_with_parent). Either way no estimator has run in the parent yet (the refit
    comes after the folds), so no OpenMP pool is copied half-started."""
    if threading.active_count() == 1 and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def _evaluate(state: dict, tasks: list[tuple[int, int]], workers: int, progress: Progress | None,
              total: int, client=None) -> dict[tuple[int, int], tuple[float | None, str | None, float]]:
    """{(job, fold): (score, error, seconds)}"""
    out: dict[tuple[int, int], tuple[float | None, str | None, float]] = {}
    folds = len(state["splits"])

    def record(job, fold, score, error, seconds):
        out[(job, fold)] = (score, error, seconds)
        if progress:
            progress(len(out), total, _describe_job(state["jobs"], job, fold, folds))

    if client is not None:
        _evaluate_dask(client, state, tasks, record, lambda msg: progress and progress(len(out), total, msg))
        return out
    if workers <= 1:
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for job, fold in tasks:
                record(*_run_fold(job, fold, state))
        return out

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(), initializer=_init_worker,
                               initargs=(state,))
    finished = False
    try:
        pending = {pool.submit(_run_fold, job, fold) for job, fold in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: f.result()[:2]):
                record(*f.result())
        finished = True
    except BrokenProcessPool as e:
        raise TrainingFailed(f"a training worker died ({e}); it may have run out of memory") from None
    finally:
        if not finished:
            # Cancelled (progress raised) or failed: stop folds in flight now rather than
            # waiting for them; _processes is private but the only handle on the workers.
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
    return out


# dask: every fold needs one of a worker's cpu resources (a node runs one single-threaded worker
# process per core); the whole run fails when no worker has been connected for this long.
DASK_RESOURCES = {"cpu": 1}
NO_WORKERS_S = float(os.environ.get("STRATUM_DASK_NO_WORKERS_S", "300"))


def _dask_fold(state: dict, job: int, fold: int) -> tuple:
    """One fold on a dask worker, as _run_fold in a pool worker; also says who ran it with what."""
    from distributed import get_worker

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (*_run_fold(job, fold, state), get_worker().name, library_versions())


def _evaluate_dask(client, state: dict, tasks: list[tuple[int, int]], record: Callable, say: Callable[[str], None]) -> None:
    """The folds as tasks of the training's dask scheduler. A worker lost mid-fold: the scheduler
    runs its folds again elsewhere (dask retries a task that killed 3 workers no more)."""
    import pickle
    import queue
    import uuid

    from distributed import KilledWorker

    run = uuid.uuid4().hex[:12]
    # The table travels inside a task rather than scattered: should every worker holding it be lost,
    # the scheduler computes it again from the task.
    data = client.submit(pickle.loads, pickle.dumps(state, protocol=5), key=f"stratum-data-{run}",
                         resources=DASK_RESOURCES, pure=False)
    futures = {client.submit(_dask_fold, data, job, fold, key=f"stratum-fold-{run}-{job}-{fold}",
                             resources=DASK_RESOURCES, pure=False): (job, fold) for job, fold in tasks}
    arrived: queue.Queue = queue.Queue()
    for f in futures:
        f.add_done_callback(arrived.put)
    left = len(futures)
    # the libraries that compute the scores must be the job's; the interpreter's patch level need not
    versions = {k: v for k, v in library_versions().items() if k != "python"}
    alone_since = None  # when the scheduler was last seen without workers
    finished = False
    try:
        while left:
            done = []
            try:
                done.append(arrived.get(timeout=5))
                while True:
                    done.append(arrived.get_nowait())
            except queue.Empty:
                pass
            left -= len(done)
            if not done:
                connected = len(client.nthreads())
                if connected:
                    alone_since = None
                    continue
                alone_since = alone_since or time.monotonic()
                waited = time.monotonic() - alone_since
                if waited >= NO_WORKERS_S:
                    raise TrainingFailed(f"no dask worker connected for {waited:.0f} s: no ready node matching "
                                         "training.workers runs one (see the nodes' logs)")
                say(f"waiting for dask workers ({waited:.0f} s)")
                continue
            rows = []
            for f in done:
                try:
                    rows.append(f.result())
                except KilledWorker as e:
                    raise TrainingFailed(f"a fold was running on each of the dask workers that died one after the "
                                         f"other ({e}); it may run out of memory") from None
            for job, fold, score, error, seconds, worker, theirs in sorted(rows, key=lambda r: r[:2]):
                differ = ", ".join(f"{k} {theirs.get(k)} (here {v})" for k, v in versions.items() if theirs.get(k) != v)
                if differ:
                    raise TrainingFailed(f"dask worker {worker} runs {differ}: results would differ from a local "
                                         "training; install the same versions on the nodes")
                record(job, fold, score, error, seconds)
        finished = True
    finally:
        if not finished:  # cancelled or failed: free the workers now
            client.cancel([data, *futures], force=True)


# ---------------------------------------------------------------- the whole run


def _leaderboard(jobs, candidate_of, results, folds: int, metric: str) -> list[Entry]:
    rows = []
    for j, (algorithm, params) in enumerate(jobs):
        scores = [results[(j, f)][0] for f in range(folds)]
        errors = [results[(j, f)][1] for f in range(folds) if results[(j, f)][1]]
        seconds = sum(results[(j, f)][2] for f in range(folds))
        if errors:
            rows.append((1, 0.0, 0.0, j, algorithm, params, None, None, [], errors[0], seconds))
            continue
        arr = np.array(scores, dtype="float64")
        mean, std = float(arr.mean()), float(arr.std())
        rows.append((0, -mean, std, j, algorithm, params, mean, std, scores, None, seconds))
    rows.sort(key=lambda r: r[:4])  # best mean, then steadier, then spec order: no ties left
    return [Entry(rank=k + 1, algorithm=alg, params=params,
                  score=None if mean is None else catalogue.natural(metric, mean), std=std,
                  fold_scores=[catalogue.natural(metric, s) for s in scores], error=err, candidate=candidate_of[j],
                  seconds=sec)
            for k, (_, _, _, j, alg, params, mean, std, scores, err, sec) in enumerate(rows)]


def _dump_model(model: Pipeline) -> bytes:
    buf = io.BytesIO()
    joblib.dump(model, buf, compress=3)  # zlib at a fixed level: same object, same bytes
    return buf.getvalue()


def artifact_digest(files: dict[str, bytes]) -> str:
    """sha256 over each file's name, length and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0")
        h.update(data)
    return "sha256:" + h.hexdigest()


def library_versions() -> dict[str, str]:
    import scipy

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "pandas": pd.__version__, "joblib": joblib.__version__}


def train(df: pd.DataFrame, spec: dict, *, workers: int = 1, seed: int = 0, progress: Progress | None = None,
          dataset_digest: str | None = None, client=None) -> TrainResult:
    """Select the best candidate by cross-validation and refit it on every usable row.

    With a dask `client` (dask_cluster.JobScheduler) the folds run on its workers instead of a
    pool of `workers`; the result is the same, bit for bit. The refit runs here either way.

    progress(done, total, job) is called in this thread after each fold (total counts the final
    refit too); raising from it cancels the run. Raises TrainingError before any work for a bad
    spec or table, TrainingFailed when no candidate produced a score.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise TrainingError([("workers", "give a whole number of at least 1")])
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise TrainingError([("seed", "give a whole number from 0 to 2**32 - 1")])
    p = validate(df, spec)
    s = p.spec
    t0 = time.perf_counter()
    jobs, candidate_of = [], []
    for c in s.candidates:
        for point in catalogue.expand_grid(c.grid):
            jobs.append((c.algorithm, point))
            candidate_of.append(c.index)
    splits = list(splitter(s.task, s.cv_folds, seed).split(p.X, p.y))
    state = {"X": p.X, "y": p.y, "splits": splits, "plan": p.plan, "task": s.task, "seed": seed, "jobs": jobs,
             "scorer": catalogue.scorer(s.metric, s.task, p.classes)}
    tasks = [(j, f) for j in range(len(jobs)) for f in range(s.cv_folds)]
    total = len(tasks) + 1
    results = _evaluate(state, tasks, min(workers, len(tasks)), progress, total, client)
    board = _leaderboard(jobs, candidate_of, results, s.cv_folds, s.metric)
    t1 = time.perf_counter()
    if board[0].score is None:
        failures = "; ".join(f"{e.algorithm}: {e.error}" for e in board[:5])
        raise TrainingFailed(f"every candidate failed: {failures}")

    best = board[0]
    if progress:
        progress(total - 1, total, f"refit {best.algorithm} on all {len(p.X)} rows")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = pipeline(p.plan, best.algorithm, s.task, best.params, seed).fit(p.X, p.y)
    if progress:
        progress(total, total, f"refit {best.algorithm} done")
    t2 = time.perf_counter()

    metadata = {
        "format": 1,
        "task": s.task,
        "target": s.target,
        "target_dtype": p.target_dtype,
        "classes": p.classes,
        # input_dtype: what model.predict expects; cast a request's frame with .astype() to these.
        "features": [{"name": c, "type": p.plan.types[c], "input_dtype": str(p.X[c].dtype)} for c in p.plan.features],
        "preprocessing": preprocess.describe_plan(p.plan),
        "preprocessing_spec": s.preprocessing,
        "metric": s.metric,
        "cv_folds": s.cv_folds,
        "seed": seed,
        "rows": len(p.X),
        "dataset_digest": dataset_digest or frame_digest(df),
        "best": {"algorithm": best.algorithm, "params": best.params, "score": best.score, "std": best.std,
                 "estimator": ".".join(catalogue.ALGORITHMS[best.algorithm].estimators[s.task]),
                 "fixed_params": catalogue.fixed_params(best.algorithm, s.task, seed)},
        "leaderboard": [e.as_dict() for e in board],
        "versions": library_versions(),
    }
    files = {MODEL_FILE: _dump_model(model),
             METADATA_FILE: json.dumps(metadata, sort_keys=True, indent=2, allow_nan=False).encode() + b"\n"}
    digest = artifact_digest(files)
    return TrainResult(task=s.task, target=s.target, metric=s.metric, leaderboard=board, model=model,
                       metadata=metadata, files=files, artifact_digest=digest, version=digest[7:19],
                       timings={"cv_s": t1 - t0, "refit_s": t2 - t1, "total_s": t2 - t0})
