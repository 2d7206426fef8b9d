"""Provisioning benchmark: from demand to a joined node, and a pool scaled to hundreds of VMs.

    python -m bench.provisioning.run [--joins 5] [--vms 500] [--interval 1s]

Everything is real and local: a control plane process, moto's EC2 API server (through the
namespace adapter of tests/cloud.py, driven by libcloud's EC2 driver in the control plane), an
OpenBao dev server holding the keys, and real node daemons.

1. Demand to joined node, `--joins` times: raise the pool's min_nodes by one (the demand), then
   time three legs:
   - API call: until the VM's record has its instance id (the control plane wrote the record,
     asked the EC2 API and saved the answer);
   - boot stand-in: from then until the node enrolls. A real VM boots here (tens of seconds, not
     measurable without a cloud); the stand-in runs the VM's own user data as a process, so this
     leg is the node daemon's start-up and its first Enroll call;
   - enrollment: until the pool counts the VM as joined (node ready: Hello with capabilities,
     then the reconciler's next pass).
2. Scale to `--vms` VMs in one pool, then back to 0: wall time, EC2 API requests by action (counted
   by the proxy) per VM against the minimum (one RunInstances per VM up, one TerminateInstances per
   VM down), and control-plane CPU per VM.

Prints a table per part, then one JSON line. Exit status 0 when every VM was created and
terminated and API requests per VM stay within 1.1x of the minimum; 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import psutil  # noqa: E402

from stratum.durations import parse_duration  # noqa: E402
from stratum.v1 import control_plane_pb2 as cp, pools_pb2 as p  # noqa: E402
from tests.cloud import MotoEC2, OpenBao, read_policy  # noqa: E402
from tests.harness import ControlPlane, Process, wait_for  # noqa: E402

AMI = "ami-12c6146b"


def cpu_s(proc) -> float:
    t = psutil.Process(proc.pid).cpu_times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.provisioning.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--joins", type=int, default=5, help="demand-to-joined measurements")
    ap.add_argument("--vms", type=int, default=500, help="VMs in the scale test")
    ap.add_argument("--interval", default="1s", help="the control plane's --pool-interval")
    args = ap.parse_args(argv)
    parse_duration(args.interval)  # a bad duration fails here, before anything starts
    tmp = Path(tempfile.mkdtemp(prefix="stratum-bench-prov-"))
    bao = moto = plane = None
    vms_procs: list[Process] = []
    try:
        (tmp / "bao").mkdir()
        (tmp / "moto").mkdir()
        bao = OpenBao(tmp / "bao")
        bao.put("secret/stratum/aws", key="AKIABENCHKEY", secret="bench-secret")
        moto = MotoEC2(tmp / "moto")
        plane = ControlPlane(str(tmp), extra=["--pool-interval", args.interval],
                             env={"VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token(read_policy("secret/stratum/*"))}).start()
        c = plane.client()

        def spec(name: str, n: int, cap: int) -> p.CloudPoolSpec:
            return p.CloudPoolSpec(name=name, driver="ec2", region="us-east-1", size="t3.micro", image=AMI,
                                   credentials="secret/stratum/aws",
                                   driver_options={"host": "127.0.0.1", "port": str(moto.port), "secure": "false"},
                                   min_nodes=n, max_nodes=cap, idle_grace_s=3600)

        # -- 1. demand to joined node ---------------------------------------------------------
        c.CreateCloudPool(spec("join", 0, args.joins), timeout=60)
        legs = []
        for k in range(1, args.joins + 1):
            seen = {v.name for v in c.GetCloudPool(p.GetCloudPoolRequest(name="join")).vms}
            t0 = time.perf_counter()
            c.UpdateCloudPool(spec("join", k, args.joins), timeout=60)

            def new_vm():
                vms = c.GetCloudPool(p.GetCloudPoolRequest(name="join")).vms
                return next((v for v in vms if v.name not in seen and v.instance_id), None)

            vm = wait_for(new_vm, 60, interval=0.005, what="instance id recorded")
            t_api = time.perf_counter()
            attr = moto.boto3().describe_instance_attribute(InstanceId=vm.instance_id, Attribute="userData")
            script = base64.b64decode(attr["UserData"]["Value"]).decode()
            env = {"PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
                   "STRATUM_DATA_DIR": str(tmp / vm.name), "HOME": str(tmp)}
            vms_procs.append(Process(["sh", "-c", script], str(tmp / f"{vm.name}.log"), env=env).start())
            wait_for(lambda: vm.name in {n.name for n in c.ListNodes(cp.ListNodesRequest()).nodes}, 60, interval=0.005,
                     what="node enrolled")
            t_enrolled = time.perf_counter()
            wait_for(lambda: any(v.name == vm.name and v.state == "joined"
                                 for v in c.GetCloudPool(p.GetCloudPoolRequest(name="join")).vms), 60, interval=0.005,
                     what="VM joined")
            t_joined = time.perf_counter()
            legs.append({"api_s": t_api - t0, "boot_standin_s": t_enrolled - t_api, "enroll_s": t_joined - t_enrolled,
                         "total_s": t_joined - t0})
            print(f"join {k}: API {legs[-1]['api_s']:.3f}s, boot stand-in {legs[-1]['boot_standin_s']:.3f}s, "
                  f"enrollment {legs[-1]['enroll_s']:.3f}s, total {legs[-1]['total_s']:.3f}s", file=sys.stderr)
        for proc in vms_procs:
            proc.stop()
        c.DeleteCloudPool(p.DeleteCloudPoolRequest(name="join"))
        wait_for(lambda: not any(x.name == "join" for x in _pools(c)), 120, what="join pool gone")

        # -- 2. scale to N VMs and back ---------------------------------------------------------
        moto.calls.clear()
        c.CreateCloudPool(spec("scale", 0, args.vms), timeout=60)
        create_calls = dict(moto.calls)  # ValidateCloudPool's look-ups: sizes, image
        moto.calls.clear()
        cpu0, t0 = cpu_s(plane.proc), time.perf_counter()
        c.UpdateCloudPool(spec("scale", args.vms, args.vms), timeout=60)
        wait_for(lambda: sum(1 for v in c.GetCloudPool(p.GetCloudPoolRequest(name="scale"), timeout=60).vms
                             if v.instance_id) == args.vms, 1800, interval=0.5, what=f"{args.vms} VMs requested")
        up_s, up_cpu, up_calls = time.perf_counter() - t0, cpu_s(plane.proc) - cpu0, dict(moto.calls)
        running = len(moto.instances(**{"stratum-pool": "scale"}))
        print(f"up: {args.vms} VMs in {up_s:.1f}s, control plane {up_cpu:.2f} CPU s, EC2 requests {up_calls}",
              file=sys.stderr)
        moto.calls.clear()
        cpu0, t0 = cpu_s(plane.proc), time.perf_counter()
        c.UpdateCloudPool(spec("scale", 0, args.vms), timeout=60)
        wait_for(lambda: not c.GetCloudPool(p.GetCloudPoolRequest(name="scale"), timeout=60).vms, 1800, interval=0.5,
                 what="all VMs terminated")
        down_s, down_cpu, down_calls = time.perf_counter() - t0, cpu_s(plane.proc) - cpu0, dict(moto.calls)
        left = len(moto.instances(**{"stratum-pool": "scale"}))
        print(f"down: in {down_s:.1f}s, control plane {down_cpu:.2f} CPU s, EC2 requests {down_calls}", file=sys.stderr)
        c.DeleteCloudPool(p.DeleteCloudPoolRequest(name="scale"))

        n = args.vms
        up_per_vm = sum(up_calls.values()) / n
        down_per_vm = sum(down_calls.values()) / n
        ok = running == n and left == 0 and up_per_vm <= 1.1 and down_per_vm <= 1.1
        med = {k: statistics.median(x[k] for x in legs) for k in ("api_s", "boot_standin_s", "enroll_s", "total_s")}
        print("\ndemand to joined node (median of %d)" % len(legs))
        print(f"  API call (record, RunInstances, save) {med['api_s'] * 1000:8.1f} ms")
        print(f"  boot stand-in (node daemon to Enroll) {med['boot_standin_s'] * 1000:8.1f} ms")
        print(f"  enrollment (Hello, ready, joined)      {med['enroll_s'] * 1000:8.1f} ms")
        print(f"  total                                 {med['total_s'] * 1000:8.1f} ms")
        print(f"\nscale to {n} VMs and back (--pool-interval {args.interval})")
        print(f"  {'':6} {'wall s':>8} {'CP CPU ms/VM':>13} {'EC2 requests/VM':>16} {'minimum':>8}  by action")
        print(f"  {'up':6} {up_s:8.1f} {up_cpu / n * 1000:13.2f} {up_per_vm:16.3f} {1:>8}  {up_calls}")
        print(f"  {'down':6} {down_s:8.1f} {down_cpu / n * 1000:13.2f} {down_per_vm:16.3f} {1:>8}  {down_calls}")
        print(f"  checks at plan time, once per pool: {create_calls}")
        print(f"\n{'met' if ok else 'NOT met'}: {running}/{n} created, {left} left after scale-down, "
              f"requests per VM up {up_per_vm:.3f} and down {down_per_vm:.3f} (target <= 1.1x the minimum)")
        out = {"bench": "provisioning", "args": vars(args), "join_legs": legs, "join_median": med,
               "scale": {"vms": n, "up_s": up_s, "down_s": down_s, "up_cpu_ms_per_vm": up_cpu / n * 1000,
                         "down_cpu_ms_per_vm": down_cpu / n * 1000, "up_calls": up_calls, "down_calls": down_calls,
                         "up_requests_per_vm": up_per_vm, "down_requests_per_vm": down_per_vm,
                         "validate_calls": create_calls},
               "target_met": ok}
        print(json.dumps(out))
        return out
    finally:
        for proc in vms_procs:
            proc.stop()
        if plane is not None:
            plane.stop()
        if moto is not None:
            moto.stop()
        if bao is not None:
            bao.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _pools(c):
    out = []
    for name in ("join", "scale"):
        try:
            out.append(c.GetCloudPool(p.GetCloudPoolRequest(name=name)).spec)
        except Exception:  # noqa: BLE001 - NOT_FOUND: gone
            pass
    return out


if __name__ == "__main__":
    sys.exit(0 if main()["target_met"] else 1)
