"""Resource `stratum_model`: train candidate scikit-learn models on a dataset and keep the best.

Create and update start a training operation on the control plane (CreateModel/UpdateModel
return at once) and wait for it, logging its progress, up to `timeouts.create`/`update`
(default 30m).  A training that fails on create leaves nothing behind: the model is deleted
and the error becomes a diagnostic.  A failed update keeps the previous version serving.

The model retrains by itself (`retrain`), so `version` may change between applies; it is
computed, so a refresh records the new value without a diff.  `pinned_version` rolls back.
`training` says where folds run (a local pool, or dask workers on nodes); it does not change the
version, so changing it alone trains nothing.
Plan-time checks (ValidateModel) see the dataset's rows when it exists already: a missing
target column or a metric that does not fit the task fails `terraform plan`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Optional

import grpc
from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, Resource, State, UpdateContext
from tf.schema import Attribute, Schema
from tf.types import Bool, List, Map, String, Unknown
from tf.utils import Diagnostics

from provider.client import ApiError
from provider.common import check_timeouts, client_of, delete_by_name, get_for_import, name_taken, read_by_name, wholly_known
from provider.nested import NestedAttribute, Nesting, Number
from stratum.durations import parse_duration
from stratum.v1 import models_pb2 as m

log = logging.getLogger("stratum.provider.model")

SPEC_FIELDS = ("name", "dataset", "dataset_digest", "task", "target", "candidates", "grids", "preprocessing", "selection",
               "seed", "retrain", "pinned_version", "training")
TRAINING_FIELDS = ("dataset", "dataset_digest", "task", "target", "candidates", "grids", "preprocessing", "selection", "seed")
COMPUTED = ("version", "latest_version", "versions", "best_algorithm", "score", "leaderboard", "artifact_digest",
            "bento_digest", "memory_mb", "load_time_s")
DEFAULT_TIMEOUT = "30m"
POLL_S = 1.0


def _opt(d: Any, key: str, zero: Any = None) -> Any:
    v = (d or {}).get(key)
    return zero if v is None else v


def to_spec(values: State, diags: Optional[Diagnostics] = None) -> m.ModelSpec:
    spec = m.ModelSpec(name=values["name"], dataset=values["dataset"] or "", dataset_digest=_opt(values, "dataset_digest", ""),
                       task=values["task"] or "", target=_opt(values, "target", ""),
                       candidates=list(values.get("candidates") or []), seed=int(_opt(values, "seed", 0)),
                       pinned_version=_opt(values, "pinned_version", ""))
    for alg, text in (values.get("grids") or {}).items():
        try:
            grid = json.loads(text)
            if not isinstance(grid, dict):
                raise ValueError("not an object")
            spec.grids[alg].update(grid)
        except (ValueError, TypeError) as e:
            if diags is not None:
                diags.add_error("Invalid grid", f'grids["{alg}"] must be a JSON object of parameter -> list of values, '
                                f'e.g. jsonencode({{ n_estimators = [50, 100] }}): {e}', path=["grids", alg])
    p = values.get("preprocessing") or {}
    spec.preprocessing.CopyFrom(m.Preprocessing(
        select=list(p.get("select") or []), drop_missing=_opt_bool(p.get("drop_missing")), impute=p.get("impute") or "",
        fill_value=float(p.get("fill_value") or 0), scale=p.get("scale") or "", one_hot=list(p.get("one_hot") or [])))
    s = values.get("selection") or {}
    spec.selection.CopyFrom(m.Selection(metric=s.get("metric") or "", cv_folds=int(s.get("cv_folds") or 0)))
    r = values.get("retrain") or {}
    spec.retrain.CopyFrom(m.Retrain(max_age=r.get("max_age") or "", on_drift=_opt_bool(r.get("on_drift")),
                                    drift_threshold=float(r.get("drift_threshold") or 0), min_samples=int(r.get("min_samples") or 0),
                                    on_new_data=_opt_bool(r.get("on_new_data"))))
    t = values.get("training")
    if t:
        spec.training.engine = t.get("engine") or ""
        w = t.get("workers")
        if w:
            spec.training.workers.CopyFrom(m.TrainingWorkers(tiers=list(w.get("tiers") or []),
                                                             labels=dict(w.get("labels") or {})))
    return spec


def _state(model: m.Model, prior: Optional[State]) -> State:
    """Server object -> state. The arguments are kept as configured (the server echoes the spec);
    on import they come from the server's spec."""
    prior = dict(prior or {})
    spec, v = model.spec, model.serving
    if not prior.get("name"):  # import: rebuild the arguments from the spec
        prior.update(_args_from_spec(spec))
    prior.update(
        id=spec.name,
        version=v.version or None,
        latest_version=model.latest_version or None,
        versions=list(model.versions),
        best_algorithm=v.best_algorithm or None,
        score=v.score if v.version else None,
        leaderboard=[{"algorithm": e.algorithm, "params": e.params_json, "score": e.score if e.HasField("score") else None,
                      "std": e.std, "error": e.error or None} for e in v.leaderboard],
        artifact_digest=v.artifact_digest or None,
        bento_digest=("sha256:" + v.bento_digest) if v.bento_digest else None,
        memory_mb=v.memory_mb or None,
        load_time_s=round(v.load_time_s, 3) if v.load_time_s else None,
    )
    prior["pinned_version"] = spec.pinned_version or (None if prior.get("pinned_version") is None else "")
    return prior


def _opt_bool(v: Any) -> Optional[bool]:
    """An optional bool goes over the wire with its presence, so an explicit false imports as false, not null."""
    return None if v is None else bool(v)


def _read_bool(msg: Any, field: str) -> Optional[bool]:
    return getattr(msg, field) if msg.HasField(field) else None


def _args_from_spec(spec: m.ModelSpec) -> State:
    from google.protobuf import json_format

    p, s, r, t = spec.preprocessing, spec.selection, spec.retrain, spec.training
    has_p = p != m.Preprocessing()
    w = t.workers
    return {
        "name": spec.name, "dataset": spec.dataset, "dataset_digest": spec.dataset_digest or None, "task": spec.task,
        "target": spec.target or None, "candidates": list(spec.candidates),
        "grids": {k: _jsonencode(json_format.MessageToDict(g)) for k, g in spec.grids.items()} or None,
        "preprocessing": {"select": list(p.select) or None, "drop_missing": _read_bool(p, "drop_missing"),
                          "impute": p.impute or None, "fill_value": p.fill_value or None, "scale": p.scale or None,
                          "one_hot": list(p.one_hot) or None} if has_p else None,
        "selection": {"metric": s.metric or None, "cv_folds": s.cv_folds or None} if s != m.Selection() else None,
        "seed": spec.seed or None,
        "retrain": {"max_age": r.max_age or None, "on_drift": _read_bool(r, "on_drift"), "drift_threshold": r.drift_threshold or None,
                    "min_samples": r.min_samples or None, "on_new_data": _read_bool(r, "on_new_data")} if r != m.Retrain() else None,
        "training": {"engine": t.engine or None,
                     "workers": {"tiers": list(w.tiers) or None, "labels": dict(w.labels) or None}
                     if w != m.TrainingWorkers() else None} if t != m.Training() else None,
        "timeouts": None,
    }


def _jsonencode(value: Any) -> str:
    """JSON as Terraform's jsonencode writes it (sorted keys, no spaces, whole numbers without .0),
    so an imported grid equals the configuration's and the next plan is empty."""
    def ints(v):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return [ints(x) for x in v]
        if isinstance(v, dict):
            return {k: ints(x) for k, x in v.items()}
        return v

    return json.dumps(ints(value), sort_keys=True, separators=(",", ":"))


def timeout_of(values: State, op: str) -> float:
    t = (values.get("timeouts") or {}).get(op) or DEFAULT_TIMEOUT
    return parse_duration(t)


def wait_for_operation(client, name: str, op_id: str, timeout_s: float, what: str) -> tuple[Optional[m.Model], str]:
    """Poll GetModel until operation `op_id` ends: (model, "") on success, (model or None, why) otherwise."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        model = client.call("GetModel", m.GetModelRequest(name=name), action=f"{what} model {name!r}")
        op = model.operation
        if op.id != op_id:
            return model, f"the training was superseded by operation {op.id}"
        progress = f"{op.done}/{op.total} {op.message}"
        if progress != last:
            last = progress
            log.info("training progress", extra={"fields": {"model": name, "operation": op_id, "done": op.done,
                                                            "total": op.total, "step": op.message}})
        if op.state == "succeeded":
            return model, ""
        if op.state == "failed":
            return model, op.error or "training failed"
        if time.monotonic() >= deadline:
            return model, f"training did not finish within {timeout_s:.0f}s (at {progress}); raise timeouts"
        time.sleep(POLL_S)


class ModelResource(Resource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "model"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="A model: candidates trained with k-fold cross-validation on a dataset; the best is packaged as a BentoML service.",
            attributes=[
                Attribute("id", String(), computed=True, description="Same as `name`."),
                Attribute("name", String(), required=True, requires_replace=True, description="Unique name. Changing it replaces the model."),
                Attribute("dataset", String(), required=True, description="Name of the dataset (`stratum_dataset.<x>.id`)."),
                Attribute("dataset_digest", String(), optional=True, description="Pass `stratum_dataset.<x>.digest` so a change of the dataset's content retrains the model."),
                Attribute("task", String(), required=True, description="`classification`, `regression` or `clustering`."),
                Attribute("target", String(), optional=True, description="Column to predict; defaults to the dataset's `target`."),
                Attribute("candidates", List(String()), required=True, description="Algorithms to try: `linear_regression`, `ridge`, `lasso`, `logistic_regression`, `decision_tree`, `random_forest`, `gradient_boosting`, `naive_bayes`, `knn`, `svm`, `kmeans`, `gaussian_mixture`."),
                Attribute("grids", Map(String()), optional=True, description="Hyperparameter grid per algorithm, as JSON: `{ random_forest = jsonencode({ n_estimators = [50, 100] }) }`."),
                NestedAttribute("preprocessing", [
                    Attribute("select", List(String()), optional=True, description="Feature columns; default all but the target."),
                    Attribute("drop_missing", Bool(), optional=True, description="Leave out training rows with missing values."),
                    Attribute("impute", String(), optional=True, description="`mean`, `median`, `most_frequent` or `constant`."),
                    Attribute("fill_value", Number(), optional=True, description="Value for `impute = \"constant\"`."),
                    Attribute("scale", String(), optional=True, description="`standard` or `minmax`."),
                    Attribute("one_hot", List(String()), optional=True, description="Columns to one-hot encode, or `[\"all\"]`."),
                ], Nesting.SINGLE, optional=True, description="Preprocessing applied before every candidate."),
                NestedAttribute("selection", [
                    Attribute("metric", String(), optional=True, description="accuracy, f1, precision, recall, roc_auc | r2, rmse, mae | silhouette, calinski_harabasz."),
                    Attribute("cv_folds", Number(), optional=True, description="Folds (2-20, default 5)."),
                ], Nesting.SINGLE, optional=True, description="How the best candidate is chosen."),
                Attribute("seed", Number(), optional=True, description="Seed of folds and estimators (default 0)."),
                NestedAttribute("retrain", [
                    Attribute("max_age", String(), optional=True, description="Retrain when the serving version is older, e.g. `24h`."),
                    Attribute("on_drift", Bool(), optional=True, description="Retrain when sampled request inputs drift (PSI/KS per feature)."),
                    Attribute("drift_threshold", Number(), optional=True, description="PSI above which a feature drifted (default 0.2)."),
                    Attribute("min_samples", Number(), optional=True, description="Sampled rows needed before judging drift (default 200)."),
                    Attribute("on_new_data", Bool(), optional=True, description="Retrain when the dataset gets a new version (e.g. from an app's `outputs`)."),
                ], Nesting.SINGLE, optional=True, description="Automatic retraining; a new version rolls out only if it scores no worse."),
                Attribute("pinned_version", String(), optional=True, description="Serve this version instead of the latest (rollback)."),
                NestedAttribute("training", [
                    Attribute("engine", String(), optional=True, description="`local` (default): a pool of worker processes beside the control plane. `dask`: a dask.distributed scheduler beside the control plane, with workers on the nodes that match `workers`. Both give the same version."),
                    NestedAttribute("workers", [
                        Attribute("tiers", List(String()), optional=True, description="Tiers the nodes must be in; default any."),
                        Attribute("labels", Map(String()), optional=True, description="Labels the nodes must carry with these values."),
                    ], Nesting.SINGLE, optional=True, description="Which ready nodes run dask workers (one per core); `terraform plan` fails when none does."),
                ], Nesting.SINGLE, optional=True, description="Where candidates and folds are trained. Changing it trains nothing."),
                NestedAttribute("timeouts", [
                    Attribute("create", String(), optional=True, description="Default `30m`."),
                    Attribute("update", String(), optional=True, description="Default `30m`."),
                ], Nesting.SINGLE, optional=True, description="How long create and update wait for training."),
                Attribute("version", String(), computed=True, description="The serving version (first 12 hex digits of `artifact_digest`)."),
                Attribute("latest_version", String(), computed=True, description="The newest version."),
                Attribute("versions", List(String()), computed=True, description="Every version, oldest first."),
                Attribute("best_algorithm", String(), computed=True, description="Algorithm of the serving version."),
                Attribute("score", Number(), computed=True, description="Its mean cross-validated score."),
                NestedAttribute("leaderboard", [
                    Attribute("algorithm", String(), computed=True, description="Algorithm."),
                    Attribute("params", String(), computed=True, description="Grid point, as JSON."),
                    Attribute("score", Number(), computed=True, description="Mean score over the folds (null if it failed)."),
                    Attribute("std", Number(), computed=True, description="Standard deviation over the folds."),
                    Attribute("error", String(), computed=True, description="Why it failed, if it did."),
                ], Nesting.LIST, computed=True, description="Every candidate's result, best first."),
                Attribute("artifact_digest", String(), computed=True, description="sha256 over the model's files."),
                Attribute("bento_digest", String(), computed=True, description="sha256 of the packaged bento archive."),
                Attribute("memory_mb", Number(), computed=True, description="Measured memory of one serving replica, MiB."),
                Attribute("load_time_s", Number(), computed=True, description="Measured start-up time of a replica, seconds."),
            ],
        )

    # ---- plan ----

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> Optional[State]:
        diags = ctx.diagnostics
        if current is None:
            planned["id"] = planned["name"]
        else:
            changed = ctx.changed_fields
            if changed & set(TRAINING_FIELDS) or "pinned_version" in changed:
                for k in COMPUTED:
                    planned[k] = Unknown
            elif not changed & set(SPEC_FIELDS):
                return planned
        check_timeouts(diags, planned, ("create", "update"))
        values = {k: planned.get(k) for k in SPEC_FIELDS}
        client = getattr(self.provider, "client", None)
        if client is None or not wholly_known({k: v for k, v in values.items() if k != "dataset_digest"}):
            return planned
        if values.get("dataset_digest") is Unknown:
            values["dataset_digest"] = None  # the dataset changes in this apply: checked against the data then
        spec = to_spec(values, diags)
        try:
            client.call("ValidateModel", spec, action=f"checking model {values['name']!r}", attributes=SPEC_FIELDS, timeout=120)
        except ApiError as e:
            e.report(diags)
        return planned

    # ---- apply ----

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        diags = ctx.diagnostics
        client = client_of(self.provider, diags)
        if client is None:
            return None
        spec = to_spec(planned, diags)
        if diags.has_errors():
            return None
        name = planned["name"]
        try:
            model = client.call("CreateModel", spec, action=f"creating model {name!r}", attributes=SPEC_FIELDS, timeout=120)
            if model.state == "ready" and model.operation.state == "succeeded":
                return _state(model, planned)  # it existed already (a retried apply)
            model, why = wait_for_operation(client, name, model.operation.id, timeout_of(planned, "create"), "training")
        except ApiError as e:
            if e.code == grpc.StatusCode.ALREADY_EXISTS:
                name_taken(diags, "model", name, "another spec")
            else:
                e.report(diags)
            return None
        if why:
            # Nothing half-created: a model without a version is of no use to anyone.
            try:
                client.call("DeleteModel", m.DeleteModelRequest(name=name), action=f"cleaning up model {name!r}")
            except ApiError:
                pass
            diags.add_error("Training failed", f"model {name!r}: {why}. Nothing was created.")
            return None
        return _state(model, planned)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        return read_by_name(self.provider, ctx.diagnostics, current, "GetModel", m.GetModelRequest, "model", _state)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        diags = ctx.diagnostics
        client = client_of(self.provider, diags)
        if client is None:
            return current
        spec = to_spec(planned, diags)
        if diags.has_errors():
            return current
        name = planned["name"]
        try:
            before = client.call("GetModel", m.GetModelRequest(name=name), action=f"reading model {name!r}")
            model = client.call("UpdateModel", spec, action=f"updating model {name!r}", attributes=SPEC_FIELDS, timeout=120)
            if model.operation.id != before.operation.id:
                model, why = wait_for_operation(client, name, model.operation.id, timeout_of(planned, "update"), "training")
                if why:
                    diags.add_error("Training failed", f"model {name!r}: {why}. The previous version keeps serving.")
                    return _state(model, current) if model is not None else current
        except ApiError as e:
            e.report(diags)
            return current
        return _state(model, planned)

    def delete(self, ctx: DeleteContext, current: State):
        return delete_by_name(self.provider, ctx.diagnostics, current, "DeleteModel", m.DeleteModelRequest, "model")

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        model = get_for_import(self.provider, ctx.diagnostics, id, "GetModel", m.GetModelRequest, "model")
        return None if model is None else _state(model, None)

