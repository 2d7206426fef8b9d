"""The cloud batch job: readings recorded since the last run -> rows of the `traffic` dataset.

Env:
  HISTORY_STORE     postgresql://... or sqlite:///abs/path.db (the processor's store)
  STRATUM_OUTPUT    the CSV file to write; Stratum appends its rows to the dataset
  STRATUM_APP       names the watermark (default "aggregate"), so two such jobs do not share one
  MIN_OBSERVATIONS  readings a row needs (default 1); rows with fewer are left out

One row per intersection and simulated 15-minute slot, with exactly data/traffic.csv's columns:
means of the counts and the temperature (empty when every reading lacked one), the slot's hour,
weekday and weather, and congestion labelled from the mean observed queue length
(traffic.level_of_queue: generate.py's thresholds). Rows come in the order the slots were seen.

The watermark (the last observation id aggregated) is kept in the store and moved only after the
output file is completely written and closed, so a run that fails anywhere is done again, whole,
by the next one. A slot whose readings straddle two runs becomes one row in each (both true
averages of what they cover).
"""

from __future__ import annotations

import csv
import os
import sys

import common
import history
import traffic
from common import ConfigError

COLUMNS = ["intersection", "hour", "weekday", "weather", "temperature_c", "vehicles_per_min",
           "pedestrians_per_min", "congestion"]


def _fmt(x: float | None) -> str:
    """One decimal as in traffic.csv; empty for missing; never "-0.0"."""
    if x is None:
        return ""
    s = f"{x:.1f}"
    return "0.0" if s == "-0.0" else s


def _mode(values: list) -> object:
    """The most common value; the earliest among equals (deterministic)."""
    counts: dict = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=lambda v: (counts[v], -values.index(v)))


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def rows_of(observations: list[dict], min_observations: int = 1) -> list[list[str]]:
    """CSV rows (as strings) for `observations` (store rows in id order)."""
    groups: dict[tuple, list[dict]] = {}
    for o in observations:
        # Readings without a slot (not from sensor.py) group by their hour instead.
        key = (o["intersection"], o["slot"] if o["slot"] is not None else ("h", o["weekday"], o["hour"]))
        groups.setdefault(key, []).append(o)
    out = []
    for (name, _), obs in groups.items():  # dicts keep insertion order: the order slots were first seen
        if len(obs) < min_observations:
            continue
        temps = [o["temperature_c"] for o in obs if o["temperature_c"] is not None]
        out.append([
            name,
            str(int(_mode([o["hour"] for o in obs]))),
            str(int(_mode([o["weekday"] for o in obs]))),
            str(_mode([o["weather"] for o in obs])),
            _fmt(sum(temps) / len(temps) if temps else None),
            _fmt(_mean(obs, "vehicles_per_min")),
            _fmt(_mean(obs, "pedestrians_per_min")),
            traffic.level_of_queue(_mean(obs, "queue_length")),
        ])
    return out


def write_csv(path: str, rows: list[list[str]]) -> None:
    """Write to a temporary file next to `path`, fsync, then rename: `path` is either absent or whole."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(f"STRATUM_OUTPUT={path!r}: directory {directory} does not exist")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(COLUMNS)
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main() -> int:
    url = common.env_str("HISTORY_STORE")
    output = common.env_str("STRATUM_OUTPUT")
    name = "aggregate:" + common.env_str("STRATUM_APP", "aggregate")
    min_obs = int(common.env_number("MIN_OBSERVATIONS", 1, minimum=1, integer=True))
    try:
        store = history.open_store(url)
        store.connect()
    except history.StoreConfigError as exc:
        raise ConfigError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the run fails; the next one does this work again
        print(f"aggregate: cannot open the history store {history.redact(url)}: {exc}", file=sys.stderr)
        return 1
    try:
        lo = store.watermark(name)
        hi = store.committed_max_id()
        observations = store.observations_after(lo, hi)
        rows = rows_of(observations, min_obs)
        write_csv(output, rows)
        if hi > lo and not store.advance_watermark(name, lo, hi):
            print(f"aggregate: watermark {name} moved during this run (another run at the same time?); "
                  "this run's output is not used", file=sys.stderr)
            return 1
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - one clear line; the watermark has not moved
        print(f"aggregate: failed ({type(exc).__name__}: {exc}); nothing was marked done", file=sys.stderr)
        return 1
    finally:
        store.close()
    common.log("done", observations=len(observations), rows=len(rows), after_id=lo, up_to_id=hi, output=output)
    return 0


if __name__ == "__main__":
    common.run(main)
