"""The whole smart-traffic pipeline by hand, without Stratum: a real Mosquitto, two sensors, the
processor calling a real `bentoml serve` congestion model, the dashboard, one aggregate run, and
the processor killed with SIGKILL mid-stream (no reading the broker held may go missing)."""

from __future__ import annotations

import csv
import io
import json
import time

import traffic

from tests.harness import free_port
from tests.pipeline.conftest import Subscriber, db_rows, http_get, http_json, start_broker, wait_until

SENSORS = {0: "i-01,i-02,i-03,i-04", 1: "i-05,i-06,i-07,i-08"}
RATE = 20  # readings per second per intersection: 160/s in all
COLUMNS = ["intersection", "hour", "weekday", "weather", "temperature_c", "vehicles_per_min",
           "pedestrians_per_min", "congestion"]


def sensor_last_seqs(sensors) -> dict[str, int]:
    last: dict[str, int] = {}
    for s in sensors:
        path = s.workdir / "sensor-state.json"
        if path.exists():
            last.update(json.loads(path.read_text()))
    return last


def test_pipeline_end_to_end_with_a_processor_crash(apps, tmp_path, congestion_model, sqlite_url):
    broker, mqtt_port = start_broker(apps)
    broker_url = f"mqtt://127.0.0.1:{mqtt_port}"
    proc_port, dash_port = free_port(), free_port()
    proc_env = dict(STRATUM_BROKER_URL=broker_url, STRATUM_BROKER_MQTT_URL=broker_url,
                    STRATUM_CONGESTION_URL=congestion_model, HISTORY_STORE=sqlite_url,
                    STRATUM_PORT_HTTP=proc_port, WINDOW_S=1, LOG_EVERY=5)
    processor = apps.start("processor", "processor", **proc_env)
    # The processor subscribes first: its persistent session must exist before readings are kept for it.
    wait_until(lambda: http_get(proc_port, "/healthz")[0] == 200, 20, "the processor to subscribe", [processor])
    decisions = Subscriber(mqtt_port, "traffic/+/decision")
    sensors = [apps.start("sensor", "sensor", i, STRATUM_BROKER_URL=broker_url, INTERSECTIONS=names, RATE=RATE,
                          SEED=7, SIM_MINUTES_PER_MESSAGE=0.5)
               for i, names in SENSORS.items()]
    dashboard = apps.start("dashboard", "dashboard", HISTORY_STORE=sqlite_url, STRATUM_PORT_HTTP=dash_port)
    everyone = [broker, processor, *sensors, dashboard]

    # sensor -> broker -> processor -> store, and -> model -> decision (broker and store)
    model_decided = "SELECT COUNT(DISTINCT intersection) FROM decisions WHERE source = 'model'"
    wait_until(lambda: db_rows(sqlite_url, model_decided)[0][0] == 8, 30, "model-based decisions for all 8 intersections",
               everyone)
    n_obs = db_rows(sqlite_url, "SELECT COUNT(*) FROM observations")[0][0]
    wait_until(lambda: db_rows(sqlite_url, "SELECT COUNT(*) FROM observations")[0][0] > n_obs, 10,
               "observations to keep growing", everyone)
    wait_until(lambda: {m["intersection"] for _, m in decisions.snapshot() if m["prediction"] in traffic.LEVELS}
               == set(traffic.NAMES), 10, "decision messages for every intersection on the broker", everyone)
    topic, msg = decisions.snapshot()[-1]
    assert topic == f"traffic/{msg['intersection']}/decision"
    assert msg["source"] == "model" and 15 <= msg["green_s"] <= 75 and msg["decided_at"] >= msg["sensor_ts"]

    # the dashboard, fed by the store
    state = wait_until(lambda: (s := http_json(dash_port, "/api/state")) and len(s["intersections"]) == 8 and s,
                       10, "the dashboard to show 8 intersections", everyone)
    assert [i["intersection"] for i in state["intersections"]] == traffic.NAMES
    assert all(i["prediction"] in traffic.LEVELS and i["green_s"] and not i["stale"] for i in state["intersections"])
    assert state["recent_decisions"] and set(state["series"]) == set(traffic.NAMES)
    status, page = http_get(dash_port, "/")
    assert status == 200 and b"/api/state" in page and b"<script src=" not in page  # nothing from a CDN
    assert http_get(dash_port, "/healthz")[0] == 200

    # steady state: the processor keeps up with the sensors (figures for the report)
    steady = wait_until(lambda: (s := http_json(proc_port, "/stats"))["uptime_s"] >= 8 and s, 20,
                        "8 s of steady state", everyone)
    assert steady["errors"] == 0 and steady["backlog"] < 2 * len(SENSORS) * 4 * RATE

    # kill -9 the processor mid-stream; readings pile up in its session on the broker meanwhile
    processor.kill()
    at_kill = sensor_last_seqs(sensors)
    wait_until(lambda: all(v >= at_kill[k] + 3 * RATE for k, v in sensor_last_seqs(sensors).items()), 20,
               "the sensors to publish 3 s of readings with the processor down", everyone)
    stored_before = db_rows(sqlite_url, "SELECT COUNT(*) FROM observations")[0][0]
    backlog = sum(sensor_last_seqs(sensors).values()) - stored_before
    restarted = apps.start("processor", "processor", **proc_env)  # same working dir, same env
    wait_until(lambda: db_rows(sqlite_url, "SELECT COUNT(*) FROM observations")[0][0] >= stored_before + backlog,
               30, "the restarted processor to store the backlog", [broker, restarted])
    # (both runs log to the same file: the second "connected" is the restarted one)
    assert [e["session_present"] for e in restarted.log_events("connected")] == [False, True]
    # How fast it took the backlog in: commit times of the first `backlog` rows it stored.
    first, last_at = db_rows(sqlite_url, "SELECT MIN(stored_at), MAX(stored_at) FROM (SELECT stored_at FROM observations "
                                         "ORDER BY id LIMIT ? OFFSET ?)", (backlog, stored_before))[0]
    drain_rate = backlog / max(last_at - first, 1e-3)
    restarted_at = time.time()
    wait_until(lambda: db_rows(sqlite_url, "SELECT COUNT(DISTINCT intersection) FROM decisions WHERE source = 'model' "
                                           "AND decided_at > ?", (restarted_at,))[0][0] == 8,
               15, "decisions by the restarted processor", [broker, restarted])

    # stop the sensors (they wait for the broker's acks): every seq up to their last must be stored once
    for s in sensors:
        assert s.stop() == 0, s.log_tail()
    last = sensor_last_seqs(sensors)
    assert sorted(last) == traffic.NAMES

    def complete():
        got = dict(db_rows(sqlite_url, "SELECT intersection, COUNT(*) FROM observations GROUP BY intersection"))
        return all(got.get(k) == v for k, v in last.items())

    wait_until(complete, 30, "every published reading in the store", [broker, restarted])
    for name, n in last.items():
        seqs = [r[0] for r in db_rows(sqlite_url, "SELECT seq FROM observations WHERE intersection = ? ORDER BY seq", (name,))]
        assert seqs == list(range(1, n + 1)), f"{name}: missing {sorted(set(range(1, n + 1)) - set(seqs))[:10]}"
    final = http_json(proc_port, "/stats")
    assert final["errors"] == 0 and final["model_errors"] == 0

    # one aggregate run: exactly traffic.csv's columns, congestion labelled from the observed queues
    out = tmp_path / "traffic-new.csv"
    aggregate = apps.make("aggregate", "aggregate", HISTORY_STORE=sqlite_url, STRATUM_OUTPUT=out)
    done = aggregate.run()
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {r["intersection"] for r in rows} == set(traffic.NAMES)
    assert {r["congestion"] for r in rows} <= set(traffic.LEVELS) and len({r["congestion"] for r in rows}) > 1
    slots = db_rows(sqlite_url, "SELECT intersection, slot, AVG(queue_length), COUNT(*) FROM observations "
                                "GROUP BY intersection, slot ORDER BY MIN(id)")
    assert [(r["intersection"], r["congestion"]) for r in rows] == [(i, traffic.level_of_queue(q)) for i, _, q, _ in slots]
    for r in rows:
        assert 0 <= int(r["hour"]) <= 23 and 0 <= int(r["weekday"]) <= 6 and r["weather"] in traffic.WEATHER
        float(r["vehicles_per_min"]), float(r["pedestrians_per_min"])
    again = aggregate.run()
    assert again.returncode == 0 and out.read_text() == ",".join(COLUMNS) + "\n"  # nothing new since

    total = sum(last.values())
    print(f"\nreadings {total}; steady {steady['stored_per_s_10s']}/s (offered {len(SENSORS) * 4 * RATE}/s), "
          f"decision latency (sensor ts -> decision) p50 {steady['latency_p50_s']}s p95 {steady['latency_p95_s']}s, "
          f"ingest latency p50 {steady['ingest_latency_p50_s']}s p95 {steady['ingest_latency_p95_s']}s, "
          f"model p50 {steady['model_ms_p50']} ms; backlog after the kill {backlog} readings taken in at "
          f"{drain_rate:.0f}/s; duplicates after the restart {final['duplicates']}")
    decisions.close()
