"""stratum_cloud_pool with real terraform, a real control plane, moto's EC2 API server (driven by
libcloud's EC2 driver) and an OpenBao dev server holding the cloud keys."""

from __future__ import annotations

import base64

import pytest

from tests.cloud import read_policy
from tests.conftest import CLOUD_KEY as KEY, CLOUD_SECRET as SECRET
from tests.harness import ControlPlane
from tests.provider.tfharness import Step, run_steps

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

AMI = "ami-12c6146b"
POOL = "stratum_cloud_pool.burst"


@pytest.fixture
def control_plane(tmp_path, bao):
    """The workspace's control plane, reading cloud keys from the OpenBao server."""
    cp = ControlPlane(str(tmp_path), extra=["--pool-interval", "0.3s"],
                      env={"VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token(read_policy("secret/stratum/*"))}).start()
    yield cp
    cp.stop()


def pool_hcl(moto, **kw) -> str:
    args = dict(size='"t3.micro"', image=f'"{AMI}"', credentials='"secret/stratum/aws"', min_nodes="2", max_nodes="3",
                idle_grace='"1m"')
    args.update(kw)
    body = "\n".join(f"  {k} = {v}" for k, v in args.items())
    return f'''
resource "stratum_cloud_pool" "burst" {{
  name   = "burst"
  driver = "ec2"
  region = "us-east-1"
{body}
  driver_options = {{ host = "127.0.0.1", port = "{moto.port}", secure = "false" }}
  labels = {{ team = "ml" }}
}}
'''


def test_apply_import_scale_and_destroy_a_pool(ws, moto, control_plane):
    def two_vms(ws):
        r = ws.resources()[POOL]
        insts = moto.instances(**{"stratum-pool": "burst"})
        assert len(insts) == 2 and len(r["vms"]) == 2
        assert sorted(v["instance_id"] for v in r["vms"]) == sorted(i["InstanceId"] for i in insts)
        assert r["cpu_cores"] == 2 and r["memory_mb"] == 1024 and r["price_per_hour"] > 0
        for inst in insts:
            assert inst["InstanceType"] == "t3.micro" and inst["ImageId"] == AMI
            tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
            assert tags["stratum-pool"] == "burst" and tags["Name"].startswith("burst-")
            data = moto.boto3().describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")
            script = base64.b64decode(data["UserData"]["Value"]).decode()
            assert "exec stratum node" in script and f"STRATUM_NODE_NAME={tags['Name']}" in script
        state = (ws.dir / "terraform.tfstate").read_text()
        assert KEY not in state and SECRET not in state  # only the Vault path is in state

    def three_vms(ws):
        assert len(moto.instances(**{"stratum-pool": "burst"})) == 3 and len(ws.resources()[POOL]["vms"]) == 3

    run_steps(ws, [
        Step(ws.provider + pool_hcl(moto), check=two_vms, import_address=POOL, import_id="burst"),
        Step(ws.provider + pool_hcl(moto, min_nodes="3"), check=three_vms),
    ])
    ws.destroy()
    assert moto.instances(**{"stratum-pool": "burst"}) == []
    assert "burst" not in (control_plane.client().nodes())


def test_bad_pools_fail_at_plan_on_their_attribute(ws, moto, admin):
    run_steps(ws, [
        Step(ws.provider + pool_hcl(moto, image='"ami-00000000"', size='"t9.huge"'), plan_only=True, expect_error=[
            "InvalidAMIID.NotFound", "size 't9.huge' is not offered in us-east-1", "with stratum_cloud_pool.burst"]),
        Step(ws.provider + pool_hcl(moto, credentials='"secret/stratum/gcp"'), plan_only=True, expect_error=[
            "Invalid credentials", "credentials = 'secret/stratum/gcp': nothing found in Vault"]),
        Step(ws.provider + pool_hcl(moto, min_nodes="3", max_nodes="2"), plan_only=True, expect_error=[
            "max_nodes = 2 is below min_nodes = 3"]),
        Step(ws.provider + pool_hcl(moto, idle_grace='"soon"'), plan_only=True, expect_error=["Invalid idle_grace"]),
    ])
    assert moto.instances(**{"stratum-pool": "burst"}) == []


def test_plan_says_a_service_fits_a_pools_size_and_what_it_would_cost(ws, moto, admin):
    from stratum.v1 import pools_pb2 as p

    admin.CreateCloudPool(p.CloudPoolSpec(
        name="burst", driver="ec2", region="us-east-1", size="t3.micro", image=AMI, credentials="secret/stratum/aws",
        driver_options={"host": "127.0.0.1", "port": str(moto.port), "secure": "false"}, min_nodes=0, max_nodes=2),
        timeout=60)
    service = '''
resource "stratum_service" "api" {{
  name         = "api"
  model        = "m"
  replicas     = 2
  requirements = {{ tiers = ["cloud"], memory_mb = {mem} }}
}}
'''
    res = ws.write(ws.provider + service.format(mem=512)) or ws.plan()
    assert res.rc == 2, res.output  # a plan to create, with a warning
    assert "Warning: Service 'api' would rent cloud VMs" in res.output, res.output
    assert "2 VM(s) of cloud pool burst, 0.0208 per hour" in " ".join(res.output.split()), res.output
    # A replica larger than the pool's VM size fails the plan, naming the pool
    ws.write(ws.provider + service.format(mem=4096))
    res = ws.plan(check=False)
    text = " ".join(res.output.split())
    assert res.rc == 1 and "requirements.memory_mb = 4096: largest cloud node is burst (new VM) with 1024 MiB" in text, text
    assert moto.instances(**{"stratum-pool": "burst"}) == []  # planning rents nothing
