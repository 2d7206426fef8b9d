"""What the pipeline bench measures, and how it judges it: per-message latencies read from the
history store and from a decision subscriber, the lag between what the sensors published and what
the processor stored, CPU of process groups, and whether a rate was sustained.

The judging functions are pure (bench/pipeline/run.py feeds them what it read), so a reader can
check the definitions in one place.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# A rate is sustained when the store takes in what was offered (within 5 %) and the lag between
# published and stored readings grows by less than 2 % of the offered rate over the window.
MIN_DELIVERED = 0.95
MAX_LAG_GROWTH = 0.02


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1); None for no values."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# -- the history store ----------------------------------------------------------------------------
def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def last_observation_id(db: Path) -> int:
    """Rows stored so far (ids increase by one per row; nothing is deleted)."""
    if not db.exists():
        return 0
    with _ro(db) as conn:
        try:
            return conn.execute("SELECT COALESCE(MAX(id), 0) FROM observations").fetchone()[0]
        except sqlite3.OperationalError:  # the processor has not created the schema yet
            return 0


def store_latencies(db: Path, after_id: int, upto_id: int) -> list[float]:
    """sensor send time -> committed, in seconds, for each reading stored in (after_id, upto_id]."""
    with _ro(db) as conn:
        return [r[0] for r in conn.execute("SELECT stored_at - ts FROM observations WHERE id > ? AND id <= ?",
                                           (after_id, upto_id))]


def published(state_files: list[Path]) -> int:
    """Readings the sensors have published: the sum of each intersection's last seq, which a sensor
    writes to sensor-state.json before it sends the reading."""
    total = 0
    for path in state_files:
        try:
            total += sum(json.loads(path.read_text()).values())
        except (FileNotFoundError, ValueError):  # not written yet, or caught mid-replace: retry once
            time.sleep(0.01)
            try:
                total += sum(json.loads(path.read_text()).values())
            except (FileNotFoundError, ValueError):
                pass
    return total


# -- decisions, as a signal controller would receive them ------------------------------------------
class DecisionLog:
    """A plain MQTT subscriber to traffic/+/decision: for each decision, the time it arrived here
    and what it says about its window (the newest reading's send time, the window's end)."""

    def __init__(self, port: int, name: str):
        import paho.mqtt.client as mqtt

        self.lock = threading.Lock()
        self.rows: list[tuple[float, float, float, str]] = []  # (received, sensor_ts, window_end, source)
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{os.getpid()}")

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe("traffic/+/decision", qos=1)

        def on_message(client, userdata, msg):
            now = time.time()
            d = json.loads(msg.payload)
            with self.lock:
                self.rows.append((now, d["sensor_ts"], d["window_end"], d["source"]))

        self.client.on_connect, self.client.on_message = on_connect, on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.ready.wait(15):
            raise RuntimeError(f"could not subscribe to decisions on port {port}")

    def between(self, t0: float, t1: float) -> list[tuple[float, float, float, str]]:
        with self.lock:
            return [r for r in self.rows if t0 <= r[0] < t1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- CPU ----------------------------------------------------------------------------------------------
def cpu_seconds(pids: list[int], children: bool = True) -> float:
    """user+system CPU seconds of these processes (the living ones) and, with `children`, of their
    descendants."""
    seen, total = set(), 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *(root.children(recursive=True) if children else [])]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- one measured window ------------------------------------------------------------------------------
@dataclass
class Window:
    """What one arm did during one measured window."""

    arm: str
    offered: float  # readings per second the sensors were asked for (all intersections)
    seconds: float
    published: int  # readings the sensors published in the window
    stored: int  # readings the processor stored in the window
    lag_start: int  # published - stored at the window's start and end
    lag_end: int
    store_latency: list[float] = field(default_factory=list)  # per reading: sent -> committed (s)
    decision_latency: list[float] = field(default_factory=list)  # per decision: newest reading sent -> received (s)
    after_close: list[float] = field(default_factory=list)  # per decision: window closed -> received (s)
    fallback_decisions: int = 0
    cpu: dict = field(default_factory=dict)  # group -> cores used
    other_cores: float = 0.0  # busy cores the machine spent on processes that are not ours
    backlog_end: int = 0  # the processor's inbox at the end

    @property
    def stored_rate(self) -> float:
        return self.stored / self.seconds

    @property
    def published_rate(self) -> float:
        return self.published / self.seconds

    @property
    def lag_growth(self) -> float:
        """Readings per second the pipeline fell behind by over the window."""
        return (self.lag_end - self.lag_start) / self.seconds


def verdict(w: Window) -> tuple[bool, str]:
    """(sustained, why not): the offered rate was published, stored, and the lag did not grow."""
    if w.published_rate < MIN_DELIVERED * w.offered:
        return False, f"sensors published {w.published_rate:.0f}/s of {w.offered:.0f}/s"
    if w.lag_growth > MAX_LAG_GROWTH * w.offered:
        return False, f"lag grew {w.lag_growth:.0f}/s"
    if w.stored_rate < MIN_DELIVERED * w.offered:
        return False, f"stored {w.stored_rate:.0f}/s of {w.offered:.0f}/s"
    return True, ""


def largest_sustained(windows: list[Window]) -> float:
    """The highest offered rate sustained below the first one that was not (0: none)."""
    best = 0.0
    for w in sorted(windows, key=lambda w: w.offered):
        ok, _ = verdict(w)
        if not ok:
            break
        best = w.offered
    return best
