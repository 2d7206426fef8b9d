"""Outages the programs ride out on their own: the model endpoint away (the fixed-time plan, said
so in every decision) and the broker restarted mid-stream (sensor and processor reconnect; the
persistent session and the sensor's own queue lose no reading)."""

from __future__ import annotations

import json

from tests.harness import free_port
from tests.pipeline.conftest import db_rows, http_get, http_json, start_broker, wait_until


def test_no_model_then_a_broker_restart(apps, store_url):
    broker, port = start_broker(apps)
    url = f"mqtt://127.0.0.1:{port}"
    proc_port = free_port()
    processor = apps.start("processor", "processor", STRATUM_BROKER_URL=url, HISTORY_STORE=store_url,
                           STRATUM_CONGESTION_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
                           STRATUM_PORT_HTTP=proc_port, WINDOW_S=0.5, MODEL_TIMEOUT_S=0.5)
    wait_until(lambda: http_get(proc_port, "/healthz")[0] == 200, 20, "the processor to subscribe", [processor])
    sensor = apps.start("sensor", "sensor", STRATUM_BROKER_URL=url, INTERSECTIONS="i-01,i-02", RATE=20, SEED=3)
    state_file = sensor.workdir / "sensor-state.json"
    everyone = [broker, processor, sensor]

    wait_until(lambda: db_rows(store_url, "SELECT COUNT(DISTINCT intersection) FROM decisions "
                                           "WHERE source = 'fallback' AND prediction IS NULL")[0][0] == 2,
               20, "fixed-plan decisions for both intersections", everyone)
    stats = http_json(proc_port, "/stats")
    assert stats["model_errors"] > 0 and stats["model_calls"] >= stats["model_errors"]
    assert db_rows(store_url, "SELECT DISTINCT green_s FROM decisions") == [(40.0,)]
    assert processor.log_events("model_error")

    # the broker goes away (SIGTERM: it saves the sessions and their queues) and comes back
    assert broker.stop() == 0, broker.log_tail()
    at_stop = json.loads(state_file.read_text())
    wait_until(lambda: min(json.loads(state_file.read_text()).values()) >= max(at_stop.values()) + 20, 15,
               "a second of readings with the broker down", everyone)
    broker, _ = start_broker(apps, port=port)  # the same working directory: its persistence file
    wait_until(lambda: len(processor.log_events("connected")) == 2, 40, "the processor to reconnect", [broker, processor])
    assert processor.log_events("connected")[1]["session_present"] is True
    wait_until(lambda: len(sensor.log_events("connected")) == 2, 40, "the sensor to reconnect", [broker, sensor])

    assert sensor.stop() == 0, sensor.log_tail()
    last = json.loads(state_file.read_text())

    def stored():
        return dict(db_rows(store_url, "SELECT intersection, COUNT(*) FROM observations GROUP BY intersection"))

    wait_until(lambda: stored() == last, 30, f"all of {last} stored", [broker, processor])
    for name, n in last.items():
        seqs = [r[0] for r in db_rows(store_url, "SELECT seq FROM observations WHERE intersection = ? ORDER BY seq", (name,))]
        assert seqs == list(range(1, n + 1))
    assert http_json(proc_port, "/stats")["store_errors"] == 0
