"""apps/history.py on SQLite and on a real PostgreSQL: idempotent observations, decisions, the
dashboard's state, the batch job's watermark and committed id bound, and HISTORY_STORE parsing."""

from __future__ import annotations

import threading
import time

import pytest

import history

from tests.pipeline.test_windows import reading


@pytest.fixture
def store(store_url):
    s = history.open_store(store_url)
    yield s
    s.close()


def count(store, table="observations") -> int:
    return store._rows(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]


def test_observations_are_idempotent_on_intersection_and_seq(store, store_url):
    first = [reading("i-01", 1), reading("i-01", 2), reading("i-02", 1)]
    assert store.add_observations(first) == first
    # a redelivery after a crash: two old readings, one new, and the new one twice in the batch
    again = [reading("i-01", 2), reading("i-02", 1), reading("i-02", 2), reading("i-02", 2)]
    assert store.add_observations(again) == [reading("i-02", 2)]
    assert count(store) == 4
    assert store.add_observations([]) == []
    # another process (the dashboard, the batch job) sees the rows, nulls included
    other = history.open_store(store_url)
    try:
        other.add_observations([reading("i-03", 1, temperature_c=None, slot=None)])
        rows = other.observations_after(0, other.committed_max_id())
    finally:
        other.close()
    assert [(r["intersection"], r["seq"]) for r in rows] == [("i-01", 1), ("i-01", 2), ("i-02", 1), ("i-02", 2), ("i-03", 1)]
    assert rows[-1]["temperature_c"] is None and rows[-1]["slot"] is None
    assert rows[0]["vehicles_per_min"] == 40.0 and rows[0]["stored_at"] > 0


def decision(name, end, prediction="high"):
    return {"intersection": name, "window_start": end - 2, "window_end": end, "observations": 4,
            "vehicles_per_min": 50.0, "pedestrians_per_min": 9.0, "queue_length": 17.0, "prediction": prediction,
            "source": "model" if prediction else "fallback", "green_s": 60.0, "sensor_ts": end - 0.5,
            "decided_at": end + 0.1}


def test_state_for_the_dashboard(store):
    store.add_observations([reading("i-01", 1), reading("i-01", 2, vehicles_per_min=60.0), reading("i-02", 1)])
    store.add_decisions([decision("i-01", 10.0, "low"), decision("i-02", 10.0)])
    store.add_decisions([decision("i-01", 12.0, "medium"), decision("i-02", 12.0, None)])
    s = store.state(recent=3, series=5)
    assert [(o["intersection"], o["seq"], o["vehicles_per_min"]) for o in s["latest_observations"]] == \
        [("i-01", 2, 60.0), ("i-02", 1, 40.0)]
    assert [(d["intersection"], d["prediction"], d["source"]) for d in s["latest_decisions"]] == \
        [("i-01", "medium", "model"), ("i-02", None, "fallback")]
    assert [d["window_end"] for d in s["recent_decisions"]] == [12.0, 12.0, 10.0]
    assert [p["prediction"] for p in s["series"]["i-01"]] == ["low", "medium"]


def test_empty_store_state(store):
    assert store.state() == {"latest_observations": [], "latest_decisions": [], "recent_decisions": [], "series": {}}


def test_watermark_moves_only_from_where_it_was(store):
    assert store.watermark("aggregate:x") == 0
    assert store.advance_watermark("aggregate:x", 0, 5)
    assert not store.advance_watermark("aggregate:x", 0, 7)  # a concurrent run moved it first
    assert store.watermark("aggregate:x") == 5 and store.watermark("aggregate:y") == 0


@pytest.mark.postgres
def test_committed_max_id_waits_for_writers_in_flight(postgres_url):
    """PostgreSQL gives ids to concurrent writers: an id can commit after a larger one. The bound
    the batch job reads must wait for a writer still inside its transaction."""
    import psycopg

    store = history.open_store(postgres_url)
    store.add_observations([reading("i-01", 1)])
    writer = psycopg.connect(postgres_url)
    try:
        writer.execute("SELECT pg_advisory_xact_lock_shared(%s)", (history.OBSERVATIONS_LOCK,))
        writer.execute("INSERT INTO observations (intersection, seq, ts, hour, weekday, weather, vehicles_per_min, "
                       "pedestrians_per_min, queue_length, stored_at) VALUES ('i-09', 1, 0, 0, 0, 'clear', 0, 0, 0, 0)")
        got = []
        t = threading.Thread(target=lambda: got.append(store.committed_max_id()))
        t.start()
        time.sleep(0.5)
        assert not got  # still waiting for the writer
        writer.commit()
        t.join(10)
        assert got == [2]
    finally:
        writer.close()
        store.close()


def test_parse_and_redact(tmp_path):
    assert history.parse_url("sqlite:///abs/path.db") == ("sqlite", "/abs/path.db")
    assert history.parse_url("sqlite:////abs/path.db") == ("sqlite", "/abs/path.db")
    assert history.parse_url("postgresql://u:pw@db:5432/h")[0] == "postgresql"
    for bad, why in [("sqlite://rel.db", "absolute"), ("sqlite:///", "absolute"), ("mysql://u@h/db", "use postgresql"),
                     ("just-a-path.db", "use postgresql"), ("postgresql://u:pw@h:notaport/db", "not a valid"),
                     ("postgresql://u:pw@h/db?no_such_option=1", "not a valid")]:
        with pytest.raises(history.StoreConfigError, match=why) as info:
            history.parse_url(bad)
        assert "pw" not in str(info.value)
    assert history.redact("postgresql://u:s3cret@db:5432/h?sslmode=require") == "postgresql://u:***@db:5432/h?sslmode=require"
    assert history.redact("postgresql://db/h") == "postgresql://db/h"
    missing = history.open_store(f"sqlite:///{tmp_path}/no/such/dir/h.db")
    with pytest.raises(history.StoreConfigError, match="does not exist"):
        missing.connect()


def test_unreachable_postgres_names_no_password():
    s = history.open_store("postgresql://u:s3cret@127.0.0.1:1/h?connect_timeout=2")
    with pytest.raises(ConnectionError) as info:
        s.connect()
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
