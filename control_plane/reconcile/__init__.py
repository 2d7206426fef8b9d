"""One reconciler for services and apps (Nomad's evaluate -> plan -> apply).

    snapshot.py    Workload and Snapshot: plain values placement works on
    plan.py        plan(snapshot) -> Plan: placements, starts, stops, moves (pure)
    sessions.py    the applier's wire: node sessions and the assignments pushed on them
    reconciler.py  Reconciler: evaluate from the store, plan, write placements, tell pools, push
"""

from control_plane.reconcile.plan import Plan, plan
from control_plane.reconcile.reconciler import Kind, Reconciler
from control_plane.reconcile.snapshot import Snapshot, Workload, key_of, node_view

__all__ = ["Kind", "Plan", "Reconciler", "Snapshot", "Workload", "key_of", "node_view", "plan"]
