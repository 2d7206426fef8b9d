"""`stratum demo`: the whole product on the embedded default, on this machine.

Starts a control plane (SQLite), two node daemons (an edge and a fog node),
installs the provider, and runs `terraform apply` on modules/examples/quickstart,
which issues a fleet join token and lists the nodes; then on
modules/examples/smart-traffic, which trains congestion models on a generated traffic
dataset, packages the best as a BentoML service and serves it on a node, and sends it
requests, printing the predictions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing

from rich.console import Console
from rich.table import Table

from stratum.client import Client, ClientError
from stratum.v1 import control_plane_pb2 as cp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = [("edge-1", "edge", "zone=north"), ("fog-1", "fog", "zone=central")]
NODE_COLUMNS = ("name", "tier", "state", "cpu_cores", "memory_mb", "arch", "addresses")


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, workdir: str, console: Console):
        self.workdir, self.console = workdir, console
        self.procs: list[subprocess.Popen] = []
        self.logs = os.path.join(workdir, "logs")
        os.makedirs(self.logs, exist_ok=True)

    def spawn(self, name: str, *args: str) -> None:
        with open(os.path.join(self.logs, f"{name}.log"), "ab") as log:
            self.procs.append(subprocess.Popen([sys.executable, "-m", "cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def wait(self, what: str, cond, timeout: float = 60):
        with self.console.status(what):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if any(p.poll() is not None for p in self.procs):
                    raise RuntimeError(f"a process exited early while waiting for {what}; logs in {self.logs}")
                try:
                    if cond():
                        self.console.print(f"[green]✓[/green] {what}")
                        return
                except ClientError:
                    pass
                time.sleep(0.3)
        raise RuntimeError(f"timed out waiting for {what}; logs in {self.logs}")

    def terraform(self, env: dict, cwd: str, *args: str) -> str:
        with self.console.status(f"terraform {args[0]}"):
            res = subprocess.run(["terraform", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise RuntimeError(f"terraform {args[0]} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        self.console.print(f"[green]✓[/green] terraform {' '.join(args[:1])}")
        return res.stdout

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def smart_traffic(demo: Demo, env: dict, tf_dir: str, c: Client) -> None:
    """Apply the smart-traffic example, show the leaderboard, and POST a few requests to the endpoint."""
    import urllib.request

    import pandas as pd

    console = demo.console
    demo.terraform(env, tf_dir, "init", "-input=false", "-no-color")
    console.print("training candidates, packaging the best as a BentoML service, starting a replica (a minute or two)")
    demo.terraform(env, tf_dir, "apply", "-auto-approve", "-input=false", "-no-color")
    out = json.loads(demo.terraform(env, tf_dir, "output", "-json"))
    model, endpoint = out["model"]["value"], out["endpoint"]["value"]
    board = Table(title=f"stratum_model.congestion version {model['version']}: leaderboard (3-fold accuracy)")
    board.add_column("candidate")
    board.add_column("accuracy", justify="right")
    for line in model["leaderboard"]:
        name, _, score = line.rpartition(": ")
        board.add_row(name, score[:6])
    console.print(board)
    rows = pd.read_csv(os.path.join(tf_dir, "data", "traffic.csv")).sample(8, random_state=3)
    truth = rows.pop("congestion").tolist()
    instances = json.loads(rows.to_json(orient="records"))
    req = urllib.request.Request(endpoint + "/predict", data=json.dumps({"instances": instances}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        predictions = json.loads(r.read())["predictions"]
    table = Table(title=f"POST {endpoint}/predict")
    for col in ("intersection", "hour", "weather", "vehicles_per_min", "predicted", "actual"):
        table.add_column(col)
    for inst, pred, actual in zip(instances, predictions, truth):
        table.add_row(inst["intersection"], str(inst["hour"]), inst["weather"], str(inst["vehicles_per_min"]), pred, actual)
    console.print(table)


def run(args) -> int:
    console = Console()
    if not shutil.which("terraform"):
        console.print("[red]error:[/red] terraform is not on PATH")
        return 1
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="stratum-demo-"))
    demo = Demo(workdir, console)
    data_dir = os.path.join(workdir, "control-plane")
    endpoint = f"127.0.0.1:{_free_port()}"
    try:
        demo.spawn("control-plane", "control-plane", "--data-dir", data_dir, "--listen", endpoint,
                   "--node-listen", f"127.0.0.1:{_free_port()}", "--heartbeat-interval", "2s", "--node-timeout", "6s")
        client: list[Client] = []

        def control_plane_up():
            if not os.path.exists(os.path.join(data_dir, "join.token")):
                return False
            client[:] = client or [Client(endpoint, None, None, data_dir)]
            return client[0].call("GetStatus", cp.GetStatusRequest(), timeout=2)

        demo.wait(f"control plane on {endpoint} (data dir {data_dir})", control_plane_up)
        c = client[0]
        join_token = open(os.path.join(data_dir, "join.token")).read().strip()
        for name, tier, label in NODES:
            demo.spawn(f"node-{name}", "node", "--server", endpoint, "--join-token", join_token, "--name", name,
                       "--tier", tier, "--label", label, "--data-dir", os.path.join(workdir, f"node-{name}"))
        demo.wait("two node daemons enrolled and ready",
                  lambda: sum(n.state == "ready" for n in c.call("ListNodes", cp.ListNodesRequest()).nodes) == len(NODES))

        home = os.path.join(workdir, "home")
        os.makedirs(home, exist_ok=True)
        rc = os.path.join(home, ".terraformrc")
        open(rc, "a").close()
        env = {**os.environ, "HOME": home, "TF_CLI_CONFIG_FILE": rc, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
               "STRATUM_ENDPOINT": endpoint, "STRATUM_TOKEN": open(os.path.join(data_dir, "admin.token")).read().strip(),
               "STRATUM_CA_CERT": os.path.join(data_dir, "ca.pem")}
        subprocess.run([sys.executable, "-m", "cli", "provider", "install"], env=env, check=True, capture_output=True)
        console.print("[green]✓[/green] provider installed in the implied local mirror")
        modules = os.path.join(workdir, "modules")
        shutil.copytree(os.path.join(REPO, "modules"), modules, dirs_exist_ok=True)
        tf_dir = os.path.join(modules, "examples", "quickstart")
        demo.terraform(env, tf_dir, "init", "-input=false", "-no-color")
        demo.terraform(env, tf_dir, "apply", "-auto-approve", "-input=false", "-no-color")
        nodes = json.loads(demo.terraform(env, tf_dir, "output", "-json", "nodes"))

        table = Table(title="data.stratum_nodes.all (from terraform output)")
        for col in NODE_COLUMNS:
            table.add_column(col)
        for n in nodes:
            table.add_row(*(", ".join(v) if isinstance(v, list) else str(v) for v in (n[k] for k in NODE_COLUMNS)))
        console.print(table)
        token = c.call("GetJoinToken", cp.GetJoinTokenRequest(name="north-fleet"))
        console.print(f"join token [bold]north-fleet[/bold] issued by terraform: tier {token.spec.tier}, "
                      f"{token.uses}/{token.spec.max_uses} uses (secret in `terraform output -raw north_fleet_join_token`)")
        smart_traffic(demo, env, os.path.join(modules, "examples", "smart-traffic"), c)
        if args.keep:
            console.print(f"left running; terraform dir {tf_dir}; stop with: kill {' '.join(str(p.pid) for p in demo.procs)}")
            demo.procs = []
        return 0
    except (RuntimeError, ClientError, subprocess.CalledProcessError) as e:
        console.print(f"[red]demo failed:[/red] {e}", highlight=False)
        return 1
    finally:
        demo.stop()
