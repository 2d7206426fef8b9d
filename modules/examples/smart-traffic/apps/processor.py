"""The fog stream processor: readings in, signal timings out, everything seen written to the history store.

Env:
  STRATUM_BROKER_URL      mqtt://host:port (BROKER names another connects_to target)
  STRATUM_CONGESTION_URL  the model service (MODEL names another target): POST <url>/predict
  HISTORY_STORE           postgresql://... or sqlite:///abs/path.db
  STRATUM_PORT_HTTP       GET /healthz (200 once subscribed) and GET /stats (JSON counters)
  STRATUM_HOST            address to listen on (default 127.0.0.1)
  STRATUM_APP, STRATUM_INSTANCE   the MQTT client id, hence the persistent session (default processor-0)
  WINDOW_S                seconds per decision window (default 2)
  MODEL_TIMEOUT_S         seconds a model call may take (default 2)
  SESSION_EXPIRY_S        how long the broker keeps the session while we are away (default 7 days)
  LOG_EVERY               one stats log line per this many windows (default 10)

Why no reading the broker held is lost when this process is killed at any moment: the session is
persistent (fixed client id, clean_start False, a session expiry), readings arrive with QoS 1,
and each is acknowledged only after the transaction that stored it committed (manual acks). The
broker redelivers whatever was not acknowledged; the store ignores readings it already has
(UNIQUE (intersection, seq)), so a redelivery never doubles a row nor counts twice in a window.

Threads: paho's network thread queues readings; the main thread stores and acknowledges them in
batches; the decision thread closes a window every WINDOW_S, asks the model about all of its
intersections in one request, publishes traffic/<intersection>/decision (QoS 1) and records the
decisions; an HTTP thread answers /healthz and /stats.
"""

from __future__ import annotations

import json
import math
import queue
import statistics
import threading
import time
import urllib.request
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

import common
import history
import windows
from common import ConfigError

TOPIC = "traffic/+/counts"
MAX_BATCH = 500  # readings per store transaction
RECEIVE_MAXIMUM = 1000  # unacknowledged readings the broker may send us at once (MQTT 5)


class BadReading(ValueError):
    pass


def parse_reading(topic: str, payload: bytes) -> dict:
    """A reading as the store wants it; BadReading says what is wrong with it."""
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadReading(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise BadReading("not a JSON object")
    parts = topic.split("/")
    out: dict = {}

    def number(key, *, integer=False, optional=False, lo=None, hi=None):
        v = msg.get(key)
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            raise BadReading(f"{key} is not a number")
        if integer and v != int(v):
            raise BadReading(f"{key} is not a whole number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise BadReading(f"{key}={v} is out of range")
        return int(v) if integer else float(v)

    name = msg.get("intersection")
    if not isinstance(name, str) or not name or len(parts) != 3 or parts[1] != name:
        raise BadReading("intersection missing or not the topic's")
    out["intersection"] = name
    out["seq"] = number("seq", integer=True, lo=1)
    out["ts"] = number("ts")
    out["slot"] = number("slot", integer=True, optional=True)
    out["hour"] = number("hour", integer=True, lo=0, hi=23)
    out["weekday"] = number("weekday", integer=True, lo=0, hi=6)
    if not isinstance(msg.get("weather"), str):
        raise BadReading("weather is not a string")
    out["weather"] = msg["weather"]
    out["temperature_c"] = number("temperature_c", optional=True)
    out["vehicles_per_min"] = number("vehicles_per_min", lo=0)
    out["pedestrians_per_min"] = number("pedestrians_per_min", lo=0)
    out["queue_length"] = number("queue_length", lo=0)
    return out


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.started, self.started_mono = time.time(), time.monotonic()
        self.c = dict(messages_received=0, messages_invalid=0, stored=0, duplicates=0, windows=0, decisions=0,
                      model_calls=0, model_errors=0, store_errors=0, publish_errors=0)
        self.decision_latency = deque(maxlen=2000)  # newest sensor ts in the window -> decision published
        self.ingest_latency = deque(maxlen=2000)  # sensor ts -> reading committed
        self.model_ms = deque(maxlen=500)
        self.stored_times = deque(maxlen=20000)  # (monotonic time, readings) of each commit, for a rate

    def add(self, **counts) -> None:
        with self.lock:
            for k, v in counts.items():
                self.c[k] += v

    def snapshot(self, **extra) -> dict:
        with self.lock:
            c = dict(self.c)
            dl, il, mm = list(self.decision_latency), list(self.ingest_latency), list(self.model_ms)
            now = time.monotonic()
            recent = sum(n for t, n in self.stored_times if t >= now - 10)
            span = min(10.0, max(now - self.started_mono, 1e-3))  # a young process: over its lifetime

        def pct(vals, q):
            return round(statistics.quantiles(vals, n=100, method="inclusive")[q - 1], 4) if len(vals) > 1 else (
                round(vals[0], 4) if vals else None)

        errors = c["messages_invalid"] + c["model_errors"] + c["store_errors"] + c["publish_errors"]
        return {**c, "errors": errors,
                "last_latency_s": round(dl[-1], 4) if dl else None,
                "latency_p50_s": pct(dl, 50), "latency_p95_s": pct(dl, 95),
                "ingest_latency_p50_s": pct(il, 50), "ingest_latency_p95_s": pct(il, 95),
                "model_ms_p50": pct(mm, 50), "stored_per_s_10s": round(recent / span, 1),
                "uptime_s": round(time.time() - self.started, 1), **extra}


class Throttle:
    """At most one log line per key every `every` seconds (a dead store must not flood the log)."""

    def __init__(self, every: float = 5.0):
        self.every, self.last = every, {}

    def __call__(self, key: str) -> bool:
        now = time.monotonic()
        if now - self.last.get(key, -1e9) >= self.every:
            self.last[key] = now
            return True
        return False


class Processor:
    def __init__(self):
        url = common.env_str("HISTORY_STORE")
        try:
            self.ingest_store = history.open_store(url)
            self.decision_store = history.open_store(url)
        except history.StoreConfigError as exc:
            raise ConfigError(str(exc)) from None
        self.broker_url, host, port = common.target_url(common.env_str("BROKER", "broker"), "mqtt")
        self.model_url = common.target_url(common.env_str("MODEL", "congestion"), "http")[0]
        self.http_port = common.env_port("HTTP")
        self.http_host = common.bind_host()
        self.window_s = common.env_number("WINDOW_S", 2.0, minimum=0.05)
        self.model_timeout = common.env_number("MODEL_TIMEOUT_S", 2.0, minimum=0.01)
        expiry = int(common.env_number("SESSION_EXPIRY_S", 7 * 24 * 3600, minimum=1, integer=True))
        self.log_every = int(common.env_number("LOG_EVERY", 10, minimum=1, integer=True))
        self.client_id = common.mqtt_client_id("processor")

        self.stats = Stats()
        self.throttle = Throttle()
        self.window = windows.Window()
        self.inbox: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.subscribed = threading.Event()  # set at the first SUBACK, stays set
        self.connected = threading.Event()
        # Message ids are per connection: an ack for a reading received on an earlier connection
        # would acknowledge some other reading on this one. `generation` changes with every
        # (dis)connect (in paho's thread only), and acks are sent only for readings of the current
        # one. No lock: the callbacks run under paho's callback mutex, which client.ack() may take,
        # so a lock held across ack() could deadlock; and a reconnect follows a disconnect by at
        # least the reconnect delay (1 s), far longer than the check-then-ack below takes.
        self.generation = 0

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_queued_messages_set(10_000)  # decisions held during an outage
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(host, port, keepalive=15, clean_start=False, properties=props)

    # -- MQTT callbacks (paho's network thread) -------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            common.log("connect_failed", broker=self.broker_url, reason=str(reason_code))
            return
        self.generation += 1
        self.connected.set()
        common.log("connected", broker=self.broker_url, client_id=self.client_id,
                   session_present=bool(flags.session_present))
        # The session keeps the subscription, but subscribing again is harmless and covers a
        # session the broker dropped (expired, or a broker that lost its persistence file).
        client.subscribe([(TOPIC, SubscribeOptions(qos=1))])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if all(not rc.is_failure for rc in reason_codes):
            self.subscribed.set()
            common.log("subscribed", topic=TOPIC)
        else:
            common.log("subscribe_failed", topic=TOPIC, reasons=[str(rc) for rc in reason_codes])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.generation += 1
        self.connected.clear()
        if not self.stop.is_set():
            common.log("disconnected", broker=self.broker_url, reason=str(reason_code))

    def _on_message(self, client, userdata, msg):
        try:
            reading = parse_reading(msg.topic, msg.payload)
        except BadReading as exc:
            reading = None  # still acknowledged, in order, after the batch it arrived in: never redelivered
            self.stats.add(messages_invalid=1)
            if self.throttle("bad_reading"):
                common.log("bad_reading", topic=msg.topic, why=str(exc))
        self.stats.add(messages_received=1)
        self.inbox.put((self.generation, msg.mid, msg.qos, reading))

    # -- ingest (main thread) ---------------------------------------------------------------------
    def _store_batch(self, readings: list[dict]) -> list[dict] | None:
        """Store until it works (backing off); None if asked to stop first (nothing acknowledged)."""
        delay = 0.2
        while True:
            try:
                return self.ingest_store.add_observations(readings)
            except Exception as exc:  # noqa: BLE001 - a store outage: keep the readings, retry
                self.stats.add(store_errors=1)
                if self.throttle("store_error"):
                    common.log("store_error", store=self.ingest_store.display, error=_one_line(exc))
            if self.stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)

    def ingest(self) -> None:
        """Until stopped: store a batch, then acknowledge it. What is still queued at the stop is
        not acknowledged, so the broker delivers it again to the next run."""
        while not self.stop.is_set():
            try:
                batch = [self.inbox.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            readings = [b[3] for b in batch if b[3] is not None]
            new = self._store_batch(readings)
            if new is None:
                return
            committed = time.time()
            self.window.add(new)
            with self.stats.lock:
                self.stats.c["stored"] += len(new)
                self.stats.c["duplicates"] += len(readings) - len(new)
                self.stats.ingest_latency.extend(committed - r["ts"] for r in new)
                self.stats.stored_times.append((time.monotonic(), len(new)))
            for gen, mid, qos, _ in batch:  # in arrival order, as MQTT wants acks
                if gen == self.generation and qos > 0:
                    self.client.ack(mid, qos)

    # -- decisions (their own thread) -------------------------------------------------------------
    def predict(self, instances: list[dict]) -> list:
        body = json.dumps({"instances": instances}).encode()
        req = urllib.request.Request(self.model_url + "/predict", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.model_timeout) as resp:
            answer = json.loads(resp.read())
        preds = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(preds, list) or len(preds) != len(instances):
            raise ValueError(f"the model answered {str(answer)[:200]!r}, not {len(instances)} predictions")
        return preds

    def decide(self, readings: list[dict], start: float, end: float) -> None:
        rows = windows.aggregate(readings)
        t0 = time.monotonic()
        self.stats.add(model_calls=1)
        try:
            predictions, source = self.predict([windows.model_instance(r) for r in rows]), "model"
        except Exception as exc:  # noqa: BLE001 - no model answer: the fixed-time plan, and say so
            predictions, source = [None] * len(rows), "fallback"
            self.stats.add(model_errors=1)
            if self.throttle("model_error"):
                common.log("model_error", model=self.model_url, error=_one_line(exc))
        model_ms = (time.monotonic() - t0) * 1000
        decisions = []
        for row, pred in zip(rows, predictions):
            pred = None if pred is None else str(pred)
            decision = {
                "intersection": row["intersection"], "window_start": start, "window_end": end,
                "observations": row["observations"], "vehicles_per_min": row["vehicles_per_min"],
                "pedestrians_per_min": row["pedestrians_per_min"], "queue_length": row["queue_length"],
                "prediction": pred, "source": source,
                "green_s": windows.green_seconds(pred, row["pedestrians_per_min"]), "cycle_s": windows.CYCLE_S,
                "first_seq": row["first_seq"], "last_seq": row["last_seq"], "sensor_ts": row["sensor_ts"],
                "decided_at": time.time(),
            }
            info = self.client.publish(f"traffic/{row['intersection']}/decision",
                                       json.dumps(decision, separators=(",", ":")), qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                self.stats.add(publish_errors=1)
            decisions.append(decision)
        with self.stats.lock:
            self.stats.c["decisions"] += len(decisions)
            self.stats.model_ms.append(model_ms)
            self.stats.decision_latency.extend(d["decided_at"] - d["sensor_ts"] for d in decisions)
        try:
            self.decision_store.add_decisions(decisions)
        except Exception as exc:  # noqa: BLE001 - decisions are already out; the record is best effort
            self.stats.add(store_errors=1)
            if self.throttle("store_error_decisions"):
                common.log("store_error", store=self.decision_store.display, error=_one_line(exc))

    def decide_loop(self) -> None:
        # Windows end on multiples of WINDOW_S of the wall clock: processors agree on them.
        end = (math.floor(time.time() / self.window_s) + 1) * self.window_s
        while not self.stop.wait(max(0.0, end - time.time())):
            readings = self.window.close()
            if readings:
                self.decide(readings, end - self.window_s, end)
            self.stats.add(windows=1)
            if self.stats.c["windows"] % self.log_every == 0:
                common.log("stats", **self.snapshot())
            end += self.window_s
            if end < time.time():  # fell behind (a slow model): skip to the next boundary
                end = (math.floor(time.time() / self.window_s) + 1) * self.window_s

    # -- HTTP -------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return self.stats.snapshot(connected=self.connected.is_set(), subscribed=self.subscribed.is_set(),
                                   backlog=self.inbox.qsize())

    def _healthz(self):
        if self.subscribed.is_set():
            return common.json_body({"status": "ok", "connected": self.connected.is_set()})
        return common.json_body({"status": "waiting for the broker", "broker": self.broker_url}, 503)

    # -- run --------------------------------------------------------------------------------------
    def run(self) -> int:
        common.serve_http(self.http_host, self.http_port, {"/healthz": self._healthz,
                                                           "/stats": lambda: common.json_body(self.snapshot())})
        common.log("start", broker=self.broker_url, model=self.model_url, store=self.ingest_store.display,
                   client_id=self.client_id, window_s=self.window_s, http=f"{self.http_host}:{self.http_port}")
        try:
            self.ingest_store.connect()  # a wrong path or URL shows now, not at the first reading
        except history.StoreConfigError as exc:
            raise ConfigError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - down for now: the ingest loop retries
            common.log("store_error", store=self.ingest_store.display, error=_one_line(exc))
        self.client.loop_start()
        decider = threading.Thread(target=self.decide_loop, name="decide", daemon=True)
        decider.start()
        self.ingest()
        decider.join(timeout=self.window_s + self.model_timeout + 1)
        self.client.disconnect()
        self.client.loop_stop()
        common.log("stop", **self.snapshot())
        return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def main() -> int:
    proc = Processor()
    common.stop_on_signals(proc.stop)
    return proc.run()


if __name__ == "__main__":
    common.run(main)
