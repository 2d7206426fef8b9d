"""Run records of batch and periodic apps: one document per run (store table `app_runs`), written
before the run is handed to a node, and moved along by what the node reports. Pure helpers; the
Apps resource does the reads and writes.

States: pending (recorded, handed to a node) -> running -> succeeded | failed; lost when its node
went away mid-run; skipped (overlap) and missed (the control plane was down at its time) are
recorded instead of run. A finished state is final: a late or repeated report changes nothing.
"""

from __future__ import annotations

import secrets
import time

from stratum.timestamps import set_timestamp
from stratum.v1 import apps_pb2 as a, node_agent_pb2 as na

ACTIVE = ("pending", "running")
FINAL = ("succeeded", "failed", "lost", "skipped", "missed")
LOG_TAIL = 4000  # characters of a run's log kept in its record


def new_run(app: str, spec_version: int, node_id: str, *, reason: str, state: str = "pending",
            scheduled_for: float | None = None, message: str = "", now: float | None = None) -> dict:
    return {"id": "run-" + secrets.token_hex(8), "app": app, "number": 0, "state": state, "spec_version": spec_version,
            "node_id": node_id, "scheduled_for": scheduled_for, "reason": reason, "message": message,
            "created_at": now or time.time(), "started_at": None, "ended_at": None, "exit_code": None, "attempts": 0,
            "log_tail": "", "output_sha256": "", "dataset_version": 0}


def take_report(run: dict, st: na.RunStatus) -> bool:
    """Apply a node's RunStatus to an active run record; True when the record changed. The output
    (if any) is handled by the caller once this says the run succeeded."""
    if run["state"] in FINAL:
        return False
    before = dict(run)
    if st.HasField("started_at"):
        run["started_at"] = st.started_at.ToNanoseconds() / 1e9
    run["attempts"] = max(run["attempts"], st.attempts)
    if st.log_tail:
        run["log_tail"] = st.log_tail[-LOG_TAIL:]
    if st.state == "running":
        run["state"] = "running"
    elif st.state in ("succeeded", "failed"):
        run["state"] = st.state
        run["ended_at"] = st.ended_at.ToNanoseconds() / 1e9 if st.HasField("ended_at") else time.time()
        run["exit_code"] = st.exit_code if st.HasField("exit_code") else None
        run["output_sha256"] = st.output_sha256
        if st.state == "failed":
            code = f"exit code {st.exit_code}" if st.HasField("exit_code") else "no exit code"
            run["message"] = f"failed with {code} after {st.attempts} attempt(s)" + (f": {st.output_error}" if st.output_error else "")
        elif st.output_error:
            run["message"] = st.output_error
    return run != before


def to_proto(run: dict, node_name: str = "") -> a.AppRun:
    out = a.AppRun(id=run["id"], number=run["number"], state=run["state"], node_name=node_name,
                   attempts=run["attempts"], log_tail=run["log_tail"], dataset_version=run.get("dataset_version") or 0,
                   message=run.get("message") or "", spec_version=run["spec_version"])
    for field in ("scheduled_for", "started_at", "ended_at"):
        if run.get(field):
            set_timestamp(getattr(out, field), run[field])
    if run.get("exit_code") is not None:
        out.exit_code = run["exit_code"]
    return out
