"""Disk: size and free space of the file system holding the data dir (where bentos are cached)."""

import psutil

from stratum.v1 import types_pb2

MIB = 1024 * 1024


class DiskProbe:
    name = "disk"

    def probe(self, caps: types_pb2.Capabilities, ctx) -> None:
        usage = psutil.disk_usage(ctx.data_dir)
        caps.disk_mb = usage.total // MIB
        # psutil's `free` is what an unprivileged writer may still use (f_bavail), the honest figure.
        caps.disk_free_mb = usage.free // MIB
