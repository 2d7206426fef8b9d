"""Requirement–capability analysis: one case per dimension with its exact message, several
violations at once, candidates, pools, and the whole-plan capacity check."""

from __future__ import annotations

import pytest

from control_plane.analysis import ServiceNeeds, Violation, analyse, check_plan, plan_packing
from control_plane.placement.types import Demand, Gpu, NodeView, Used

JETSON1 = NodeView("j1", "jetson-01", "edge", {"zone": "south"}, "aarch64", cpu=4, memory_mb=1024, zone="south")
JETSON3 = NodeView("j3", "jetson-03", "edge", {"zone": "north"}, "aarch64", cpu=4, memory_mb=2048, zone="north",
                   datasets=("traffic",))
FOG = NodeView("f1", "fog-1", "fog", {"rack": "r1"}, "x86_64", cpu=8, memory_mb=8192)
GPU = NodeView("g1", "cloud-gpu", "cloud", {}, "x86_64", cpu=16, memory_mb=65536,
               gpus=(Gpu("Tesla T4", 16384), Gpu("Tesla T4", 16384)))
DOWN = NodeView("d1", "edge-down", "edge", {}, "x86_64", cpu=64, memory_mb=262144, ready=False)
NODES = [JETSON3, FOG, DOWN, GPU, JETSON1]


def one(d: Demand, nodes=NODES, **kw) -> list[Violation]:
    return analyse(ServiceNeeds("svc", d, **kw), nodes)


def messages(vs: list[Violation]) -> list[str]:
    return [v.message for v in vs]


def test_fits_somewhere_gives_nothing():
    assert one(Demand(cpu=2, memory_mb=1024, tiers=("edge",), arch="aarch64", zone="north", data="traffic")) == []
    assert one(Demand(gpus=2, gpu_model="t4", gpu_memory_mb=16000)) == []  # model: substring, any case


def test_memory_message_names_the_largest_eligible_node_and_candidates():
    [v] = one(Demand(memory_mb=4096, tiers=("edge",)))
    assert v == Violation(
        "requirements.memory_mb", "4096", "requirements.memory_mb = 4096: largest edge node is jetson-03 with 2048 MiB",
        (("jetson-03", "has 2048 MiB, needs 4096"), ("jetson-01", "has 1024 MiB, needs 4096"),
         ("cloud-gpu", "is cloud, not edge")), "svc")  # the down node, bigger still, is never a candidate


@pytest.mark.parametrize("demand, path, message", [
    (Demand(tiers=("gpu",)), "requirements.tiers",
     'requirements.tiers = ["gpu"]: no node is gpu (tiers here: cloud, edge, fog)'),
    (Demand(tiers=("edge",), labels=(("zone", "east"),)), 'requirements.labels["zone"]',
     'requirements.labels["zone"] = "east": no edge node has label zone=east (zone here: north, south)'),
    (Demand(tiers=("fog",), labels=(("site", "a"),)), 'requirements.labels["site"]',
     'requirements.labels["site"] = "a": no fog node has label site=a (no fog node has a site label)'),
    (Demand(zone="east"), "requirements.zone",
     'requirements.zone = "east": no node is in zone east (zones here: north, south)'),
    (Demand(tiers=("fog",), data="traffic"), "requirements.data",
     'requirements.data = "traffic": no fog node is near dataset traffic (no fog node holds a dataset)'),
    (Demand(tiers=("edge",), arch="x86_64"), "requirements.arch",
     'requirements.arch = "x86_64": no edge node is x86_64 (arch here: aarch64)'),
    (Demand(tiers=("edge",), arch="arm64"), "requirements.arch",
     'requirements.arch = "arm64": no edge node is arm64 (arch here: aarch64); did you mean "aarch64"?'),
    (Demand(gpus=4), "requirements.gpu", "requirements.gpu = 4: the node with most GPUs is cloud-gpu with 2"),
    (Demand(tiers=("edge",), gpus=1), "requirements.gpu", "requirements.gpu = 1: no edge node has a GPU"),
    (Demand(gpu_model="A100"), "requirements.gpu_model",
     'requirements.gpu_model = "A100": no node has 1 A100 GPU (GPUs here: Tesla T4)'),
    (Demand(gpu_memory_mb=40000), "requirements.gpu_memory_mb",
     "requirements.gpu_memory_mb = 40000: largest GPU on a node has 16384 MiB (Tesla T4 on cloud-gpu)"),
    (Demand(cpu=32), "requirements.cpu", "requirements.cpu = 32: largest node is cloud-gpu with 16 cores"),
    (Demand(cpu=0.5, memory_mb=4096, tiers=("edge", "fog"), arch="aarch64"), "requirements.memory_mb",
     "requirements.memory_mb = 4096: largest aarch64 edge or fog node with 0.5 cores is jetson-03 with 2048 MiB"),
])
def test_each_dimension(demand, path, message):
    [v] = one(demand)
    assert (v.path, v.message) == (path, message)
    assert v.message.startswith(f"{v.path} = {v.asked}: ")
    assert 0 < len(v.candidates) <= 3


def test_every_unmet_requirement_is_reported_not_just_the_first():
    vs = one(Demand(cpu=32, memory_mb=4096, tiers=("edge",), arch="x86_64", gpus=1, labels=(("zone", "east"),)))
    assert [v.path for v in vs] == ['requirements.labels["zone"]', "requirements.arch", "requirements.gpu",
                                    "requirements.cpu", "requirements.memory_mb"]
    assert vs[-1].message == "requirements.memory_mb = 4096: largest edge node is jetson-03 with 2048 MiB"
    assert vs[-1].candidates[0] == ("jetson-03", "has zone=north, not east; is aarch64, not x86_64; has no GPU; "
                                                 "has 4 cores, needs 32; has 2048 MiB, needs 4096")


def test_requirements_met_apart_but_not_together():
    # arm64 nodes exist and fog nodes exist, but no fog node is aarch64: reported on the later filter.
    assert messages(one(Demand(tiers=("fog",), arch="aarch64"))) == [
        'requirements.arch = "aarch64": no fog node is aarch64 (arch here: x86_64)']
    # Two T4s on one node, but only one with 20000 MiB: judged on the same GPUs.
    node = NodeView("m", "mixed", "cloud", gpus=(Gpu("T4", 16384), Gpu("T4", 24576)))
    assert messages(one(Demand(gpus=2, gpu_model="T4", gpu_memory_mb=20000), [node])) == [
        "requirements.gpu_memory_mb = 20000: no node with 2 GPUs with T4 GPUs has 2 GPUs with 20000 MiB; mixed has 1"]


def test_model_memory_and_latency_measured_when_packaged():
    vs = one(Demand(memory_mb=128), model_memory_mb=260, model_p95_ms=35, slo_p95_ms=20)
    assert messages(vs) == [
        "requirements.memory_mb = 128: the model needs 260 MiB per replica (measured when packaged)",
        "slo.p95_latency_ms = 20: the model answers in 35 ms at p95 (measured when packaged)"]
    # memory derived from the RSS (not given by the user) is not second-guessed; a met SLO is fine
    assert one(Demand(memory_mb=128), model_memory_mb=260, memory_explicit=False, model_p95_ms=5, slo_p95_ms=20) == []


def test_replicas_more_than_fit_even_when_empty():
    assert messages(one(Demand(memory_mb=1024, tiers=("edge",)), replicas=3)) == []
    [v] = one(Demand(memory_mb=1024, tiers=("edge",)), replicas=4)
    assert v.message == ("replicas = 4: at most 3 fit on the eligible nodes jetson-01, jetson-03 even when empty "
                         "(1024 MiB each)")
    assert v.candidates == (("jetson-03", "fits 2 when empty, 2 beside other services"),
                            ("jetson-01", "fits 1 when empty, 1 beside other services"))


def test_replicas_beside_what_other_services_hold():
    vs = analyse(ServiceNeeds("svc", Demand(memory_mb=1024, tiers=("edge",)), replicas=3), NODES,
                 used={"j3": Used(memory_mb=1024)})
    assert messages(vs) == ["replicas = 3: 2 fit beside what other services hold on the eligible nodes "
                            "jetson-01, jetson-03 (3 when empty; 1024 MiB each)"]


def test_no_nodes_at_all_is_one_clear_violation():
    assert messages(one(Demand(cpu=1), [])) == [
        "requirements: no ready node or cloud pool to run on (none has enrolled); "
        "start one with `stratum node` or declare a stratum_cloud_pool"]
    [v] = one(Demand(cpu=1), [DOWN])
    assert "edge-down is down" in v.message and v.candidates == (("edge-down", "is down"),)


def test_pool_templates_count_as_capacity():
    pool = NodeView("p", "burst", "cloud", arch="x86_64", cpu=2, memory_mb=8192, ready=False, pool="burst")
    needs = ServiceNeeds("svc", Demand(memory_mb=4096, tiers=("cloud",)), replicas=10)
    assert analyse(needs, [JETSON1, pool]) == []  # an unbounded pool starts as many VMs as needed
    [v] = analyse(needs, [JETSON1, pool], pool_vms={"burst": 3})
    assert v.message == "replicas = 10: at most 6 fit on the eligible nodes burst even when empty (4096 MiB each)"


def test_same_answer_whatever_the_node_order():
    d = Demand(cpu=32, memory_mb=4096, tiers=("edge",), arch="x86_64")
    assert one(d, NODES) == one(d, list(reversed(NODES)))


# -- whole plan ----------------------------------------------------------------------------------

EDGE1 = NodeView("e1", "edge-1", "edge", cpu=4, memory_mb=2048)
EDGE2 = NodeView("e2", "edge-2", "edge", cpu=4, memory_mb=2048)
CLOUD = NodeView("c1", "cloud-1", "cloud", cpu=16, memory_mb=65536)


def ten(memory_mb=512) -> list[ServiceNeeds]:
    return [ServiceNeeds(f"s{i}", Demand(cpu=0.5, memory_mb=memory_mb, tiers=("edge",))) for i in range(10)]


def test_ten_services_that_each_fit_but_together_do_not():
    services, nodes = ten(), [EDGE1, EDGE2, CLOUD]
    assert all(analyse(s, nodes) == [] for s in services)  # each fits on its own
    vs = check_plan(services, nodes)
    assert [v.service for v in vs] == ["s8", "s9"] and {v.path for v in vs} == {"replicas"}
    assert vs[0].message == (
        "replicas = 1: 1 of 1 replica of s8 found no room; services s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 "
        "need 10 x 512 MiB and 10 x 0.5 cores on edge-1, edge-2, which have 4096 MiB and 8 cores free: "
        "short by 1024 MiB")
    assert vs[0].candidates[0] == ("edge-1", "has 0 MiB and 2 cores left after the plan's other replicas, "
                                             "needs 512 MiB and 0.5 cores")
    assert check_plan(services[:8], nodes) == []
    assert plan_packing(services[:8], nodes) == {f"s{i}": {"e1" if i < 4 else "e2": 1} for i in range(8)}


def test_plan_counts_what_services_outside_it_hold():
    vs = check_plan(ten()[:8], [EDGE1, EDGE2], used={"e1": Used(cpu=1, memory_mb=1024)})
    assert [v.service for v in vs] == ["s6", "s7"]
    assert vs[0].message.endswith("which have 3072 MiB and 7 cores free: short by 1024 MiB")


def test_fragmentation_is_told_apart_from_a_total_shortfall():
    # 3 x 1200 MiB on two 2048 MiB nodes: 3600 < 4096 in total, but only one fits per node.
    services = [ServiceNeeds(f"s{i}", Demand(memory_mb=1200)) for i in range(3)]
    [v] = check_plan(services, [EDGE1, EDGE2])
    assert v.service == "s2" and v.message.endswith(
        "which have 4096 MiB free: enough in total, but no single node has room left for the rest "
        "once the larger replicas are placed")


def test_first_fit_decreasing_places_the_largest_first():
    services = [ServiceNeeds("small", Demand(memory_mb=512), replicas=2), ServiceNeeds("big", Demand(memory_mb=1536))]
    assert plan_packing(services, [EDGE1]) == {"big": {"e1": 1}, "small": {"e1": 1}}
    [v] = check_plan(services, [EDGE1])
    assert v.service == "small" and "1 of 2 replicas of small found no room" in v.message
    assert "services big, small need 2560 MiB on edge-1, which have 2048 MiB free: short by 512 MiB" in v.message


def test_separate_node_groups_are_reported_separately():
    services = ten() + [ServiceNeeds("batch", Demand(memory_mb=40000, tiers=("cloud",)), replicas=2)]
    vs = check_plan(services, [EDGE1, EDGE2, CLOUD])
    assert [v.service for v in vs] == ["batch", "s8", "s9"]  # groups in name order
    assert vs[0].message == ("replicas = 2: 1 of 2 replicas of batch found no room; service batch needs "
                              "2 x 40000 MiB on cloud-1, which have 65536 MiB free: short by 14464 MiB")


def test_gpus_are_consumed_and_pools_start_vms():
    gpu_pool = NodeView("gp", "gpu-pool", "cloud", cpu=8, memory_mb=32768, pool="gpus", gpus=(Gpu("A100", 40960),))
    services = [ServiceNeeds("train", Demand(gpus=1, gpu_model="A100"), replicas=3)]
    assert plan_packing(services, [GPU, gpu_pool]) == {"train": {"gp#1": 1, "gp#2": 1, "gp#3": 1}}
    [v] = check_plan(services, [gpu_pool], pool_vms={"gpus": 2})
    assert v.message == ("replicas = 3: 1 of 3 replicas of train found no room; service train needs 3 GPUs on "
                         "gpu-pool, which have 2 GPUs free: short by 1 GPU")
    assert v.candidates == (("gpu-pool", "the roomiest of the 2 VMs of pool gpus has 0 GPUs left after the plan's "
                                         "other replicas, needs 1 GPU"),)
    # two T4 replicas fill cloud-gpu's two GPUs; a third has none left
    t4 = [ServiceNeeds("infer", Demand(gpus=1, gpu_model="T4"), replicas=3)]
    assert plan_packing(t4, [GPU]) == {"infer": {"g1": 2}}


def test_services_no_node_can_run_are_left_to_analyse():
    services = [ServiceNeeds("huge", Demand(memory_mb=10**6))] + ten()[:2]
    assert check_plan(services, [EDGE1]) == []
    assert plan_packing(services, [EDGE1]) == {"s0": {"e1": 1}, "s1": {"e1": 1}}


def test_plan_is_the_same_whatever_the_input_order():
    services, nodes = ten(), [EDGE1, EDGE2, CLOUD]
    assert check_plan(services, nodes) == check_plan(services[::-1], nodes[::-1])
    assert plan_packing(services, nodes) == plan_packing(services[::-1], nodes[::-1])
