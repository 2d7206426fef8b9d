"""What the node knows of each run it was given, on disk (<apps>/.runs/<run id>.json), so a
restarted node daemon neither runs a finished run again nor forgets one it was running: an
attempt that was running when the daemon died counts as failed, and the run goes on if the
restart policy allows another attempt."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from stratum.timestamps import set_timestamp
from stratum.v1 import node_agent_pb2 as na

FINAL = ("succeeded", "failed")


@dataclass
class RunState:
    id: str
    number: int
    app: str
    instance: int
    state: str = "pending"  # pending, running, uploading, succeeded, failed
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    output_sha256: str = ""
    output_error: str = ""
    log_tail: str = ""

    def status(self) -> na.RunStatus:
        out = na.RunStatus(id=self.id, state="running" if self.state in ("pending", "running", "uploading") else self.state,
                           attempts=self.attempts, log_tail=self.log_tail, output_sha256=self.output_sha256,
                           output_error=self.output_error)
        if self.started_at:
            set_timestamp(out.started_at, self.started_at)
        if self.ended_at and self.state in FINAL:
            set_timestamp(out.ended_at, self.ended_at)
        if self.exit_code is not None and self.state in FINAL:
            out.exit_code = self.exit_code
        return out


class RunBook:
    def __init__(self, root: Path):
        self.dir = root / ".runs"
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, run_id: str) -> RunState | None:
        try:
            return RunState(**json.loads((self.dir / f"{run_id}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, st: RunState) -> None:
        tmp = self.dir / f"{st.id}.json.tmp"
        tmp.write_text(json.dumps(asdict(st)))
        os.replace(tmp, self.dir / f"{st.id}.json")

    def forget(self, run_id: str) -> None:
        (self.dir / f"{run_id}.json").unlink(missing_ok=True)

    def all(self) -> list[RunState]:
        out = []
        for p in self.dir.glob("*.json"):
            st = self.get(p.stem)
            if st is not None:
                out.append(st)
        return out

    def interrupted(self, now: float | None = None) -> list[RunState]:
        """At start: runs whose attempt was running when the daemon stopped. Their process was
        reaped, so the attempt failed; the instance decides whether another one follows."""
        out = []
        for st in self.all():
            if st.state == "running":
                st.state, st.exit_code, st.ended_at = "pending", None, now or time.time()
                st.log_tail += "\n[stratum] the node daemon restarted during this attempt; it was stopped\n"
                self.save(st)
                out.append(st)
        return out
