"""The fog MQTT broker: writes mosquitto.conf in the working directory and execs Eclipse Mosquitto.

Env: STRATUM_PORT_MQTT (required), STRATUM_HOST (default 127.0.0.1), MAX_QUEUED_MESSAGES (default
100000), AUTOSAVE_S (default 10), MOSQUITTO (path of the binary; default: PATH, then /usr/sbin).

exec, not a child process: SIGTERM from the node reaches mosquitto itself, which then saves its
persistence file (the subscriptions and queued QoS 1 messages of persistent sessions) and exits.
"""

from __future__ import annotations

import os
import pwd
import shutil

import common
from common import ConfigError


def find_mosquitto() -> str:
    explicit = os.environ.get("MOSQUITTO", "").strip()
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ConfigError(f"MOSQUITTO={explicit!r} is not an executable file")
        return explicit
    # /usr/sbin is often not on an unprivileged PATH, and Stratum passes the node's PATH only.
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if not found:
        raise ConfigError("mosquitto is not installed (Debian: apt-get install mosquitto; or set MOSQUITTO=/path)")
    return found


def config(host: str, port: int, data_dir: str, max_queued: int, autosave_s: int) -> str:
    user = pwd.getpwuid(os.getuid()).pw_name
    return "\n".join([
        "# Written by broker.py at every start; edit broker.py, not this file.",
        # Started as root, mosquitto would switch to the `mosquitto` user, which cannot write ./data:
        # run as whoever the node started us as.
        f"user {user}",
        f"listener {port} {host}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data_dir.rstrip('/')}/",
        # Saved every AUTOSAVE_S and at exit: a SIGKILLed broker loses at most that much of its queues.
        f"autosave_interval {autosave_s}",
        # Per persistent session: QoS 1 readings kept while the processor is away (the default 1000
        # is under ten minutes of a city's sensors).
        f"max_queued_messages {max_queued}",
        # MQTT 3 clients; v5 clients (the processor) set their own limit with Receive Maximum.
        "max_inflight_messages 100",
        "set_tcp_nodelay true",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "",
    ])


def main() -> int:
    port = common.env_port("MQTT")
    host = common.bind_host()
    max_queued = int(common.env_number("MAX_QUEUED_MESSAGES", 100_000, minimum=1, integer=True))
    autosave = int(common.env_number("AUTOSAVE_S", 10, minimum=1, integer=True))
    binary = find_mosquitto()
    data_dir = os.path.abspath("data")
    os.makedirs(data_dir, exist_ok=True)
    conf = os.path.abspath("mosquitto.conf")
    with open(conf, "w") as f:
        f.write(config(host, port, data_dir, max_queued, autosave))
    common.log("exec", binary=binary, listener=f"{host}:{port}", config=conf, max_queued_messages=max_queued)
    os.execv(binary, [binary, "-c", conf])
    return 1  # not reached


if __name__ == "__main__":
    common.run(main)
