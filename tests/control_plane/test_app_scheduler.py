"""Periodic apps on the real store: every scheduled time gets exactly one run record, across a
control-plane restart, an outage and two schedulers ticking at once (the clock is passed in)."""

from __future__ import annotations

import threading

import pytest

from control_plane.apps.resource import Apps, spec_json
from control_plane.datasets import Datasets
from control_plane.join_tokens import JoinTokens
from control_plane.models import Models
from control_plane.nodes import NodeRegistry
from control_plane.packaging.store import ArtifactStore
from control_plane.reconcile import Reconciler
from control_plane.services import Services
from control_plane.store import Store
from stratum import pki
from stratum.v1 import apps_pb2 as a

T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60  # a minute boundary


def control_plane(tmp_path, store=None):
    """The resources of a control plane, without its listeners."""
    store = store or Store(None, str(tmp_path))
    key, cert = pki.make_ca()
    tokens = JoinTokens(store, pki.fingerprint(cert))
    nodes = NodeRegistry(store, tokens, key, cert, 15.0)
    artifacts = ArtifactStore(str(tmp_path))
    datasets = Datasets(store, artifacts)
    reconciler = Reconciler(store, nodes)
    services = Services(store, Models(store, datasets, str(tmp_path)), nodes, reconciler, artifacts)
    return store, Apps(store, nodes, reconciler, services, datasets)


def periodic(store, prohibit_overlap=False):
    spec = a.AppSpec(name="agg", kind="periodic", command="true",
                     schedule=a.Schedule(cron="* * * * *", prohibit_overlap=prohibit_overlap))
    store.put_doc("apps", "agg", {"name": "agg", "spec": spec_json(spec), "spec_version": 1, "placement": {"node-x": 1},
                                  "instances": {"0": "node-x"}, "deleting": False, "created_at": T0, "scheduled_to": T0})


def records(store):
    return sorted((r["scheduled_for"], r["number"], r["state"]) for r in store.list_runs("agg", 1000))


def test_each_scheduled_minute_is_recorded_once_across_restarts_and_outages(tmp_path):
    store, apps = control_plane(tmp_path)
    periodic(store)
    apps.tick(now=T0 + 59)
    assert records(store) == []
    apps.tick(now=T0 + 61)
    apps.tick(now=T0 + 62)
    assert records(store) == [(T0 + 60, 1, "pending")]
    # a restarted control plane (new objects, same store) ticks the same minute again: nothing doubles
    _, again = control_plane(tmp_path, store)
    again.tick(now=T0 + 61)
    assert records(store) == [(T0 + 60, 1, "pending")]
    # down from minute 1 to minute 5: minutes 2-4 are recorded as missed, minute 5 runs
    again.tick(now=T0 + 305)
    assert [(t - T0, n, s) for t, n, s in records(store)] == [
        (60, 1, "pending"), (120, 2, "missed"), (180, 3, "missed"), (240, 4, "missed"), (300, 5, "pending")]
    missed = store.run_by_number("agg", 2)
    assert "control plane was not running" in missed["message"]


def test_overlap_is_recorded_as_skipped_when_prohibited(tmp_path):
    store, apps = control_plane(tmp_path)
    periodic(store, prohibit_overlap=True)
    apps.tick(now=T0 + 60)
    apps.tick(now=T0 + 120)  # run 1 is still pending/running
    assert [(t - T0, s) for t, _, s in records(store)] == [(60, "pending"), (120, "skipped")]
    assert "prohibit_overlap" in store.run_by_number("agg", 2)["message"]


@pytest.mark.parametrize("schedulers", [2, 4])
def test_schedulers_ticking_at_once_never_double_a_run(tmp_path, schedulers):
    store, _ = control_plane(tmp_path)
    periodic(store)
    others = [control_plane(tmp_path, store)[1] for _ in range(schedulers)]
    for minute in range(1, 6):
        threads = [threading.Thread(target=s.tick, kwargs={"now": T0 + 60 * minute + 1}) for s in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    got = records(store)
    assert [t - T0 for t, _, _ in got] == [60, 120, 180, 240, 300]
    assert [n for _, n, _ in got] == [1, 2, 3, 4, 5]
