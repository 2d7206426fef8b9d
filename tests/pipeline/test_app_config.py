"""Bad configuration: every app exits non-zero with one line on stderr naming what is wrong; and
a password in HISTORY_STORE never reaches a log."""

from __future__ import annotations

import pytest

from tests.harness import free_port
from tests.pipeline.conftest import http_get, wait_until

MQTT = "mqtt://127.0.0.1:1883"
HTTP = "http://127.0.0.1:3000"


@pytest.mark.parametrize("script, env, expected", [
    ("broker", {}, "STRATUM_PORT_MQTT is not set"),
    ("broker", {"STRATUM_PORT_MQTT": "70000"}, "STRATUM_PORT_MQTT=70000 is not a TCP port"),
    ("broker", {"STRATUM_PORT_MQTT": "1883", "MOSQUITTO": "/nonexistent/mosquitto"}, "MOSQUITTO='/nonexistent/mosquitto'"),
    ("sensor", {}, "STRATUM_BROKER_URL is not set"),
    ("sensor", {"STRATUM_BROKER_URL": "http://127.0.0.1:1883"}, "is not a mqtt://host:port URL"),
    ("sensor", {"STRATUM_BROKER_URL": MQTT, "RATE": "fast"}, "RATE='fast' is not a number"),
    ("sensor", {"STRATUM_BROKER_URL": MQTT, "RATE": "0"}, "RATE='0' must be at least"),
    ("sensor", {"STRATUM_BROKER_URL": MQTT, "INTERSECTIONS": "main-street"}, "unknown intersection(s) main-street"),
    ("sensor", {"BROKER": "mqtt-fog"}, "STRATUM_MQTT_FOG_URL is not set"),
    ("processor", {"STRATUM_BROKER_URL": MQTT, "STRATUM_CONGESTION_URL": HTTP, "STRATUM_PORT_HTTP": "8080"},
     "HISTORY_STORE is not set"),
    ("processor", {"HISTORY_STORE": "mysql://u:s3cret@db/h", "STRATUM_BROKER_URL": MQTT,
                   "STRATUM_CONGESTION_URL": HTTP, "STRATUM_PORT_HTTP": "8080"}, "use postgresql://"),
    ("processor", {"HISTORY_STORE": "sqlite:///tmp/x.db", "STRATUM_BROKER_URL": MQTT, "STRATUM_PORT_HTTP": "8080"},
     "STRATUM_CONGESTION_URL is not set"),
    ("processor", {"HISTORY_STORE": "sqlite:///tmp/x.db", "STRATUM_BROKER_URL": MQTT, "STRATUM_CONGESTION_URL": HTTP},
     "STRATUM_PORT_HTTP is not set"),
    ("processor", {"HISTORY_STORE": "sqlite:///tmp/x.db", "STRATUM_BROKER_URL": MQTT, "STRATUM_CONGESTION_URL": HTTP,
                   "STRATUM_PORT_HTTP": "8080", "WINDOW_S": "-1"}, "WINDOW_S='-1' must be at least"),
    ("processor", {"HISTORY_STORE": "sqlite:///no/such/dir/x.db", "STRATUM_BROKER_URL": MQTT,
                   "STRATUM_CONGESTION_URL": HTTP, "STRATUM_PORT_HTTP": "{free}"}, "directory /no/such/dir does not exist"),
    ("dashboard", {"STRATUM_PORT_HTTP": "8080"}, "HISTORY_STORE is not set"),
    ("dashboard", {"HISTORY_STORE": "sqlite://relative.db", "STRATUM_PORT_HTTP": "8080"}, "give an absolute path"),
    ("aggregate", {"HISTORY_STORE": "sqlite:///tmp/x.db"}, "STRATUM_OUTPUT is not set"),
    ("aggregate", {"STRATUM_OUTPUT": "/tmp/out.csv"}, "HISTORY_STORE is not set"),
    ("aggregate", {"HISTORY_STORE": "postgresql://u:s3cret@h:port/db", "STRATUM_OUTPUT": "/tmp/out.csv"},
     "is not a valid PostgreSQL URL"),
])
def test_bad_configuration_is_one_clear_line(apps, script, env, expected):
    env = {k: v.replace("{free}", str(free_port())) for k, v in env.items()}
    done = apps.make(script, script, **env).run(timeout=30)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"{script}: ") and expected in lines[0], lines
    assert "s3cret" not in done.stderr + done.stdout


def test_unreachable_postgres_fails_the_batch_run_without_the_password(apps, tmp_path):
    done = apps.make("aggregate", "aggregate", HISTORY_STORE="postgresql://u:s3cret@127.0.0.1:1/h",
                     STRATUM_OUTPUT=tmp_path / "out.csv").run()
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "u:***@127.0.0.1:1" in done.stderr and "s3cret" not in done.stderr + done.stdout
    assert not (tmp_path / "out.csv").exists()


def test_processor_waits_for_its_store_and_logs_no_password(apps):
    """A store that is down is not bad configuration: the processor stays up, says so (redacted)
    in its log, and acknowledges nothing meanwhile."""
    port = free_port()
    proc = apps.start("processor", "processor", HISTORY_STORE="postgresql://u:s3cret@127.0.0.1:1/h",
                      STRATUM_BROKER_URL="mqtt://127.0.0.1:1", STRATUM_CONGESTION_URL=HTTP, STRATUM_PORT_HTTP=port)
    wait_until(lambda: proc.log_events("store_error"), 15, "a store_error line", [proc])
    assert proc.alive()
    assert http_get(port, "/healthz")[0] == 503  # not subscribed: the broker is not there either
    assert proc.stop() == 0
    log = proc.log_path.read_text()
    assert "u:***@127.0.0.1:1" in log and "s3cret" not in log
