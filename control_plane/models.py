"""Models: specs, versions and the training operations that make them.

A model document (store table `models`) holds the spec, the state, the serving and latest
versions and the current operation id; each version is a document in `model_versions`; each
training is an operation document.  The document is written before the work starts, so a
control plane killed mid-training finds the operation "running" at start and runs it again
(`resume`): training is deterministic, so the second run makes the same version.

Training runs in a child process (control_plane/training_job.py) started from the event loop;
its JSON-lines progress updates the operation.  One training runs at a time per model (a new
spec cancels the old run) and `max_parallel` in all.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import secrets
import shutil
import sys
import tarfile
import tempfile
import time
from typing import Callable

from google.protobuf import json_format

from control_plane.datasets import Datasets
from control_plane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from control_plane.store import Store
from stratum.logs import event
from stratum.validation import (check_duration, check_labels, check_name, check_number, check_text, check_tier, shown,
                                shown_key)
from stratum.v1 import models_pb2 as m

log = logging.getLogger("stratum.models")

# Reasons of trainings Stratum starts by itself: they roll out only a version that scores no worse
# than the serving one on the data it was trained on (see _record).
AUTOMATIC = ("drift", "max_age", "dataset")
# What training depends on: a change to any of these makes a new version.
TRAINING_FIELDS = ("dataset", "task", "target", "candidates", "grids", "preprocessing", "selection", "seed")
_STEP_ORDER = ("select", "drop_missing", "impute", "scale", "one_hot")
MAX_CANDIDATES = 32
MAX_PSI = 100.0  # retrain.drift_threshold: a PSI of 0.25 is already a large shift
# retrain.min_samples: services keep the latest 5000 request rows per model (services.MAX_SAMPLES);
# asking for more would never judge drift at all.
MAX_MIN_SAMPLES = 5000
MAX_FILL = 1e15  # magnitude of preprocessing.fill_value


def _ml_script():
    """control_plane.ml.script, imported on first use: it brings scikit-learn and pandas, about
    two CPU-seconds a control plane that trains nothing (most) need not pay at start-up."""
    from control_plane.ml import script

    return script


def spec_json(spec: m.ModelSpec) -> dict:
    return json_format.MessageToDict(spec, preserving_proto_field_name=True)


def spec_from_json(doc: dict) -> m.ModelSpec:
    return json_format.ParseDict(doc, m.ModelSpec())


def ml_spec(spec: m.ModelSpec, dataset_target: str = "") -> tuple[dict, dict[str, str]]:
    """The control_plane.ml spec for a ModelSpec, and how to rename ml's field paths to the
    resource's attribute paths (ml speaks of "preprocessing[2].one_hot", users wrote
    `preprocessing = { one_hot = ... }`)."""
    steps, renames = [], {}
    p = spec.preprocessing
    values = {
        "select": list(p.select) or None,
        "drop_missing": True if p.drop_missing else None,
        "impute": ({"strategy": p.impute, **({"fill_value": p.fill_value} if p.impute == "constant" else {})}
                   if p.impute else None),
        "scale": p.scale or None,
        "one_hot": ("all" if list(p.one_hot) == ["all"] else list(p.one_hot)) or None,
    }
    for name in _STEP_ORDER:
        if values[name] is not None:
            renames[f"preprocessing[{len(steps)}].{name}"] = f"preprocessing.{name}"
            steps.append({name: values[name]})
    candidates = []
    for i, alg in enumerate(spec.candidates):
        if alg in spec.grids:
            candidates.append({"algorithm": alg, "grid": json_format.MessageToDict(spec.grids[alg])})
            renames[f"candidates[{i}].grid"] = f'grids["{alg}"]'
        else:
            candidates.append(alg)
    out = {"task": spec.task, "candidates": candidates, "preprocessing": steps,
           "selection": {k: v for k, v in (("metric", spec.selection.metric), ("cv_folds", spec.selection.cv_folds)) if v}}
    target = spec.target or dataset_target
    if spec.task != "clustering" and target:
        out["target"] = target
    # Struct numbers are floats: 50.0 -> 50, so integer parameters stay integers.
    for c in candidates:
        if isinstance(c, dict):
            c["grid"] = {k: [_int_if_whole(x) for x in (v if isinstance(v, list) else [v])] for k, v in c["grid"].items()}
    return out, renames


def _int_if_whole(x):
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _rename(problems: list[tuple[str, str]], renames: dict[str, str]) -> list[tuple[str, str]]:
    out = []
    for path, msg in problems:
        for old, new in renames.items():
            if path == old or path.startswith(old + ".") or path.startswith(old + "["):
                path = new + path[len(old):]
                break
        out.append((path, msg))
    return out


def _non_finite(value) -> bool:
    """A NaN or ±Inf anywhere in a google.protobuf.Value (MessageToDict raises ValueError on them)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return not math.isfinite(value.number_value)
    if kind == "list_value":
        return any(_non_finite(v) for v in value.list_value.values)
    if kind == "struct_value":
        return any(_non_finite(v) for v in value.struct_value.fields.values())
    return False


def validate_spec(spec: m.ModelSpec) -> list[tuple[str, str]]:
    """Problems knowable without the dataset's rows (plan time, before the dataset exists)."""
    problems = check_name(spec.name)
    if not spec.dataset:
        problems.append(("dataset", "name the dataset to train on (stratum_dataset.<name>.id)"))
    else:
        problems += check_name(spec.dataset, "dataset")
    problems += check_text(spec.dataset_digest, "dataset_digest", 71) + check_text(spec.target, "target")
    problems += check_text(spec.pinned_version, "pinned_version", 64)
    # Too many candidates to check one by one, or grids that cannot be read as JSON (NaN): the checks
    # of control_plane.ml (below) are skipped.
    unreadable = len(spec.candidates) > MAX_CANDIDATES
    if unreadable:
        problems.append(("candidates", f"{len(spec.candidates)} candidates; at most {MAX_CANDIDATES}"))
    for alg, grid in spec.grids.items():
        if alg not in spec.candidates:
            problems.append((f'grids["{shown_key(alg)}"]', f"{shown(alg)} is not among the candidates"))
        for param, value in grid.fields.items():
            if _non_finite(value):
                unreadable = True
                problems.append((f'grids["{shown_key(alg)}"].{shown_key(param)}', "give finite numbers, not NaN or Infinity"))
    r = spec.retrain
    problems += check_duration(r.max_age, "retrain.max_age")
    problems += check_number(r.drift_threshold, "retrain.drift_threshold", 0, MAX_PSI, hint="a PSI threshold, e.g. 0.2")
    problems += check_number(r.min_samples, "retrain.min_samples", 0, MAX_MIN_SAMPLES, integer=True, hint="rows")
    problems += check_number(spec.preprocessing.fill_value, "preprocessing.fill_value", -MAX_FILL, MAX_FILL)
    if not 0 <= spec.seed < 2**32:
        problems.append(("seed", "give a whole number from 0 to 2**32 - 1"))
    problems += _check_training(spec.training)
    if unreadable:
        return problems
    from control_plane.ml.train import check_spec  # scikit-learn: imported on first use, not at start-up

    spec_dict, renames = ml_spec(spec, "x")  # the dataset's target is unknown here; "x" stands for it
    problems += [p for p in _rename(check_spec(spec_dict), renames) if not (p[0] == "target" and not spec.target)]
    return problems


def _check_training(t: m.Training) -> list[tuple[str, str]]:
    """training: the engine and which nodes run its workers (whether any does: Models.check)."""
    problems = []
    if t.engine not in ("", "local", "dask"):
        problems.append(("training.engine", f'unknown engine {shown(t.engine)}; use "local" or "dask"'))
    w = t.workers
    if t.engine != "dask" and (w.tiers or w.labels):
        problems.append(("training.workers", 'only a dask training has workers: set engine = "dask" or leave them out'))
    for i, tier in enumerate(w.tiers):
        problems += check_tier(tier, f"training.workers.tiers[{i}]")
    problems += check_labels(dict(w.labels), "training.workers.labels")
    return problems


def _serving_version(doc: dict) -> str | None:
    """The pinned version, else the latest (None before the first training)."""
    return doc["spec"].get("pinned_version") or doc.get("latest")


def _version_proto(v: dict) -> m.ModelVersion:
    out = m.ModelVersion(
        version=v["version"], artifact_digest=v["artifact_digest"], best_algorithm=v["best_algorithm"],
        score=v["score"] or 0.0, dataset_digest=v["dataset_digest"], bento_digest=v["bento_digest"],
        bento_tag=v["bento_tag"], bento_size_bytes=v["bento_size_bytes"], load_time_s=v.get("load_time_s") or 0.0,
        memory_mb=v.get("memory_mb") or 0, reason=v.get("reason", ""), p95_ms=v.get("p95_ms") or 0.0,
        capacity_rps=v.get("capacity_rps") or 0.0, ms_per_kib=v.get("ms_per_kib") or 0.0,
        sizes=[m.ReplicaSize(cpu=z["cpu"], memory_mb=z["memory_mb"], workers=z["workers"],
                             capacity_rpm=z["capacity_rps"] * 60, p95_ms=z["p95_ms"]) for z in v.get("sizes") or []])
    for e in v["leaderboard"]:
        entry = m.LeaderboardEntry(algorithm=e["algorithm"], params_json=json.dumps(e.get("params") or {}, sort_keys=True),
                                   std=e.get("std") or 0.0, error=e.get("error") or "")
        if e.get("score") is not None:
            entry.score = e["score"]
        out.leaderboard.append(entry)
    out.created_at.FromNanoseconds(int(v["created_at"] * 1e9))
    return out


def operation_proto(op: dict) -> m.Operation:
    out = m.Operation(id=op["id"], kind=op["kind"], target=op["target"], state=op["state"], done=op["done"],
                      total=op["total"], message=op["message"], error=op["error"], reason=op.get("reason") or "")
    out.created_at.FromNanoseconds(int(op["created_at"] * 1e9))
    out.updated_at.FromNanoseconds(int(op["updated_at"] * 1e9))
    return out


class Models:
    def __init__(self, store: Store, datasets: Datasets, data_dir: str, *, workers: int = 1, max_parallel: int = 1,
                 on_new_version: Callable[[str], None] | None = None):
        self.store, self.datasets, self.data_dir = store, datasets, data_dir
        self.workers = workers
        self.on_new_version = on_new_version or (lambda name: None)
        self._slots = asyncio.Semaphore(max_parallel)
        self._jobs: dict[str, asyncio.Task] = {}  # model name -> its running training
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self.dask = None  # control_plane.ml.dask_nodes.DaskNodes: the nodes that run dask trainings' workers

    # -- reads --------------------------------------------------------------------------------
    def _doc(self, name: str) -> dict:
        doc = self.store.get_doc("models", name)
        if doc is None:
            raise NotFound(f"model {shown(name)} not found")
        return doc

    def version(self, name: str, version: str) -> dict | None:
        return next((v for v in self.store.model_versions(name) if v["version"] == version), None)

    def serving(self, name: str) -> dict | None:
        """The version a model's services should run (pinned, else latest), or None before the first."""
        doc = self.store.get_doc("models", name)
        want = doc and _serving_version(doc)
        return self.version(name, want) if want else None

    def get(self, name: str) -> m.Model:
        doc = self._doc(name)
        out = m.Model(spec=spec_from_json(doc["spec"]), state=doc["state"], latest_version=doc.get("latest") or "",
                      error=doc.get("error") or "")
        versions = self.store.model_versions(name)
        out.versions.extend(v["version"] for v in versions)
        want = _serving_version(doc)
        for v in versions:
            if v["version"] == want:
                out.serving.CopyFrom(_version_proto(v))
        if doc.get("operation"):
            op = self.store.get_doc("operations", doc["operation"])
            if op:
                out.operation.CopyFrom(operation_proto(op))
        return out

    def list(self) -> list[m.Model]:
        return [self.get(d["name"]) for d in self.store.list_docs("models")]

    def versions(self, name: str) -> list[m.ModelVersion]:
        self._doc(name)
        return [_version_proto(v) for v in self.store.model_versions(name)]

    def operations(self, target: str = "", limit: int = 50) -> list[m.Operation]:
        """Running ones first, then the newest."""
        ops = [o for o in self.store.list_docs("operations") if not target or o.get("target") == target]
        ops.sort(key=lambda o: (o["state"] != "running", -o["created_at"]))
        return [operation_proto(o) for o in ops[:limit]]

    def pin(self, name: str, version: str) -> m.Model:
        """Serve `version` ("" for the latest) from now on: the spec's pinned_version, without
        retraining (an update would train when the dataset moved on since the latest version)."""
        doc = self._doc(name)
        spec = spec_from_json(doc["spec"])
        spec.pinned_version = version
        self._check_pin(spec)
        doc["spec"] = spec_json(spec)
        self.store.put_doc("models", name, doc)
        self.on_new_version(name)  # services roll to what it serves now
        return self.get(name)

    def operation(self, op_id: str) -> m.Operation:
        op = self.store.get_doc("operations", op_id)
        if op is None:
            raise NotFound(f"operation {shown(op_id)} not found")
        return operation_proto(op)

    def version_files(self, name: str, v: dict) -> str:
        """The directory of a version's files (model.joblib, metadata.json) on this control plane:
        where training wrote them, else unpacked from their archive in the artifact store (the
        version was trained by another control plane sharing the database)."""
        if os.path.exists(os.path.join(v["files_dir"], "metadata.json")):
            return v["files_dir"]
        here = os.path.join(os.path.abspath(self.data_dir), "models", name, v["version"])
        if os.path.exists(os.path.join(here, "metadata.json")) or not v.get("files_digest"):
            return here
        os.makedirs(os.path.dirname(here), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=os.path.dirname(here), prefix=".tmp-")
        with self.datasets.artifacts.open(v["files_digest"]) as f, tarfile.open(fileobj=f, mode="r") as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.replace(tmp, here)
        except OSError:  # another thread unpacked it meanwhile: same bytes
            shutil.rmtree(tmp, ignore_errors=True)
        return here

    def _archive_files(self, files_dir: str) -> str:
        """A version's files as one blob (a tar), so every control plane can have them."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for entry in sorted(os.listdir(files_dir)):
                tar.add(os.path.join(files_dir, entry), arcname=entry)
        return self.datasets.artifacts.put_stream([buf.getvalue()])

    def training_script(self, name: str, version: str = "") -> m.TrainingScript:
        doc = self._doc(name)
        version = version or _serving_version(doc) or ""
        v = self.version(name, version) if version else None
        if v is None:
            known = ", ".join(x["version"] for x in self.store.model_versions(name)) or "none yet"
            raise NotFound(f"model {shown(name)} has no version {shown(version)} (versions: {known})")
        with open(os.path.join(self.version_files(name, v), "metadata.json")) as f:
            metadata = json.load(f)
        row = self.store.get_dataset(doc["spec"]["dataset"])
        ds_spec = json.loads(row.spec) if row else {}
        source = ds_spec.get("source", "")
        dataset_file = os.path.basename(source[len("file://"):]) if source.startswith("file://") else "data.csv"
        return m.TrainingScript(filename=f"train_{name}_{version}.py", version=version,
                                source=_ml_script().render(metadata, version, dataset_file))

    # -- checks -------------------------------------------------------------------------------
    def check(self, spec: m.ModelSpec, *, need_dataset: bool) -> list[str]:
        """Every problem with a spec, with the data when the dataset exists. Returns its columns."""
        problems = validate_spec(spec)
        if spec.training.engine == "dask" and not any(p.startswith("training") for p, _ in problems):
            problems += self._check_dask(spec.training)
        row = self.store.get_dataset(spec.dataset) if spec.dataset else None
        if row is None:
            if need_dataset and spec.dataset:
                problems.append(("dataset", f"dataset {shown(spec.dataset)} not found; create it first (stratum_dataset)"))
            if problems:
                raise InvalidArgument(problems)
            return []
        if spec.dataset_digest and spec.dataset_digest != row.digest and need_dataset:
            raise FailedPrecondition(f"dataset {spec.dataset!r} has digest {row.digest[:19]}…, not the expected "
                                     f"{spec.dataset_digest[:19]}… (it changed since the plan); apply again")
        if problems:
            raise InvalidArgument(problems)
        ds_spec = json.loads(row.spec)
        spec_dict, renames = ml_spec(spec, ds_spec.get("target", ""))
        if spec.task != "clustering" and not spec_dict.get("target"):
            raise InvalidArgument([("target", f"{spec.task} needs a target column: set target here or on dataset "
                                              f"{spec.dataset!r}; its columns are {', '.join(c for c, _ in row.columns)}")])
        from control_plane.ml.train import validate as validate_table

        try:
            validate_table(self.datasets.frame(spec.dataset), spec_dict)
        except InvalidArgument as e:
            raise InvalidArgument(_rename(e.violations, renames)) from None
        return [c for c, _ in row.columns]

    def _check_dask(self, training: m.Training) -> list[tuple[str, str]]:
        if self.dask is None:
            return [("training.engine", "this control plane runs no dask trainings; use engine = \"local\"")]
        return self.dask.check(training)

    def _check_pin(self, spec: m.ModelSpec) -> None:
        if spec.pinned_version and self.version(spec.name, spec.pinned_version) is None:
            known = ", ".join(v["version"] for v in self.store.model_versions(spec.name)) or "none yet"
            raise InvalidArgument([("pinned_version", f"model {shown(spec.name)} has no version {shown(spec.pinned_version)}; "
                                                      f"its versions are: {known}")])

    # -- writes -------------------------------------------------------------------------------
    async def create(self, spec: m.ModelSpec) -> m.Model:
        doc = await asyncio.to_thread(self._prepare_create, spec)
        if doc is not None:
            await self._start_training(doc, "create")
        return await asyncio.to_thread(self.get, spec.name)

    def _prepare_create(self, spec: m.ModelSpec) -> dict | None:
        """The new model's document, or None when this exact model exists (idempotent create)."""
        problems = validate_spec(spec)  # first: spec_json below cannot take what it refuses (NaN in grids)
        if problems:
            raise InvalidArgument(problems)
        existing = self.store.get_doc("models", spec.name)
        if existing is not None:
            if existing["spec"] == spec_json(spec):
                return None
            raise AlreadyExists(f"model {spec.name!r} already exists with a different spec")
        self.check(spec, need_dataset=True)
        if spec.pinned_version:
            raise InvalidArgument([("pinned_version", "a new model has no versions to pin yet; leave it empty")])
        return {"name": spec.name, "spec": spec_json(spec), "state": "training", "latest": None, "operation": None,
                "error": None, "created_at": time.time()}

    async def update(self, spec: m.ModelSpec) -> m.Model:
        doc, retrain = await asyncio.to_thread(self._prepare_update, spec)
        if retrain:
            await self._start_training(doc, "update")
        else:
            self.on_new_version(spec.name)  # the pin may have changed what services serve
        return await asyncio.to_thread(self.get, spec.name)

    def _prepare_update(self, spec: m.ModelSpec) -> tuple[dict, bool]:
        doc = self._doc(spec.name)
        # Always: a change to retrain settings alone trains nothing, and so was stored unchecked
        # (retrain.max_age = "99999999999h" then failed the retraining loop at every pass).
        problems = validate_spec(spec)
        if problems:
            raise InvalidArgument(problems)
        old = spec_from_json(doc["spec"])
        self._check_pin(spec)
        row = self.store.get_dataset(spec.dataset)
        retrain = any(getattr(old, f) != getattr(spec, f) for f in TRAINING_FIELDS) or (
            row is not None and not self._latest_trained_on(doc, row.digest))
        if retrain:
            self.check(spec, need_dataset=True)
        doc["spec"] = spec_json(spec)
        if not retrain:
            self.store.put_doc("models", spec.name, doc)
        return doc, retrain

    def _latest_trained_on(self, doc: dict, digest: str) -> bool:
        latest = doc.get("latest") and self.version(doc["name"], doc["latest"])
        return bool(latest) and latest["dataset_digest"] == digest

    async def retrain(self, name: str, reason: str = "manual") -> m.Model:
        doc = await asyncio.to_thread(self._doc, name)
        await self._start_training(doc, reason)
        return await asyncio.to_thread(self.get, name)

    async def on_new_data(self, dataset: str, version: int) -> list[str]:
        """A dataset got a new version (e.g. from an app's output): retrain the models on it that ask
        for it (retrain.on_new_data); the automatic-retraining rule decides whether each rolls out."""
        docs = await asyncio.to_thread(self.store.list_docs, "models")
        names = [d["name"] for d in docs if d["spec"].get("dataset") == dataset
                 and (d["spec"].get("retrain") or {}).get("on_new_data")]
        for name in names:
            event(log, "retraining on new data", model=name, dataset=dataset, version=version)
            await self.retrain(name, f"dataset: {dataset} version {version}")
        return names

    def delete(self, name: str, in_use_by: list[str]) -> None:
        if self.store.get_doc("models", name) is None:
            return
        if in_use_by:
            raise FailedPrecondition(f"model {name!r} is served by {', '.join(in_use_by)}; delete those services first")
        self._cancel(name)
        self.store.delete_model(name)

    async def _start_training(self, doc: dict, reason: str) -> None:
        """Record the operation, then start it (state before action)."""
        now = time.time()
        op = {"id": "op-" + secrets.token_hex(6), "kind": "train", "target": f"model/{doc['name']}", "state": "running",
              "done": 0, "total": 0, "message": "queued", "error": "", "created_at": now, "updated_at": now,
              "reason": reason}
        doc["operation"] = op["id"]
        if doc["state"] == "failed":
            doc["state"] = "training"
        doc["error"] = None

        def write():
            self.store.put_doc("operations", op["id"], op)
            self.store.put_doc("models", doc["name"], doc)

        await asyncio.to_thread(write)
        event(log, "training queued", model=doc["name"], operation=op["id"], reason=reason)
        self._launch(doc["name"], op["id"])

    def _launch(self, name: str, op_id: str) -> None:
        self._cancel(name)
        self._jobs[name] = asyncio.get_running_loop().create_task(self._run(name, op_id))

    def cancel_all(self) -> None:
        """Stop every training (leadership lost: the new leader resumes them)."""
        for name in list(self._jobs):
            self._cancel(name)

    def _cancel(self, name: str) -> None:
        task = self._jobs.pop(name, None)
        proc = self._procs.pop(name, None)
        if proc is not None and proc.returncode is None:
            proc.terminate()  # SIGTERM: the job stops the replica it may be profiling, then exits
        if task is not None:
            task.cancel()

    def resume(self) -> int:
        """At start, and on becoming the leader: run again every training that was running when the
        control plane (or the previous leader) stopped."""
        n = 0
        for doc in self.store.list_docs("models"):
            op = self.store.get_doc("operations", doc["operation"]) if doc.get("operation") else None
            if op is not None and op["state"] == "running":
                event(log, "training resumed after restart", model=doc["name"], operation=op["id"])
                self._launch(doc["name"], op["id"])
                n += 1
        return n

    # -- the operation --------------------------------------------------------------------------
    async def _run(self, name: str, op_id: str) -> None:
        op = self.store.get_doc("operations", op_id)
        try:
            async with self._slots:
                result = await self._train(name, op)
            await asyncio.to_thread(self._record, name, op, result)
        except asyncio.CancelledError:
            op.update(state="failed", error="cancelled: the model changed or was deleted", updated_at=time.time())
            await asyncio.to_thread(self.store.put_doc, "operations", op_id, op)
            raise
        except Exception as e:  # noqa: BLE001 - the operation records why; the control plane carries on
            msg = str(e) if isinstance(e, (InvalidArgument, FailedPrecondition, NotFound)) else f"{type(e).__name__}: {e}"
            event(log, "training failed", level=logging.WARNING, model=name, operation=op_id, error=msg)
            op.update(state="failed", error=msg, message="failed", updated_at=time.time())
            await asyncio.to_thread(self._record_failure, name, op)
        finally:
            if self._jobs.get(name) is asyncio.current_task():
                self._jobs.pop(name, None)

    async def _train(self, name: str, op: dict) -> dict:
        doc = self._doc(name)
        spec = spec_from_json(doc["spec"])
        row = self.datasets.get(spec.dataset)
        if op.get("reason", "").startswith(("drift", "max_age")) and json.loads(row.spec).get("query"):
            row = await asyncio.to_thread(self._reload_query_dataset, row)  # new rows since the last version
        spec_dict, _ = ml_spec(spec, json.loads(row.spec).get("target", ""))
        req = {"model": name, "data_dir": os.path.abspath(self.data_dir), "spec": spec_dict, "seed": int(spec.seed),
               "workers": self.workers,
               "dataset": {"blob": row.data_sha256, "format": row.data_format, "name": row.name, "digest": row.digest}}
        auto = op.get("reason", "").startswith(AUTOMATIC)
        serving = self.serving(name) if auto else None
        if serving:
            req["previous_dir"] = await asyncio.to_thread(self.version_files, name, serving)
        await asyncio.to_thread(self.datasets.artifacts.local_path, row.data_sha256)  # the job reads it from here
        dask = spec.training.engine == "dask"
        if dask:
            if self.dask is None:
                raise FailedPrecondition("this control plane runs no dask trainings; use training.engine = \"local\"")
            req["dask"] = self.dask.job_config()  # the job runs the scheduler; nodes run its workers
        fd, path = tempfile.mkstemp(prefix="train-", suffix=".json", dir=self.data_dir)
        with os.fdopen(fd, "w") as f:
            json.dump(req, f)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "control_plane.training_job", path, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=16 << 20)
            self._procs[name] = proc
            result = error = None
            last_write = 0.0
            async for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "progress" in msg:
                    op.update(**msg["progress"], updated_at=time.time())
                    if time.monotonic() - last_write > 0.5:
                        last_write = time.monotonic()
                        await asyncio.to_thread(self.store.put_doc, "operations", op["id"], op)
                if dask and "dask" in msg:
                    self.dask.serving(op["id"], spec.training.workers, int(msg["dask"].get("port") or 0))
                result = msg.get("result", result)
                error = msg.get("error", error)
            stderr = (await proc.stderr.read()).decode(errors="replace")
            rc = await proc.wait()
        finally:
            os.unlink(path)
            self._procs.pop(name, None)
            if dask:
                self.dask.serving(op["id"], None, 0)
        if error:
            if error["code"] == "INVALID_ARGUMENT":
                raise InvalidArgument([tuple(v) for v in error.get("violations", [])])
            raise FailedPrecondition(error["message"])
        if rc != 0 or result is None:
            tail = stderr.strip().splitlines()[-3:]
            raise RuntimeError(f"training process exited with {rc}: {' | '.join(tail)}")
        return result

    def _record_failure(self, name: str, op: dict) -> None:
        self.store.put_doc("operations", op["id"], op)
        doc = self.store.get_doc("models", name)
        if doc is not None and doc.get("operation") == op["id"]:
            doc.update(state="failed" if not doc.get("latest") else "ready", error=op["error"])
            self.store.put_doc("models", name, doc)

    def _reload_query_dataset(self, row):
        from stratum.v1 import datasets_pb2 as ds

        spec = json_format.Parse(row.spec, ds.DatasetSpec())
        return self.datasets.update(spec)

    def _record(self, name: str, op: dict, result: dict) -> None:
        doc = self.store.get_doc("models", name)
        if doc is None or doc.get("operation") != op["id"]:
            return  # deleted or superseded meanwhile
        # What the job wrote into this data dir, for every control plane sharing the database.
        for digest in (result["bento_digest"], result.get("reference_digest")):
            if digest:
                self.datasets.artifacts.publish(digest)
        result["files_digest"] = self._archive_files(result["files_dir"])
        reason = op.get("reason", "")
        result.update(reason=reason, created_at=time.time(), operation=op["id"])
        previous = doc.get("latest") and self.version(name, doc["latest"])
        keep_old = False
        old_score = result.get("previous_score_on_this_data")
        if previous and reason.startswith(AUTOMATIC) and result["version"] != previous["version"] \
                and old_score is not None:
            # Automatic retraining rolls out only a version that scores no worse on the data it was trained
            # on than the serving version does (scorers are higher-is-better throughout).
            keep_old = (result["score"] or float("-inf")) < old_score
        self.store.put_model_version(name, result["version"], result)
        message = f"trained version {result['version']} ({result['best_algorithm']}, score {result['score']:.4g})"
        if previous and previous["version"] == result["version"]:
            message = f"same inputs as version {result['version']}: nothing new to roll out"
        elif keep_old:
            message += f"; kept {previous['version']}: it scores {old_score:.4g} on this data, the new one less"
        else:
            doc["latest"] = result["version"]
            if old_score is not None:
                message += f"; replaces {previous['version']}, which scores {old_score:.4g} on this data"
        doc.update(state="ready", error=None)
        doc["trained_at"] = time.time()
        self.store.put_doc("models", name, doc)
        op.update(state="succeeded", message=message, updated_at=time.time())
        op["done"] = op["total"] = max(op.get("total") or 1, 1)
        self.store.put_doc("operations", op["id"], op)
        event(log, "model version trained", model=name, version=result["version"], algorithm=result["best_algorithm"],
              score=result["score"], bento=result["bento_digest"][:19], kept_old=keep_old)
        self.on_new_version(name)

