"""The fog dashboard: live congestion per intersection and the recent decisions, from the history store.

Env:
  HISTORY_STORE      postgresql://... or sqlite:///abs/path.db (the processor's store)
  STRATUM_PORT_HTTP  GET / (the page), GET /api/state (JSON), GET /healthz
  STRATUM_HOST       address to listen on (default 127.0.0.1)
  STALE_S            a reading older than this marks its intersection stale (default 30)

The page (dashboard.html, next to this file) loads nothing from elsewhere: it draws inline SVG
and fetches /api/state every few seconds with plain JavaScript.
"""

from __future__ import annotations

import os
import threading
import time

import common
import history
from common import ConfigError

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard.html")


def build_state(raw: dict, now: float, stale_s: float) -> dict:
    """The JSON the page renders: one entry per intersection (its latest reading and decision),
    the newest decisions, and each intersection's recent decisions as a series."""
    obs = {r["intersection"]: r for r in raw["latest_observations"]}
    dec = {r["intersection"]: r for r in raw["latest_decisions"]}
    intersections = []
    for name in sorted(set(obs) | set(dec)):
        o, d = obs.get(name, {}), dec.get(name, {})
        seen = o.get("ts")
        intersections.append({
            "intersection": name,
            "prediction": d.get("prediction"),
            "source": d.get("source"),
            "green_s": d.get("green_s"),
            "decided_at": d.get("decided_at"),
            "hour": o.get("hour"), "weekday": o.get("weekday"), "weather": o.get("weather"),
            "temperature_c": o.get("temperature_c"),
            "vehicles_per_min": o.get("vehicles_per_min"), "pedestrians_per_min": o.get("pedestrians_per_min"),
            "queue_length": o.get("queue_length"),
            "last_seq": o.get("seq"), "last_seen": seen,
            "stale": seen is None or now - seen > stale_s,
        })
    recent = [{k: r[k] for k in ("intersection", "window_end", "prediction", "source", "green_s", "observations",
                                 "vehicles_per_min", "queue_length", "sensor_ts", "decided_at")}
              for r in raw["recent_decisions"]]
    series = {name: [{"t": r["window_end"], "vehicles_per_min": r["vehicles_per_min"],
                      "queue_length": r["queue_length"], "prediction": r["prediction"]} for r in rows]
              for name, rows in raw["series"].items()}
    return {"now": now, "intersections": intersections, "recent_decisions": recent, "series": series}


class Dashboard:
    def __init__(self):
        url = common.env_str("HISTORY_STORE")
        try:
            self.store = history.open_store(url)
        except history.StoreConfigError as exc:
            raise ConfigError(str(exc)) from None
        self.port = common.env_port("HTTP")
        self.host = common.bind_host()
        self.stale_s = common.env_number("STALE_S", 30.0, minimum=1)
        try:
            with open(PAGE, "rb") as f:
                self.page = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read the page {PAGE}: {exc.strerror}") from None

    def state(self):
        try:
            raw = self.store.state()
        except Exception as exc:  # noqa: BLE001 - the page shows the store is away, and retries
            return common.json_body({"error": f"history store {self.store.display} unavailable: "
                                              f"{type(exc).__name__}"}, 503)
        return common.json_body(build_state(raw, time.time(), self.stale_s))

    def healthz(self):
        try:
            self.store.connect()
        except Exception as exc:  # noqa: BLE001
            return common.json_body({"status": f"history store unavailable: {type(exc).__name__}"}, 503)
        return common.json_body({"status": "ok"})

    def run(self) -> int:
        try:
            self.store.connect()
        except history.StoreConfigError as exc:
            raise ConfigError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - serve anyway; /healthz says so until it is back
            common.log("store_error", store=self.store.display, error=type(exc).__name__)
        server = common.serve_http(self.host, self.port, {
            "/": lambda: (200, "text/html; charset=utf-8", self.page),
            "/api/state": self.state,
            "/healthz": self.healthz,
        })
        common.log("start", http=f"{self.host}:{self.port}", store=self.store.display)
        stop = threading.Event()
        common.stop_on_signals(stop)
        stop.wait()
        server.shutdown()
        self.store.close()
        return 0


def main() -> int:
    return Dashboard().run()


if __name__ == "__main__":
    common.run(main)
