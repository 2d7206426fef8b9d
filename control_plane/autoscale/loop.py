"""The autoscaler: once a tick, each service with `scaling.mode` predictive or reactive gets a
replica count from its per-minute arrivals (horizontal.ServiceScaler) and, when the count
changes, is placed again (control_plane/services.py: scale). Cloud VMs follow from placement.

The per-replica capacity is `scaling.target_rpm`, else the serving version's measured
`capacity_rps` x 60 x workers. Scalers keep their forecasters in memory; a changed spec starts a
new one.
"""

from __future__ import annotations

import json
import logging
import time

from google.protobuf import json_format

from control_plane.autoscale.horizontal import ServiceScaler
from control_plane.services import Services, replica_bounds, replicas_of, scaled
from stratum.logs import event
from stratum.v1 import models_pb2 as m

log = logging.getLogger("stratum.autoscale")

DEFAULT_RPM = 600.0  # per replica when the model version has no measured capacity


class Autoscaler:
    def __init__(self, services: Services):
        self.services = services
        self.scalers: dict[str, tuple[str, ServiceScaler]] = {}  # service -> (spec fingerprint, scaler)

    def _per_replica(self, spec: m.ServiceSpec) -> float:
        if spec.scaling.target_rpm:
            return spec.scaling.target_rpm
        v = self.services.models.serving(spec.model)
        rps = float((v or {}).get("capacity_rps") or 0.0)
        return rps * 60 * (spec.workers or 1) if rps else DEFAULT_RPM

    def tick(self, now: float | None = None) -> None:
        now_min = int((time.time() if now is None else now) // 60)
        live = set()
        for doc in self.services.store.list_docs("services"):
            if doc.get("deleting"):
                continue
            spec = json_format.ParseDict(doc["spec"], m.ServiceSpec())
            if not scaled(spec):
                continue
            name = doc["name"]
            live.add(name)
            fp = json.dumps(doc["spec"], sort_keys=True)
            held = self.scalers.get(name)
            if held is None or held[0] != fp:
                lo, hi = replica_bounds(spec)
                held = self.scalers[name] = (fp, ServiceScaler(spec.scaling.mode, lo, hi, self._per_replica(spec)))
            current = replicas_of(spec, doc)
            n, why = held[1].decide(now_min, self.services.series.arrivals(name), current)
            if n != current:
                self.services.scale(name, n, why)
            elif why != doc.get("scaling_reason"):
                doc["scaling_reason"] = why
                self.services.store.put_doc("services", name, doc)
        for gone in set(self.scalers) - live:
            del self.scalers[gone]
            event(log, "autoscaler forgets service", service=gone)
