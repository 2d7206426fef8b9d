"""The demo's live view of the smart-traffic pipeline: where each app runs, the readings per second
the broker delivers to the stream processor, the decisions made, the latest run of the periodic
aggregate job and the dataset version it produced, the dashboard's URL.

Every figure is read while the demo runs: the processor's GET /stats (counters since it started),
the dashboard's GET /api/state, and the control plane (GetApp, ListAppRuns, GetDataset, GetModel).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table

from stratum.client import Client, ClientError
from stratum.v1 import apps_pb2 as a, datasets_pb2 as ds, models_pb2 as m

APPS = ("broker", "sensors", "processor", "dashboard", "aggregate")
RATE_WINDOW_S = 10.0  # messages per second: over this last stretch of samples


def http_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def endpoint(app: a.App, port: str = "http") -> str:
    addresses = app.endpoints[port].addresses if port in app.endpoints else []
    return f"http://{addresses[0]}" if addresses else ""


@dataclass
class Figures:
    apps: dict = field(default_factory=dict)  # name -> App
    stats: dict = field(default_factory=dict)  # the processor's /stats
    rate: float | None = None  # readings per second delivered by the broker, over RATE_WINDOW_S
    rate_span_s: float = 0.0
    run: a.AppRun | None = None  # the aggregate's latest run
    dataset: ds.Dataset | None = None
    model_version: str = ""
    intersections: list = field(default_factory=list)  # the dashboard's latest decision per intersection
    dashboard_url: str = ""
    processor_url: str = ""


class PipelineWatch:
    def __init__(self, client: Client, dataset: str = "traffic", model: str = "congestion"):
        self.client, self.dataset, self.model = client, dataset, model
        self.samples: deque = deque()  # (monotonic time, messages_received)
        self.figures = Figures()

    def sample(self) -> Figures:
        f = self.figures
        for name in APPS:
            try:
                f.apps[name] = self.client.call("GetApp", a.GetAppRequest(name=name), timeout=5)
            except ClientError:
                f.apps.pop(name, None)
        f.processor_url = endpoint(f.apps["processor"]) if "processor" in f.apps else ""
        dash = endpoint(f.apps["dashboard"]) if "dashboard" in f.apps else ""
        f.dashboard_url = dash + "/" if dash else ""
        if f.processor_url:
            try:
                f.stats = http_json(f.processor_url + "/stats")
                self._rate(time.monotonic(), f.stats["messages_received"])
            except (OSError, ValueError, KeyError):
                pass  # restarting: the next sample will tell
        if f.dashboard_url:
            try:
                f.intersections = http_json(f.dashboard_url + "api/state")["intersections"]
            except (OSError, ValueError, KeyError):
                pass
        try:
            runs = self.client.call("ListAppRuns", a.ListAppRunsRequest(name="aggregate", limit=1), timeout=5).runs
            f.run = runs[0] if runs else None
            f.dataset = self.client.call("GetDataset", ds.GetDatasetRequest(name=self.dataset), timeout=5)
            f.model_version = self.client.call("GetModel", m.GetModelRequest(name=self.model), timeout=5).serving.version
        except ClientError:
            pass
        return f

    def _rate(self, now: float, received: int) -> None:
        if self.samples and received < self.samples[-1][1]:
            self.samples.clear()  # the processor restarted: its counters began again
        self.samples.append((now, received))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        if t1 > t0:
            self.figures.rate, self.figures.rate_span_s = (n1 - n0) / (t1 - t0), t1 - t0

    def flowing(self) -> bool:
        """Readings arrive and decisions are made, measured over a full rate window."""
        f = self.figures
        return bool(f.rate and f.rate_span_s >= RATE_WINDOW_S * 0.8 and f.stats.get("decisions"))

    def batch_done(self) -> bool:
        """The aggregate job has run and its output became a dataset version."""
        run = self.figures.run
        return run is not None and run.state == "succeeded" and run.dataset_version > 0


# -- rendering -------------------------------------------------------------------------------------
def apps_table(f: Figures) -> Table:
    table = Table(title="smart-traffic apps")
    for col in ("app", "kind", "state", "nodes", "endpoints"):
        table.add_column(col)
    for name in APPS:
        app = f.apps.get(name)
        if app is None:
            table.add_row(name, "-", "[yellow]not created[/yellow]", "-", "-")
            continue
        nodes = ", ".join(sorted({i.node_name for i in app.instances if i.node_name})) or "-"
        ends = ", ".join(f"{k}={','.join(v.addresses)}" for k, v in sorted(app.endpoints.items())) or "-"
        style = "green" if app.state == "ready" else "red" if app.state == "failed" else "yellow"
        table.add_row(name, app.spec.kind, f"[{style}]{app.state}[/{style}]", nodes, ends)
    return table


def figure_lines(f: Figures) -> list[str]:
    """The demo's figures as lines of text (also what its test reads)."""
    s = f.stats
    lines = []
    if f.rate is not None:
        lines.append(f"messages per second through the broker: {f.rate:.1f} (measured over {f.rate_span_s:.0f} s; "
                     f"{s.get('messages_received', 0)} readings delivered to the processor since it started)")
    else:
        lines.append("messages per second through the broker: - (the processor is not answering yet)")
    p50 = s.get("latency_p50_s")
    lines.append(f"decisions made: {s.get('decisions', 0)} (model calls {s.get('model_calls', 0)}, "
                 f"model errors {s.get('model_errors', 0)}"
                 + (f", sensor → decision p50 {p50:.2f} s" if isinstance(p50, (int, float)) else "") + ")")
    run = f.run
    if run is None:
        nxt = f.apps.get("aggregate")
        when = _utc(nxt.next_run_at) if nxt is not None and nxt.next_run_at.seconds else "-"
        lines.append(f"latest batch run: none yet (aggregate's next run at {when} UTC)")
    else:
        ended = _utc(run.ended_at) if run.ended_at.seconds else "-"
        exit_code = f", exit code {run.exit_code}" if run.HasField("exit_code") else ""
        version = f", output → dataset version {run.dataset_version}" if run.dataset_version else ""
        lines.append(f"latest batch run: aggregate #{run.number} {run.state} (ended {ended} UTC{exit_code}){version}")
    if f.dataset is not None:
        lines.append(f"dataset {f.dataset.spec.name}: version {f.dataset.version}, {f.dataset.row_count} rows; "
                     f"model congestion serving {f.model_version or '-'}")
    lines.append(f"visualisation: {f.dashboard_url or '- (the dashboard has no endpoint yet)'}")
    return lines


def decisions_table(f: Figures) -> Table:
    table = Table(title="latest decision per intersection (from the dashboard's /api/state)")
    for col, justify in (("intersection", "left"), ("vehicles/min", "right"), ("queue", "right"),
                         ("congestion", "left"), ("green s", "right"), ("source", "left")):
        table.add_column(col, justify=justify)
    for i in f.intersections:
        table.add_row(i["intersection"], _num(i.get("vehicles_per_min")), _num(i.get("queue_length")),
                      i.get("prediction") or "-", _num(i.get("green_s"), 0), i.get("source") or "-")
    return table


def view(f: Figures) -> Group:
    return Group(apps_table(f), decisions_table(f), *figure_lines(f))


def _num(v, digits: int = 1) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "-"


def _utc(ts) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts.seconds))
