"""Retraining triggers: a model's serving version is too old, or its request inputs drifted.

`due(...)` is the pure decision; `RetrainLoop.tick()` gathers its inputs (model documents,
versions, the request rows node routers sampled) and starts the trainings.  A retraining trains
on the dataset's current content (a SQL dataset is queried again) and, being automatic, rolls
out only a version that scores no worse than the one serving (control_plane/models.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from control_plane.models import Models
from control_plane.packaging.store import ArtifactStore
from control_plane.services import Services
from stratum.durations import parse_duration
from stratum.logs import event

log = logging.getLogger("stratum.retraining")

DEFAULT_MIN_SAMPLES = 200
DEFAULT_PSI = 0.2


def due(retrain: dict, serving: dict | None, now: float, samples: list[dict], reference: dict | None,
        training: bool, last_trained: float = 0.0) -> tuple[str | None, "DriftReport | None"]:
    """The reason to retrain now ("max_age …" / "drift: …"), or None; and the drift report if judged.
    Age counts from the last training, which may have kept the serving version (same data)."""
    if serving is None or training:
        return None, None
    max_age = retrain.get("max_age")
    if max_age:
        age = now - max(serving["created_at"], last_trained)
        if age >= parse_duration(max_age):
            return f"max_age: version {serving['version']} is {age:.0f}s old (max_age {max_age})", None
    if retrain.get("on_drift") and reference is not None:
        from control_plane.ml import drift  # pandas and scipy: on first use, not at start-up

        report = drift.compare(reference, samples, psi_threshold=retrain.get("drift_threshold") or DEFAULT_PSI,
                               min_samples=retrain.get("min_samples") or DEFAULT_MIN_SAMPLES)
        if report.drifted:
            return f"drift: {report.reason}", report
        return None, report
    return None, None


class RetrainLoop:
    def __init__(self, models: Models, services: Services, artifacts: ArtifactStore, history=None):
        self.models, self.services, self.artifacts = models, services, artifacts
        self.history = history  # control_plane/history.py: each drift check is a point of the model's series
        self._refs: dict[str, dict] = {}  # reference digest -> profile
        self.last_reports: dict[str, dict] = {}  # model -> last drift report (for logs and tests)

    def _reference(self, digest: str | None) -> dict | None:
        if not digest:
            return None
        if digest not in self._refs:
            self._refs[digest] = json.loads(self.artifacts.open(digest).read())
        return self._refs[digest]

    def check(self, now: float | None = None) -> list[tuple[str, str]]:
        """Models to retrain now, with the reason. Blocking (store reads): call in a thread."""
        now = now or time.time()
        out = []
        for doc in self.models.store.list_docs("models"):
            retrain = doc["spec"].get("retrain") or {}
            if not retrain:
                continue
            op = self.models.store.get_doc("operations", doc["operation"]) if doc.get("operation") else None
            serving = self.models.serving(doc["name"])
            samples = self.services.samples.get(doc["name"], [])
            reason, report = due(retrain, serving, now, samples, self._reference(serving and serving.get("reference_digest")),
                                 training=bool(op and op["state"] == "running"), last_trained=doc.get("trained_at") or 0.0)
            if report is not None:
                self.last_reports[doc["name"]] = report.to_dict()
                if self.history is not None:
                    self.history.drift(doc["name"], self.last_reports[doc["name"]],
                                       retrain.get("drift_threshold") or DEFAULT_PSI, now)
            if reason:
                out.append((doc["name"], reason))
        return out

    async def tick(self) -> None:
        for name, reason in await asyncio.to_thread(self.check):
            event(log, "retraining", model=name, reason=reason)
            self.services.samples.pop(name, None)  # judged against the next version's data from now on
            await self.models.retrain(name, reason)
