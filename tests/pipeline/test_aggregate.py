"""The batch job as a process on SQLite and PostgreSQL: traffic.csv's exact columns and format,
labels from the mean observed queue, a watermark that moves only after a complete output file."""

from __future__ import annotations

import csv
import io
import json

import aggregate
import history
import traffic

from tests.pipeline.conftest import TRAFFIC_CSV
from tests.pipeline.test_windows import reading

HEADER = TRAFFIC_CSV.read_text().splitlines()[0]


def add(url: str, rows: list[dict]) -> None:
    s = history.open_store(url)
    try:
        s.add_observations(rows)
    finally:
        s.close()


def test_rows_and_watermark(apps, tmp_path, store_url):
    add(store_url, [
        # i-01, slot 28: queue mean 9.0 -> medium; temperature mean of the two that have one
        reading("i-01", 1, queue_length=8.0, temperature_c=10.0, vehicles_per_min=40.0),
        reading("i-01", 2, queue_length=10.0, temperature_c=None, vehicles_per_min=41.0),
        reading("i-01", 3, queue_length=9.0, temperature_c=11.5, vehicles_per_min=42.0),
        # i-02, slot 28: no temperature at all -> empty field; low
        reading("i-02", 1, queue_length=3.0, temperature_c=None, pedestrians_per_min=0.04),
        # i-01, slot 29 (the next 15 minutes): high; -0.04 degrees is written 0.0, never -0.0
        reading("i-01", 4, slot=29, hour=7, queue_length=30.0, temperature_c=-0.04, weather="rain"),
    ])
    out = tmp_path / "out.csv"
    job = apps.make("aggregate", "aggregate", HISTORY_STORE=store_url, STRATUM_OUTPUT=out)
    done = job.run()
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "\n".join([
        HEADER,
        "i-01,7,0,clear,10.8,41.0,10.0,medium",
        "i-02,7,0,clear,,40.0,0.0,low",
        "i-01,7,0,rain,0.0,40.0,10.0,high",
    ]) + "\n"
    assert [json.loads(line)["rows"] for line in done.stdout.splitlines()] == [3]  # one log line: what it did

    # nothing new: a header only, and success
    assert job.run().returncode == 0 and out.read_text() == HEADER + "\n"

    # new readings: only they are aggregated (slot 29 of i-01 again gets a row of its own)
    add(store_url, [reading("i-01", 5, slot=29, queue_length=12.0), reading("i-01", 5, slot=29, queue_length=12.0)])
    assert job.run().returncode == 0
    assert out.read_text() == HEADER + "\n" + "i-01,7,0,clear,10.0,40.0,10.0,medium\n"


def test_a_failed_run_is_done_again(apps, tmp_path, store_url):
    add(store_url, [reading("i-03", 1), reading("i-03", 2)])
    bad = apps.make("aggregate", "aggregate", HISTORY_STORE=store_url, STRATUM_OUTPUT=tmp_path / "no" / "out.csv")
    done = bad.run()
    assert done.returncode != 0 and "does not exist" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    good = apps.make("aggregate", "aggregate", HISTORY_STORE=store_url, STRATUM_OUTPUT=tmp_path / "out.csv")
    assert good.run().returncode == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert [(r["intersection"], r["congestion"]) for r in rows] == [("i-03", "low")]
    assert not list(tmp_path.glob("*.tmp-*"))


def test_min_observations_and_columns_parse_like_traffic_csv(apps, tmp_path, sqlite_url):
    from control_plane.ml.datasets import load_file

    add(sqlite_url, [reading(n, s, slot=100 + s // 4, queue_length=float(s)) for n in ("i-04", "i-05") for s in range(1, 13)])
    out = tmp_path / "out.csv"
    done = apps.make("aggregate", "aggregate", HISTORY_STORE=sqlite_url, STRATUM_OUTPUT=out, MIN_OBSERVATIONS=4).run()
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4  # slots 100 and 101 have 3 and 4 readings, 102 has 4, 103 one: only the 4s
    # Stratum appends these rows to the dataset: they must read as the same types as traffic.csv
    new, old = load_file(str(out)), load_file(str(TRAFFIC_CSV))
    assert list(new.frame.columns) == list(old.frame.columns)
    assert {c: str(t) for c, t in new.frame.dtypes.items()} == {c: str(t) for c, t in old.frame.dtypes.items()}
    assert set(new.frame["congestion"]) <= set(traffic.LEVELS)


def test_rows_of_is_deterministic():
    obs = [dict(reading("i-01", s, weather="rain" if s % 2 else "fog"), id=s, stored_at=0.0) for s in range(1, 5)]
    assert aggregate.rows_of(obs) == [["i-01", "7", "0", "rain", "10.0", "40.0", "10.0", "low"]]  # a tie: the first seen
