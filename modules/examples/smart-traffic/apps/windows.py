"""The processor's pure parts: a window's readings -> one model row per intersection -> a signal timing.

No I/O here, so the unit tests call these directly.
"""

from __future__ import annotations

import math
import threading

# Columns the congestion model is trained on (data/traffic.csv without the target).
MODEL_COLUMNS = ("intersection", "hour", "weekday", "weather", "temperature_c", "vehicles_per_min",
                 "pedestrians_per_min")

# Green seconds for the main approach in a 90 s cycle, by predicted congestion: more green where
# the queue would otherwise grow. Unknown level (no model answer): the fixed-time plan.
CYCLE_S = 90.0
GREEN_S = {"low": 30.0, "medium": 45.0, "high": 60.0}
FIXED_GREEN_S = 40.0
# A crowd at the crossing needs its walk phase: it costs the main approach some green.
CROWD_PEDESTRIANS, CROWD_GREEN_CUT_S = 20.0, 10.0
MIN_GREEN_S = 15.0


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def aggregate(readings: list[dict]) -> list[dict]:
    """One row per intersection (sorted by name): means of the counts, queue and temperature over
    the window; hour, weekday and weather of the latest reading (by seq); the newest send time."""
    by_name: dict[str, list[dict]] = {}
    for r in readings:
        by_name.setdefault(r["intersection"], []).append(r)
    rows = []
    for name in sorted(by_name):
        rs = by_name[name]
        latest = max(rs, key=lambda r: r["seq"])
        temperature = _mean([r.get("temperature_c") for r in rs])
        rows.append({
            "intersection": name,
            "hour": int(latest["hour"]),
            "weekday": int(latest["weekday"]),
            "weather": latest["weather"],
            "temperature_c": None if temperature is None else round(temperature, 1),
            "vehicles_per_min": round(_mean([r["vehicles_per_min"] for r in rs]), 1),
            "pedestrians_per_min": round(_mean([r["pedestrians_per_min"] for r in rs]), 1),
            "queue_length": round(_mean([r["queue_length"] for r in rs]), 1),
            "observations": len(rs),
            "first_seq": min(r["seq"] for r in rs),
            "last_seq": latest["seq"],
            "sensor_ts": max(r["ts"] for r in rs),
        })
    return rows


def model_instance(row: dict) -> dict:
    """What the model endpoint gets for one aggregated row."""
    return {c: row[c] for c in MODEL_COLUMNS}


def green_seconds(prediction: str | None, pedestrians_per_min: float) -> float:
    """The main approach's green time for the next cycle."""
    green = GREEN_S.get(prediction or "", FIXED_GREEN_S)
    if pedestrians_per_min >= CROWD_PEDESTRIANS and prediction != "high":
        green -= CROWD_GREEN_CUT_S
    return max(MIN_GREEN_S, min(green, CYCLE_S - MIN_GREEN_S))


class Window:
    """Readings received since the last close, shared by the ingest and decision threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._readings: list[dict] = []

    def add(self, readings: list[dict]) -> None:
        with self._lock:
            self._readings.extend(readings)

    def close(self) -> list[dict]:
        """The readings so far; the next window starts empty."""
        with self._lock:
            out, self._readings = self._readings, []
        return out
