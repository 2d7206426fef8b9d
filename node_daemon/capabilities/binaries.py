"""Programs the node can run: what `requirements.binaries` of an app is checked against.

A fixed catalogue of programs pipeline components commonly need (brokers, runtimes, databases),
plus any named with `stratum node --binary NAME` (or STRATUM_NODE_BINARIES=a,b), looked up on the
daemon's PATH and the sbin directories (Debian installs mosquitto in /usr/sbin). Only what is found
is reported: the list stays short, so capabilities stay small on a fleet of thousands.
"""

from __future__ import annotations

import os
import shutil
import sys

from stratum.v1 import types_pb2

CATALOGUE = (
    "bash", "sh", "python3", "java", "node", "deno", "go",
    "mosquitto", "mosquitto_pub", "mosquitto_sub", "nats-server", "redis-server", "kafka-server-start.sh",
    "postgres", "psql", "sqlite3", "duckdb", "influxd", "nginx", "haproxy",
    "ffmpeg", "gst-launch-1.0", "bentoml", "dask-worker", "dask-scheduler", "docker", "podman",
    "chromium", "prometheus", "promtool", "curl",
)
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
EXTRA: list[str] = []  # --binary flags of this daemon (node_daemon/main.py)


def search_path() -> str:
    """The daemon's PATH with its own Python's directory first (apps run `python3` from the
    environment the daemon runs in) and the sbin directories last."""
    parts = [os.path.dirname(sys.executable)] + os.environ.get("PATH", "").split(os.pathsep) + list(SBIN)
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))


def wanted() -> list[str]:
    extra = [b.strip() for b in os.environ.get("STRATUM_NODE_BINARIES", "").split(",") if b.strip()]
    return list(dict.fromkeys([*CATALOGUE, *EXTRA, *extra]))


class BinariesProbe:
    name = "binaries"

    def probe(self, caps: types_pb2.Capabilities, ctx) -> None:
        path = search_path()
        for name in wanted():
            found = shutil.which(name, path=path)
            if found:
                caps.binaries.append(types_pb2.Binary(name=name, path=found))
