"""What a cloud pool should do next: pure decisions over its VM records, tested without a cloud.

    acts = plan(PoolSize(min_nodes=1, max_nodes=5, idle_grace_s=300), vms, wanted=3, busy={"node-7"}, now=now)
    acts.create        # how many VMs to request
    acts.terminate     # tokens of VMs to give back (idle beyond min_nodes, or failed)

A VM counts towards the pool from the moment its record is written ("requested"), so a request in
flight is never doubled. Only VMs that have not joined yet, then VMs that joined and ran no replica
for `idle_grace_s`, are given back, newest first (the oldest have proven themselves), and never
below `min_nodes` or below what the services want. A VM that does not join within `join_timeout_s` is failed and replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LIVE = ("requested", "booting", "joined")


@dataclass(frozen=True)
class PoolSize:
    min_nodes: int
    max_nodes: int
    idle_grace_s: float = 300.0
    join_timeout_s: float = 900.0


@dataclass
class Vm:
    token: str
    state: str  # requested | booting | joined | terminating | terminated | failed
    requested_at: float
    node_id: str = ""
    idle_since: float | None = None  # when its node last ran no replica; None: busy, or not joined


@dataclass
class Actions:
    create: int = 0
    terminate: list = field(default_factory=list)
    fail: list = field(default_factory=list)  # tokens that never joined in time (then also terminated)
    reasons: list = field(default_factory=list)


def desired(size: PoolSize, wanted: int) -> int:
    """VMs the pool should run: what the services want, within [min_nodes, max_nodes]."""
    return max(size.min_nodes, min(wanted, size.max_nodes))


def plan(size: PoolSize, vms: list[Vm], wanted: int, now: float) -> Actions:
    out = Actions()
    live = [v for v in vms if v.state in LIVE]
    for v in live:
        if v.state in ("requested", "booting") and now - v.requested_at > size.join_timeout_s:
            out.fail.append(v.token)
            out.terminate.append(v.token)
            out.reasons.append(f"{v.token[:8]}: not joined after {now - v.requested_at:.0f}s")
    live = [v for v in live if v.token not in out.fail]
    target = desired(size, wanted)
    if len(live) < target:
        out.create = target - len(live)
        out.reasons.append(f"{len(live)} VMs, want {target}")
    elif len(live) > target:
        # Not joined yet first (they serve nothing), then joined ones idle for the grace period;
        # newest first within each.
        newest = lambda v: (-v.requested_at, v.token)  # noqa: E731
        pending = sorted((v for v in live if v.state != "joined"), key=newest)
        idle = sorted((v for v in live if v.state == "joined" and v.idle_since is not None
                       and now - v.idle_since >= size.idle_grace_s), key=newest)
        extra = (pending + idle)[:len(live) - target]
        out.terminate += [v.token for v in extra]
        if extra:
            out.reasons.append(f"{len(live)} VMs, want {target}: giving back {len(extra)} "
                               f"(not joined, or idle for {size.idle_grace_s:g}s or more)")
    return out
