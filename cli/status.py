"""`stratum status`: the control plane and its nodes, as tables."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from stratum.client import Client, ClientError
from stratum.v1 import control_plane_pb2 as cp


def nodes_table(nodes) -> Table:
    table = Table(title="nodes")
    for col in ("name", "id", "tier", "state", "cpu", "memory", "arch", "gpus", "addresses", "labels"):
        table.add_column(col)
    for n in nodes:
        c = n.capabilities
        table.add_row(n.name, n.id, n.tier, n.state, str(c.cpu_cores), f"{c.memory_mb} MiB", c.arch, str(len(c.gpus)),
                      ", ".join(n.addresses), ", ".join(f"{k}={v}" for k, v in sorted(n.labels.items())))
    return table


def run(args) -> int:
    console = Console()
    try:
        client = Client(args.endpoint, args.token, args.ca_cert, args.data_dir)
        status = client.call("GetStatus", cp.GetStatusRequest())
        nodes = client.call("ListNodes", cp.ListNodesRequest()).nodes
    except ClientError as e:
        Console(stderr=True).print(f"[red]error:[/red] {e}", highlight=False)
        return 1
    counts = ", ".join(f"{v} {k}" for k, v in sorted(status.nodes_by_state.items())) or "no nodes"
    lead = ("this control plane leads" if status.leading else
            f"the leader is {status.leader}" if status.leader else "no leader now")
    console.print(f"Stratum {status.version} at {client.endpoint}: {status.store} store, {counts}; "
                  f"heartbeat {status.heartbeat_interval}, node timeout {status.node_timeout}; {lead}", highlight=False)
    console.print(nodes_table(nodes))
    return 0
