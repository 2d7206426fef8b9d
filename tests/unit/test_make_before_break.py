"""Make before break (control_plane/services.py Services.bridged): a placement that moves a
service's replicas is told to the nodes with the replicas that serve now kept, as many as the new
placement has not ready yet; the control plane's own placement is unchanged. Pure: the nodes'
reports are set by hand."""

from __future__ import annotations

from control_plane.services import Services
from stratum.v1 import node_agent_pb2 as na


def kind(ready: dict[str, int]) -> Services:
    k = object.__new__(Services)
    k.reports = {node: {"svc": na.ServiceStatus(service="svc", ready_replicas=n, state="ready")} for node, n in ready.items()}
    k._bridging = set()
    return k


def doc(placement: dict[str, int], **extra) -> dict:
    return {"name": "svc", "placement": placement, "spec": {"model": "m", **extra}}


def test_a_move_onto_vms_that_have_not_joined_keeps_the_replicas_that_serve():
    k = kind({"edge-1": 2, "edge-2": 1})
    d = doc({"pool:burst#new1": 2, "pool:burst#new2": 1})
    assert k.bridged(d) == {"pool:burst#new1": 2, "pool:burst#new2": 1, "edge-1": 2, "edge-2": 1}
    assert d["placement"] == {"pool:burst#new1": 2, "pool:burst#new2": 1}  # the decision itself is untouched


def test_no_more_are_kept_than_wait():
    k = kind({"edge-1": 3, "edge-2": 2})
    # edge-1 keeps 1 of its 3 and one VM slot of 2 waits: edge-1 keeps 2 more, edge-2 none
    assert k.bridged(doc({"edge-1": 1, "pool:burst#new1": 2})) == {"edge-1": 3, "pool:burst#new1": 2}


def test_a_scale_in_and_a_finished_move_go_at_once():
    assert kind({"edge-1": 3}).bridged(doc({"edge-1": 1})) == {"edge-1": 1}
    assert kind({"edge-1": 2, "edge-2": 2}).bridged(doc({"edge-2": 2})) == {"edge-2": 2}


def test_a_replica_still_starting_on_a_node_counts_as_waiting():
    assert kind({"edge-1": 2, "edge-2": 0}).bridged(doc({"edge-2": 2})) == {"edge-2": 2, "edge-1": 2}


def test_a_service_scaled_to_zero_keeps_nothing():
    d = doc({"edge-2": 1}, scaling={"mode": "reactive", "zero_after_s": 60})
    d["zero"] = True
    assert kind({"edge-1": 1}).bridged(d) == {"edge-2": 1}


def test_the_new_replicas_getting_ready_asks_for_a_push_that_lets_the_old_go():
    k = kind({"edge-1": 2})
    k.series = __import__("control_plane.autoscale.metrics", fromlist=["ServiceSeries"]).ServiceSeries()
    out = {"edge-1": na.Assignments(), "edge-2": na.Assignments()}
    k.models = type("M", (), {"serving": staticmethod(lambda model: {"version": "v1", "bento_digest": "d",
                                                                     "bento_size_bytes": 1})})()
    k.connections = None
    k.assign(out, [doc({"edge-2": 2})])
    assert [(a.service, a.replicas) for a in out["edge-1"].services] == [("svc", 2)]  # kept while edge-2 starts
    assert "svc" in k._bridging
    ready = na.ServiceReport(services=[na.ServiceStatus(service="svc", ready_replicas=2, state="ready",
                                                        endpoint="http://edge-2:1")])
    assert k.on_report("edge-2", ready)  # a push follows
    out = {"edge-1": na.Assignments(), "edge-2": na.Assignments()}
    k.assign(out, [doc({"edge-2": 2})])
    assert list(out["edge-1"].services) == [] and "svc" not in k._bridging
    # a later report that changes nothing for a service no longer bridged asks for no push
    assert not k.on_report("edge-2", ready)
