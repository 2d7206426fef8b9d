"""A new leader wires apps as the last one did. The nodes reconnect to it one by one; had it only
their fresh reports, an app whose service target has endpoints on several nodes would be wired to
the first node back, not the nearest: a changed environment, which restarts the app. It starts
from the reports the last leader stored instead (the real store; the clock does not matter here)."""

from __future__ import annotations

import time


from control_plane.apps.resource import Apps, spec_json as app_spec_json
from control_plane.datasets import Datasets
from control_plane.join_tokens import JoinTokens
from control_plane.models import Models
from control_plane.nodes import NodeRegistry
from control_plane.packaging.store import ArtifactStore
from control_plane.reconcile import Reconciler
from control_plane.services import Services, spec_json
from control_plane.store import Store
from stratum import pki
from stratum.v1 import apps_pb2 as a, models_pb2 as m, node_agent_pb2 as na
from tests.stored_nodes import ready_edge_nodes

ENDPOINTS = {"node-1": "http://127.0.0.1:41001", "node-2": "http://127.0.0.1:41002"}


def control_plane(tmp_path, store: Store) -> tuple[Reconciler, Apps]:
    """One control plane's objects on the shared store (two of them: the old leader and the new)."""
    key, cert = pki.make_ca()
    nodes = NodeRegistry(store, JoinTokens(store, pki.fingerprint(cert)), key, cert, 1e9)
    artifacts = ArtifactStore(str(tmp_path))
    datasets = Datasets(store, artifacts)
    reconciler = Reconciler(store, nodes)
    services = Services(store, Models(store, datasets, str(tmp_path)), nodes, reconciler, artifacts)
    return reconciler, Apps(store, nodes, reconciler, services, datasets)


def report(node_id: str) -> na.ServiceReport:
    return na.ServiceReport(services=[na.ServiceStatus(service="congestion", version="v1", ready_replicas=1,
                                                       endpoint=ENDPOINTS[node_id], state="ready")])


def test_a_new_leader_wires_an_app_to_the_endpoint_the_last_leader_did(tmp_path):
    store = Store(None, str(tmp_path))
    ready_edge_nodes(store)
    svc = m.ServiceSpec(name="congestion", model="none", replicas=2, requirements=m.Requirements(cpu=0.25))
    store.put_doc("services", "congestion", {"name": "congestion", "spec": spec_json(svc), "deleting": False,
                                             "placement": {"node-1": 1, "node-2": 1}, "created_at": time.time()})
    app = a.AppSpec(name="processor", kind="service", command="true", connects_to=["congestion"])
    store.put_doc("apps", "processor", {"name": "processor", "spec": app_spec_json(app), "spec_version": 1,
                                        "placement": {"node-2": 1}, "instances": {"0": "node-2"}, "deleting": False,
                                        "created_at": time.time()})

    old, old_apps = control_plane(tmp_path / "old", store)
    for node_id in ("node-1", "node-2"):
        old.on_report(node_id, report(node_id))
    wired = old_apps.connections("processor", ["congestion"], "node-2")
    assert wired == {"STRATUM_CONGESTION_URL": ENDPOINTS["node-2"]}  # its own node's: the nearest

    # The old leader is gone; the new one is elected, and node-1 reconnects first.
    new, new_apps = control_plane(tmp_path / "new", store)
    new.adopt_stored_reports()
    new.on_report("node-1", report("node-1"))
    assert new_apps.connections("processor", ["congestion"], "node-2") == wired

    # Without the stored reports the first node back would have won: what the adoption prevents.
    blind, blind_apps = control_plane(tmp_path / "blind", store)
    blind.on_report("node-1", report("node-1"))
    assert blind_apps.connections("processor", ["congestion"], "node-2") != wired
