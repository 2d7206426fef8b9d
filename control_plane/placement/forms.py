"""The request-placement plan a node's router gets for one service: which forms it has there, with
thresholds from the profile measured when the model version was packaged, and its peers.

    plan = routing_plan("n1", {"n1": 1, "n2": 2}, version, routing, slo_p95_ms=50,
                        endpoints={"n2": "http://10.0.0.2:41000"}, names={...}, tiers={...})

Pure: the control plane (control_plane/services.py) passes what it read; the node's router runs
the rule (stratum/request_placement.py) over these profiles.

How each form's profile follows from the packaging measurements (control_plane/packaging/profile.py):

  edge       the replicas on this node. p95 as measured; capacity = measured req/s per replica
             x replicas here. Its max input is the largest body that still fits the latency
             objective next to the small requests it serves: (slo - p95) / ms_per_kib. A larger
             input would hold a worker longer than the objective allows, and the small requests
             queued behind it would miss it too. No objective or no measurement: no limit.
  always_on  the routers of the other nodes running the service (warm replicas elsewhere, on fog
             or cloud). p95 + NETWORK_HOP_MS; capacity = req/s per replica x their replicas; no
             input limit: a request sent there does not block this node's latency-critical path.
  on_demand  replicas this node starts on a request and stops after idle_stop_s (only when the
             service allows some). cold start = the measured load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NETWORK_HOP_MS = 2.0  # added to a peer's p95: one more router and a LAN round trip
DEFAULT_IDLE_STOP_S = 300.0
DEFAULT_OOD_SHARE_MAX = 0.25


@dataclass(frozen=True)
class Form:
    form: str
    p95_ms: float
    cold_start_s: float = 0.0
    max_input_bytes: int = 0
    capacity_rps: float = 0.0
    cost_per_hour: float = 0.0


@dataclass(frozen=True)
class PeerRouter:
    node_name: str
    endpoint: str
    tier: str


@dataclass(frozen=True)
class Plan:
    mode: str = "local"
    slo_p95_ms: float = 0.0
    on_demand_replicas: int = 0
    idle_stop_s: float = DEFAULT_IDLE_STOP_S
    ood_share_max: float = DEFAULT_OOD_SHARE_MAX
    forms: tuple = ()
    peers: tuple = ()
    extra: dict = field(default_factory=dict, compare=False)


def edge_max_input_bytes(p95_ms: float, ms_per_kib: float, slo_p95_ms: float) -> int:
    """The largest body an edge replica takes within the objective; 0 means no limit."""
    if slo_p95_ms <= 0 or ms_per_kib <= 0:
        return 0
    return max(int((slo_p95_ms - p95_ms) / ms_per_kib * 1024), 1)  # >= 1: an objective below p95 still lets tiny bodies in


def routing_plan(node_id: str, placement: dict[str, int], version: dict, routing: dict, slo_p95_ms: float, *,
                 endpoints: dict[str, str], names: dict[str, str], tiers: dict[str, str],
                 ready: set[str] | None = None) -> Plan:
    """`placement`: node id -> replicas; `version`: the serving version's document (p95_ms,
    capacity_rps, ms_per_kib, load_time_s); `routing`: the spec's routing (mode, on_demand_replicas,
    idle_stop_s, ood_share_max); `endpoints`: node id -> router URL reported by that node;
    `ready`: node ids that are up (peers on other nodes are left out otherwise)."""
    mode = routing.get("mode") or "local"
    od = int(routing.get("on_demand_replicas") or 0)
    plan = dict(mode=mode, slo_p95_ms=slo_p95_ms, on_demand_replicas=od,
                idle_stop_s=float(routing.get("idle_stop_s") or DEFAULT_IDLE_STOP_S),
                ood_share_max=float(routing.get("ood_share_max") or DEFAULT_OOD_SHARE_MAX))
    if mode != "straightline":
        return Plan(**plan)
    p95 = float(version.get("p95_ms") or 0.0)
    per_replica = float(version.get("capacity_rps") or 0.0)
    forms = []
    here = placement.get(node_id, 0)
    if here:
        forms.append(Form("edge", p95, max_input_bytes=edge_max_input_bytes(p95, float(version.get("ms_per_kib") or 0.0),
                                                                             slo_p95_ms),
                          capacity_rps=per_replica * here))
    peers = tuple(PeerRouter(names.get(n, n), endpoints[n], tiers.get(n, ""))
                  for n, k in sorted(placement.items())
                  if n != node_id and k and endpoints.get(n) and (ready is None or n in ready))
    if peers:
        others = sum(placement[n] for n in placement if n != node_id and endpoints.get(n) and (ready is None or n in ready))
        forms.append(Form("always_on", p95 + NETWORK_HOP_MS, capacity_rps=per_replica * others))
    if od:
        forms.append(Form("on_demand", p95, cold_start_s=float(version.get("load_time_s") or 0.0),
                          capacity_rps=per_replica * od))
    return Plan(**plan, forms=tuple(forms), peers=peers)
