"""Memory: total RAM in MiB."""

import psutil

from stratum.v1 import types_pb2

MIB = 1024 * 1024


class MemoryProbe:
    name = "memory"

    def probe(self, caps: types_pb2.Capabilities, ctx) -> None:
        caps.memory_mb = psutil.virtual_memory().total // MIB
