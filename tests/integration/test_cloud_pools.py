"""Cloud pools against real stand-ins: moto's EC2 API server (through libcloud's EC2 driver) and an
OpenBao dev server (Vault's API, through hvac), with a real control plane. Each VM's user data is
run as it would be at boot, in a network namespace of its own: a real node daemon enrolls with the
VM's single-use join token and the VM joins the pool as a node.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.request

import grpc
import pytest

from stratum.v1 import pools_pb2 as p
from tests.cloud import read_policy
from tests.conftest import CLOUD_KEY as KEY, CLOUD_SECRET as SECRET
from tests.harness import ControlPlane, Process, free_port, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]

AMI = "ami-12c6146b"  # one of moto's built-in images


def vault_env(bao, token=None, addr=None) -> dict:
    return {"VAULT_ADDR": addr or bao.addr, "VAULT_TOKEN": token or bao.token(read_policy("secret/stratum/*"))}


@pytest.fixture(scope="module")
def refusing_plane(tmp_path_factory, bao):
    """One control plane for the bad-pool cases: each is refused and creates nothing, so they share it."""
    cp_ = ControlPlane(str(tmp_path_factory.mktemp("refusing")), extra=["--pool-interval", "0.3s"], env=vault_env(bao))
    cp_.start()
    yield cp_
    cp_.stop()


@pytest.fixture
def plane(tmp_path, bao, test_network):
    cp_ = ControlPlane(str(tmp_path), host=test_network.gateway, extra=["--pool-interval", "0.3s"], env=vault_env(bao))
    cp_.start()
    yield cp_
    cp_.stop()


def spec(moto, name="burst", **kw) -> p.CloudPoolSpec:
    base = dict(name=name, driver="ec2", region="us-east-1", size="t3.micro", image=AMI,
                credentials="secret/stratum/aws",
                driver_options={"host": "127.0.0.1", "port": str(moto.port), "secure": "false"},
                min_nodes=2, max_nodes=4, tier="cloud", labels={"team": "ml"}, idle_grace_s=1)
    base.update(kw)
    return p.CloudPoolSpec(**base)


def user_data(moto, instance_id: str) -> str:
    attr = moto.boto3().describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(attr["UserData"]["Value"]).decode()


def boot(tmp_path, test_network, script: str, name: str) -> Process:
    """Run a VM's user data in a host of its own, as cloud-init would at first boot. The node daemon
    is already installed (this venv on PATH), so the script goes straight to enrolling."""
    host = test_network.add_host()
    env = {"PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "STRATUM_DATA_DIR": str(tmp_path / name),
           "HOME": str(tmp_path)}
    return Process(["sh", "-c", script], str(tmp_path / f"{name}.log"), env=env, netns=host.netns).start()


def pool(c, name="burst") -> p.CloudPool:
    return c.GetCloudPool(p.GetCloudPoolRequest(name=name))


def code_of(fn) -> grpc.StatusCode | None:
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return None


def test_a_pool_runs_min_nodes_vms_that_join_as_nodes_scales_and_is_destroyed(tmp_path, plane, moto, test_network):
    c = plane.client()
    bystander = moto.boto3().run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.nano")["Instances"][0]
    c.CreateCloudPool(spec(moto))
    assert c.CreateCloudPool(spec(moto)).spec == spec(moto)  # a retried create changes nothing

    # min_nodes VMs exist in the EC2 API, with the pool's size, image, tags and user data
    wait_for(lambda: len(moto.instances(**{"stratum-pool": "burst"})) == 2, 30, what="2 instances")
    vms = moto.instances(**{"stratum-pool": "burst"})
    got = pool(c)
    assert sorted(v.instance_id for v in got.vms) == sorted(i["InstanceId"] for i in vms)
    assert got.cpu_cores == 2 and got.memory_mb == 1024 and got.price_per_hour > 0
    procs = []
    for inst in vms:
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert inst["InstanceType"] == "t3.micro" and inst["ImageId"] == AMI
        vm = next(v for v in got.vms if v.instance_id == inst["InstanceId"])
        assert tags == {"stratum-pool": "burst", "stratum-token": vm.token, "Name": vm.name}
        script = user_data(moto, inst["InstanceId"])
        assert f"STRATUM_NODE_NAME={vm.name}" in script and "STRATUM_JOIN_TOKEN=stj1." in script
        assert f"STRATUM_SERVER={test_network.gateway}:{plane.port}" in script
        procs.append(boot(tmp_path, test_network, script, vm.name))
    try:
        # each VM enrolls with its own token and joins with the pool's tier and labels
        wait_for(lambda: pool(c).joined == 2, 60, what="both VMs joined")
        assert pool(c).state == "ready"
        nodes = c.nodes(tier="cloud")
        assert sorted(nodes) == sorted(v.name for v in pool(c).vms)
        for n in nodes.values():
            assert n.labels["team"] == "ml" and n.labels["stratum.io/pool"] == "burst" and n.state == "ready"
        # the token in the user data was single-use: running the script again cannot enroll another node
        again = boot(tmp_path, test_network, user_data(moto, vms[0]["InstanceId"]).replace(
            f"STRATUM_NODE_NAME={pool(c).vms[0].name}", "STRATUM_NODE_NAME=intruder"), "intruder")
        again.proc.wait(60)
        assert again.proc.returncode != 0 and "used up" in again.log(), again.log()[-2000:]
        assert "intruder" not in c.nodes()

        # scale up: a third VM
        c.UpdateCloudPool(spec(moto, min_nodes=3))
        wait_for(lambda: len(moto.instances(**{"stratum-pool": "burst"})) == 3, 30, what="3 instances")
        # scale down to 1: the VM that has not joined goes first, then an idle joined one (newest first)
        joined = sorted(v.name for v in pool(c).vms if v.state == "joined")
        c.UpdateCloudPool(spec(moto, min_nodes=1))
        wait_for(lambda: len(pool(c).vms) == 1, 30, what="1 VM left")
        left = [v.name for v in pool(c).vms]
        assert left[0] in joined and pool(c).vms[0].state == "joined"
        assert len(moto.instances(**{"stratum-pool": "burst"})) == 1
        assert sorted(c.nodes(tier="cloud")) == left  # a terminated VM's node is forgotten

        # destroy: every VM of the pool terminated, nothing else
        c.DeleteCloudPool(p.DeleteCloudPoolRequest(name="burst"))
        wait_for(lambda: code_of(lambda: pool(c)) == grpc.StatusCode.NOT_FOUND, 30, what="pool gone")
        assert moto.instances(**{"stratum-pool": "burst"}) == []
        assert [i["InstanceId"] for i in moto.instances()] == [bystander["InstanceId"]]
        assert not c.nodes(tier="cloud")
    finally:
        for proc in procs:
            proc.stop()
    log = plane.log()
    for secret in (KEY, SECRET):
        assert secret not in log


@pytest.mark.parametrize("change, path, text", [
    (dict(credentials="secret/stratum/missing"), "credentials", "nothing found in Vault"),
    (dict(credentials="secret/other/aws"), "credentials", "Vault denied reading 'secret/other/aws'"),
    (dict(image="ami-00000000"), "image", "InvalidAMIID.NotFound"),
    (dict(size="t9.huge"), "size", "size 't9.huge' is not offered in us-east-1"),
    (dict(min_nodes=3, max_nodes=2), "max_nodes", "max_nodes = 2 is below min_nodes = 3"),
    (dict(region="mars-1"), "driver", "Invalid region: mars-1"),
    (dict(driver="nope"), "driver", "unknown libcloud compute driver 'nope'"),
    (dict(driver_options={"port": "x"}), 'driver_options["port"]', "give a whole number"),
])
def test_bad_pools_are_refused_naming_the_attribute_and_nothing_is_created(refusing_plane, moto, change, path, text):
    c = refusing_plane.client()
    before = len(moto.instances())
    for call in (c.ValidateCloudPool, c.CreateCloudPool):
        with pytest.raises(grpc.RpcError) as e:
            call(spec(moto, name="bad", **change))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert path in e.value.details() and text in e.value.details(), e.value.details()
        assert SECRET not in e.value.details() and KEY not in e.value.details()
    assert code_of(lambda: pool(c, "bad")) == grpc.StatusCode.NOT_FOUND
    assert len(moto.instances()) == before


def test_an_unreachable_vault_is_named(tmp_path, bao, moto):
    dead = f"http://127.0.0.1:{free_port()}"
    plane = ControlPlane(str(tmp_path), env=vault_env(bao, addr=dead)).start()
    try:
        with pytest.raises(grpc.RpcError) as e:
            plane.client().CreateCloudPool(spec(moto, name="novault"))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "credentials" in e.value.details() and f"Vault at {dead} is unreachable" in e.value.details()
    finally:
        plane.stop()


def test_a_control_plane_killed_between_request_and_record_adopts_the_vm(tmp_path, bao, moto):
    """The VM was created in the cloud, but the control plane died before it saved the instance id:
    after a restart the VM is found by its token tag and adopted, so there is one VM, not two."""
    env = vault_env(bao)
    crashing = ControlPlane(str(tmp_path), extra=["--pool-interval", "0.3s"],
                            env={**env, "STRATUM_CRASH_AT": "after-cloud-create"}).start()
    crashing.client().CreateCloudPool(spec(moto, name="crashy", min_nodes=1, max_nodes=1))
    crashing.proc.wait(30)
    assert crashing.proc.returncode == 137  # died right after the create call
    made = moto.instances(**{"stratum-pool": "crashy"})
    assert len(made) == 1
    plane = ControlPlane(str(tmp_path), port=crashing.port, node_port=crashing.node_port,
                         extra=["--pool-interval", "0.3s"], env=env).start()
    try:
        c = plane.client()
        wait_for(lambda: pool(c, "crashy").vms and pool(c, "crashy").vms[0].instance_id, 30, what="VM adopted")
        assert [v.instance_id for v in pool(c, "crashy").vms] == [made[0]["InstanceId"]]
        assert len(moto.instances(**{"stratum-pool": "crashy"})) == 1
        c.DeleteCloudPool(p.DeleteCloudPoolRequest(name="crashy"))
        wait_for(lambda: code_of(lambda: pool(c, "crashy")) == grpc.StatusCode.NOT_FOUND, 30, what="pool gone")
        assert moto.instances(**{"stratum-pool": "crashy"}) == []
    finally:
        plane.stop()


def test_a_control_plane_killed_before_the_request_requests_it_once_after_restart(tmp_path, bao, moto):
    env = vault_env(bao)
    crashing = ControlPlane(str(tmp_path), extra=["--pool-interval", "0.3s"],
                            env={**env, "STRATUM_CRASH_AT": "before-cloud-create"}).start()
    # The pool loop wakes on the create and dies before asking the cloud; on a loaded machine that
    # may come before the reply is sent (UNAVAILABLE). Either way the pool must have been recorded.
    assert code_of(lambda: crashing.client().CreateCloudPool(spec(moto, name="early", min_nodes=2, max_nodes=2))) in (
        None, grpc.StatusCode.UNAVAILABLE)
    crashing.proc.wait(30)
    assert crashing.proc.returncode == 137
    assert moto.instances(**{"stratum-pool": "early"}) == []  # recorded, never requested
    plane = ControlPlane(str(tmp_path), port=crashing.port, node_port=crashing.node_port,
                         extra=["--pool-interval", "0.3s"], env=env).start()
    try:
        c = plane.client()
        wait_for(lambda: len(moto.instances(**{"stratum-pool": "early"})) == 2, 30, what="2 instances")
        wait_for(lambda: all(v.instance_id for v in pool(c, "early").vms), 30, what="ids recorded")
        assert len(pool(c, "early").vms) == 2
        # a few more passes change nothing
        time.sleep(1.5)
        assert len(moto.instances(**{"stratum-pool": "early"})) == 2
        c.DeleteCloudPool(p.DeleteCloudPoolRequest(name="early"))
        wait_for(lambda: code_of(lambda: pool(c, "early")) == grpc.StatusCode.NOT_FOUND, 30, what="pool gone")
    finally:
        plane.stop()


def test_a_service_no_node_can_take_gets_a_vm_from_the_pool_which_is_given_back_when_idle(tmp_path, plane, moto,
                                                                                          test_network):
    """Placement that finds no room asks the pool for a VM and waits for it to join; the VM runs
    the replica; when the service is gone the VM is idle and, beyond min_nodes, terminated."""
    import pandas as pd

    from stratum.v1 import datasets_pb2 as ds, models_pb2 as m
    from tests.lifecycle import DATA, model_spec, rows_of, upload, wait_service, wait_trained

    c = plane.client()
    blob = upload(c, (DATA / "traffic.csv").read_bytes())
    c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
    ms = model_spec("congestion", "traffic")
    del ms.candidates[1:]
    ms.grids.clear()
    c.CreateModel(ms)
    version = wait_trained(c, "congestion").serving.version
    c.CreateCloudPool(spec(moto, min_nodes=0, max_nodes=2, idle_grace_s=1))
    assert moto.instances(**{"stratum-pool": "burst"}) == []  # min_nodes = 0: nothing rented yet

    # No enrolled node at all: the replica is placed on a VM the pool starts for it
    c.CreateService(m.ServiceSpec(name="congestion", model="congestion", requirements=m.Requirements(tiers=["cloud"])))
    svc = c.GetService(m.GetServiceRequest(name="congestion"))
    assert svc.state == "pending" and "waiting for a new VM of cloud pool burst" in svc.message, svc
    wait_for(lambda: len(moto.instances(**{"stratum-pool": "burst"})) == 1, 30, what="a VM requested for the service")
    inst = moto.instances(**{"stratum-pool": "burst"})[0]
    name = {t["Key"]: t["Value"] for t in inst["Tags"]}["Name"]
    vm = boot(tmp_path, test_network, user_data(moto, inst["InstanceId"]), name)
    try:
        svc = wait_service(c, "congestion", version, timeout=240)
        assert [p.node_name for p in svc.placements] == [name]
        rows = rows_of(pd.read_csv(DATA / "traffic.csv"), 3)
        req = urllib.request.Request(svc.endpoints[0] + "/predict", data=json.dumps({"instances": rows}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:  # served by the VM, on its own address
            assert len(json.loads(r.read())["predictions"]) == 3
        assert len(moto.instances(**{"stratum-pool": "burst"})) == 1  # one VM was enough

        # The service goes: the VM is idle, beyond min_nodes = 0, and is given back
        c.DeleteService(m.DeleteServiceRequest(name="congestion"))
        wait_for(lambda: moto.instances(**{"stratum-pool": "burst"}) == [], 60, what="the idle VM terminated")
        wait_for(lambda: not pool(c).vms, 30, what="the pool has no VM left")
    finally:
        vm.stop()
