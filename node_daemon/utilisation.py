"""Point-in-time utilisation for heartbeats."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

import psutil

from node_daemon.capabilities import gpu
from stratum.logs import event
from stratum.v1 import types_pb2

log = logging.getLogger(__name__)
MIB = 1024 * 1024


def non_loopback_counters() -> tuple[int, int]:
    """(rx, tx) bytes since boot over every interface but loopback ones (read from this netns)."""
    stats = psutil.net_if_stats()
    rx = tx = 0
    for nic, c in psutil.net_io_counters(pernic=True).items():
        st = stats.get(nic)
        if nic == "lo" or (st is not None and "loopback" in getattr(st, "flags", "").split(",")):
            continue
        rx += c.bytes_recv
        tx += c.bytes_sent
    return rx, tx


class Sampler:
    """Call `sample()` once per heartbeat; cpu_percent covers the time since the previous call."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        psutil.cpu_percent(interval=None)  # the first reading only starts the interval
        self._pynvml = gpu.import_pynvml()
        self._gpu_source = "none"
        if self._pynvml is not None:
            try:
                self._pynvml.nvmlInit()  # kept open for the daemon's life: one init, cheap queries
                self._gpu_source = "nvml"
            except self._pynvml.NVMLError:
                pass
        if self._gpu_source == "none" and shutil.which("nvidia-smi"):
            self._gpu_source = "smi"

    def _gpu_percent(self) -> list[float]:
        if self._gpu_source == "nvml":
            p = self._pynvml
            return [float(p.nvmlDeviceGetUtilizationRates(p.nvmlDeviceGetHandleByIndex(i)).gpu) for i in range(p.nvmlDeviceGetCount())]
        if self._gpu_source == "smi":
            done = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True, timeout=gpu.SMI_TIMEOUT_S, check=True)
            return [float(x) for x in done.stdout.split()]
        return []

    def sample(self) -> types_pb2.Utilisation:
        vm = psutil.virtual_memory()
        rx, tx = non_loopback_counters()
        u = types_pb2.Utilisation(
            cpu_percent=psutil.cpu_percent(interval=None),
            # total - available: what the kernel could not hand to a new replica (caches excluded).
            memory_used_mb=(vm.total - vm.available) // MIB,
            memory_percent=vm.percent,
            disk_free_mb=psutil.disk_usage(self.data_dir).free // MIB,
            load1=os.getloadavg()[0],
            net_rx_bytes=rx,
            net_tx_bytes=tx,
        )
        try:
            u.gpu_percent.extend(self._gpu_percent())
        except Exception as e:  # noqa: BLE001 - a flaky GPU query must not cost the heartbeat
            event(log, "gpu utilisation query failed", level=logging.WARNING, error=f"{type(e).__name__}: {e}")
        return u
