"""Capability probes, one small module per kind of hardware fact (like Nomad's fingerprinters).

Each probe fills its own fields of a `types_pb2.Capabilities`. `collect` runs
them all; a probe that fails logs a warning and leaves its fields at their
defaults, because a missing GPU tool or an odd /proc must never stop a node
from joining.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from stratum.logs import event
from stratum.v1 import types_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeContext:
    """What probes may need to know about the daemon (its data dir lives on the disk we report)."""

    data_dir: str


class Probe(Protocol):
    name: str

    def probe(self, caps: types_pb2.Capabilities, ctx: ProbeContext) -> None: ...


def default_probes() -> list[Probe]:
    # Imported here so a broken optional dependency of one probe shows up as that probe's warning.
    from node_daemon.capabilities import binaries, cpu, disk, gpu, memory, network, os_info

    return [cpu.CpuProbe(), memory.MemoryProbe(), disk.DiskProbe(), gpu.GpuProbe(), network.NetworkProbe(), os_info.OsProbe(),
            binaries.BinariesProbe()]


def collect(data_dir: str, probes: list[Probe] | None = None) -> types_pb2.Capabilities:
    caps = types_pb2.Capabilities()
    ctx = ProbeContext(data_dir=data_dir)
    for p in default_probes() if probes is None else probes:
        try:
            p.probe(caps, ctx)
        except Exception as e:  # noqa: BLE001 - any probe failure is survivable by design
            event(log, "capability probe failed; skipping it", level=logging.WARNING, probe=p.name, error=f"{type(e).__name__}: {e}")
    return caps
