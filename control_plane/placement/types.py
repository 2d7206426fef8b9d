"""Plain values the analysis and the placement work on: what a node offers, what a replica needs.

No I/O: the control plane builds these from nodes, cloud pools and service specs
(control_plane/services.py), and tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gpu:
    model: str = ""
    memory_mb: int = 0


@dataclass(frozen=True)
class NodeView:
    """A node (or one VM of a cloud pool's size) as placement sees it: total capacity.
    What other services already hold is passed separately (`Used`)."""
    id: str
    name: str
    tier: str
    labels: dict = field(default_factory=dict)
    arch: str = ""
    cpu: float = 0.0
    memory_mb: int = 0
    ready: bool = True
    gpus: tuple = ()  # of Gpu
    zone: str = ""  # the node's `zone` label, if any
    datasets: tuple = ()  # names of datasets held near this node (label `data`, comma-separated)
    pool: str = ""  # cloud pool name for a pool's template node; "" for an enrolled node
    price_per_hour: float = 0.0  # cost of a cloud VM; edge and fog capacity is free
    binaries: frozenset = frozenset()  # programs the node reports it can run (requirements.binaries)
    drained: bool = False  # DrainNode: not ready for placement, though it is up


@dataclass(frozen=True)
class Demand:
    """What one replica of a service needs."""
    cpu: float = 0.0
    memory_mb: int = 0
    tiers: tuple = ()
    labels: tuple = ()  # (key, value) pairs
    arch: str = ""
    gpus: int = 0
    gpu_model: str = ""  # substring of the GPU model name, e.g. "A100"; "" for any
    gpu_memory_mb: int = 0  # per GPU
    zone: str = ""
    data: str = ""  # dataset name whose locality is required ("" for none)
    binaries: tuple = ()  # programs the node must have, e.g. ("mosquitto",)
    ports: tuple = ()  # fixed ports each instance listens on: two on one node would collide

    @property
    def gpus_held(self) -> int:
        """GPUs a replica takes: asking for a GPU model or GPU memory implies at least one."""
        return self.gpus or (1 if self.gpu_model or self.gpu_memory_mb else 0)


@dataclass
class Used:
    cpu: float = 0.0
    memory_mb: int = 0
    gpus: int = 0
    ports: dict = field(default_factory=dict)  # fixed port -> the workload listening on it

    def add(self, d: Demand, k: int = 1, holder: str = "") -> None:
        self.cpu += d.cpu * k
        self.memory_mb += d.memory_mb * k
        self.gpus += d.gpus_held * k
        for port in d.ports:
            if k > 0:
                self.ports[port] = holder
            elif self.ports.get(port) == holder:
                del self.ports[port]
