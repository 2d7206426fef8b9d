"""An edge sensor: publishes the counts of one or more intersections to the broker.

Env:
  STRATUM_BROKER_URL      mqtt://host:port (BROKER names another connects_to target)
  INTERSECTIONS           "i-01,i-02"; unset: INTERSECTIONS_PER_INSTANCE (default 1) of them,
                          picked by STRATUM_INSTANCE (instance 0: i-01, instance 1: i-02, ...)
  RATE                    messages per second per intersection (default 2)
  SEED                    the simulated city (default 1): same seed, same readings
  SIM_START_WEEKDAY/HOUR  simulated time of seq 1 (default Monday 07:00)
  SIM_MINUTES_PER_MESSAGE simulated minutes between readings (default 1)
  MAX_MESSAGES            stop after this many per intersection (default 0: never)

Topic traffic/<intersection>/counts, QoS 1, JSON (see README.md). A reading's content is a pure
function of SEED, the intersection and its seq (traffic.reading); only "ts", the send time, is not.

The last seq used per intersection is written to sensor-state.json in the working directory
*before* the reading is handed to the MQTT client, so a restarted sensor continues after it and
never sends one seq with two different send times.
"""

from __future__ import annotations

import json
import os
import threading
import time

import paho.mqtt.client as mqtt

import common
import traffic
from common import ConfigError

STATE_FILE = "sensor-state.json"


class SeqState:
    """Last seq used per intersection, in a JSON file replaced atomically (and fsynced) on update."""

    def __init__(self, path: str):
        self.path = path
        self.last: dict[str, int] = {}
        if os.path.exists(path):
            try:
                with open(path) as f:
                    data = json.load(f)
                self.last = {str(k): int(v) for k, v in data.items()}
            except (ValueError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{path} is corrupt ({exc}); remove it to start again from seq 1") from None

    def reserve(self, names: list[str]) -> dict[str, int]:
        """The next seq of each intersection, recorded on disk before it is returned."""
        nxt = {n: self.last.get(n, 0) + 1 for n in names}
        self.last.update(nxt)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.last, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return nxt


def intersections_from_env() -> list[str]:
    raw = os.environ.get("INTERSECTIONS", "").strip()
    if raw:
        names = [n.strip() for n in raw.split(",") if n.strip()]
        unknown = [n for n in names if n not in traffic.INTERSECTIONS]
        if unknown:
            raise ConfigError(f"INTERSECTIONS: unknown intersection(s) {', '.join(unknown)} "
                              f"(known: {', '.join(traffic.NAMES)})")
        if len(set(names)) != len(names):
            raise ConfigError(f"INTERSECTIONS={raw!r} names an intersection twice")
        return names
    per = int(common.env_number("INTERSECTIONS_PER_INSTANCE", 1, minimum=1, integer=True))
    instance = int(common.env_number("STRATUM_INSTANCE", 0, minimum=0, integer=True))
    k = len(traffic.NAMES)
    return [traffic.NAMES[(instance * per + j) % k] for j in range(min(per, k))]


class Sensor:
    def __init__(self):
        self.names = intersections_from_env()
        self.rate = common.env_number("RATE", 2.0, minimum=0.001)
        self.seed = int(common.env_number("SEED", 1, minimum=0, integer=True))
        weekday = int(common.env_number("SIM_START_WEEKDAY", 0, minimum=0, integer=True))
        hour = int(common.env_number("SIM_START_HOUR", 7, minimum=0, integer=True))
        if weekday > 6 or hour > 23:
            raise ConfigError("SIM_START_WEEKDAY must be 0-6 (Monday 0) and SIM_START_HOUR 0-23")
        self.start_minute = weekday * 24 * 60 + hour * 60
        self.step = common.env_number("SIM_MINUTES_PER_MESSAGE", 1.0, minimum=0)
        self.max_messages = int(common.env_number("MAX_MESSAGES", 0, minimum=0, integer=True))
        target = common.env_str("BROKER", "broker")
        self.url, host, port = common.target_url(target, "mqtt")
        self.state = SeqState(os.path.abspath(STATE_FILE))
        self.stop = threading.Event()
        self.connected = threading.Event()
        # Counts only, never held across a paho call: paho runs on_publish holding its own message
        # lock, which publish() needs too (holding ours around publish() deadlocks).
        self.lock = threading.Lock()
        self.published = self.acked = 0  # handed to the client / acknowledged by the broker

        # A clean session: a sensor has no subscriptions, and what it has not yet delivered the
        # client keeps (and resends after a reconnect) on its own.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=common.mqtt_client_id("sensor"),
                                  protocol=mqtt.MQTTv311, clean_session=True)
        self.client.max_queued_messages_set(100_000)  # during an outage; beyond that, readings are dropped
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, port, keepalive=15)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            common.log("connect_failed", broker=self.url, reason=str(reason_code))
            return
        self.connected.set()
        common.log("connected", broker=self.url, intersections=self.names)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not self.stop.is_set():
            common.log("disconnected", broker=self.url, reason=str(reason_code))

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self.lock:
            self.acked += 1

    def publish_one_round(self) -> None:
        seqs = self.state.reserve(self.names)
        for name in self.names:
            msg = traffic.reading(self.seed, name, seqs[name], self.start_minute, self.step)
            msg["ts"] = time.time()
            info = self.client.publish(f"traffic/{name}/counts", json.dumps(msg, separators=(",", ":")), qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                common.log("dropped", intersection=name, seq=seqs[name], why="client queue full")
                continue
            with self.lock:
                self.published += 1

    def run(self) -> int:
        self.client.loop_start()
        common.log("start", broker=self.url, intersections=self.names, rate=self.rate, seed=self.seed,
                   continues_after=dict(self.state.last))
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        next_log = next_at + 10
        rounds = 0
        while not self.stop.is_set():
            if self.max_messages and rounds >= self.max_messages:
                break
            self.publish_one_round()
            rounds += 1
            next_at += interval
            now = time.monotonic()
            if next_at < now - 1.0:  # paused (e.g. SIGSTOP): go on from now rather than burst
                next_at = now
            if now >= next_log:
                self._log_stats()
                next_log = now + 10
            self.stop.wait(max(0.0, next_at - now))
        return self.shutdown()

    def _log_stats(self) -> None:
        with self.lock:
            common.log("stats", published=self.published, acked=self.acked, pending=self.published - self.acked,
                       connected=self.connected.is_set(), last_seq=dict(self.state.last))

    def shutdown(self, drain_s: float = 10.0) -> int:
        """Wait (a bounded time) for the broker to acknowledge what was sent, then disconnect."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            with self.lock:
                if self.acked >= self.published:
                    break
            time.sleep(0.05)
        self._log_stats()
        self.client.disconnect()
        self.client.loop_stop()
        return 0


def main() -> int:
    sensor = Sensor()
    common.stop_on_signals(sensor.stop)
    return sensor.run()


if __name__ == "__main__":
    common.run(main)
