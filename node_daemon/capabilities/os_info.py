"""Operating system: family, distribution, kernel, host name, daemon version."""

from __future__ import annotations

import platform
import shlex
import socket

import stratum
from stratum.v1 import types_pb2

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")  # the second is the spec's fallback


def read_pretty_name(paths=OS_RELEASE_PATHS) -> str:
    for path in paths:
        try:
            with open(path) as f:
                for line in f:
                    key, sep, value = line.strip().partition("=")
                    if sep and key == "PRETTY_NAME":
                        # os-release values use shell quoting.
                        return " ".join(shlex.split(value))
        except (OSError, ValueError):
            continue
    return ""


class OsProbe:
    name = "os"

    def probe(self, caps: types_pb2.Capabilities, ctx) -> None:
        caps.os = platform.system().lower()
        caps.os_release = read_pretty_name()
        caps.kernel = platform.release()
        caps.hostname = socket.gethostname()
        caps.daemon_version = stratum.__version__
