"""`stratum demo`: the whole product on the embedded default, on this machine.

Starts a control plane (SQLite), three node daemons (an edge, a fog and a local node labelled
cloud), installs the provider, and runs `terraform apply` on modules/examples/quickstart, which
issues a fleet join token and lists the nodes; then on modules/examples/smart-traffic, which trains
congestion models on a generated traffic dataset, serves the best as a BentoML service, and runs
the analytics pipeline around it: an MQTT broker and a stream processor calling the model on the
fog node, sensors on the edge, a dashboard, and a periodic aggregate job on the cloud node whose
output becomes the dataset's next version. It watches the pipeline (cli/demo_pipeline.py) until
readings flow and a run has made a dataset version, prints the figures, then stops everything,
or with --keep leaves it running and prints how to look at it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing

from rich.console import Console
from rich.live import Live
from rich.table import Table

from cli.demo_pipeline import PipelineWatch, view
from stratum.client import Client, ClientError
from stratum.v1 import control_plane_pb2 as cp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# An edge, a fog and a local node labelled cloud, so the periodic aggregate job has a place.
NODES = [("edge-1", "edge", "zone=north"), ("fog-1", "fog", "zone=central"), ("cloud-1", "cloud", "zone=central")]
STOP_GRACE_S = 30  # the longest kill_timeout of the pipeline's apps is 12 s
NODE_COLUMNS = ("name", "tier", "state", "cpu_cores", "memory_mb", "arch", "addresses")


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, workdir: str, console: Console):
        self.workdir, self.console = workdir, console
        self.procs: list[subprocess.Popen] = []
        self.dashboard = ""  # Stratum's web dashboard, served by the control plane
        self.logs = os.path.join(workdir, "logs")
        os.makedirs(self.logs, exist_ok=True)

    def spawn(self, name: str, *args: str) -> None:
        with open(os.path.join(self.logs, f"{name}.log"), "ab") as log:
            self.procs.append(subprocess.Popen([sys.executable, "-m", "cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def check_alive(self, what: str) -> None:
        if any(p.poll() is not None for p in self.procs):
            raise RuntimeError(f"a process exited early while waiting for {what}; logs in {self.logs}")

    def wait(self, what: str, cond, timeout: float = 60):
        with self.console.status(what):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self.check_alive(what)
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
        """SIGTERM to the node daemons, which stop their apps (SIGTERM, then SIGKILL after each app's
        kill_timeout), then to the control plane. A node daemon gets the time that takes before a
        SIGKILL: apps run in sessions of their own, and a SIGKILLed daemon would leave them running."""
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


# The pipeline runs as in production, save two settings, written to demo.auto.tfvars.json in the
# demo's copy of the example (so a later `terraform plan` there agrees): the aggregate job runs
# every minute (a run shows up while the demo watches), and the broker takes any free port (1883
# may be taken on this machine).
PIPELINE_VARS = {"aggregate_cron": "* * * * *", "broker_port": 0}
WATCH_TIMEOUT_S = 240  # flow measured over a window, then a scheduled run: at most ~2 cron minutes
SAMPLE_EVERY_S = 2.0


def smart_traffic(demo: Demo, env: dict, tf_dir: str, c: Client) -> PipelineWatch:
    """Apply the smart-traffic example (the model, its service and the pipeline around it), show the
    leaderboard, then watch the pipeline until readings flow and the aggregate job has made a
    dataset version."""
    console = demo.console
    demo.terraform(env, tf_dir, "init", "-input=false", "-no-color")
    console.print("training candidates, packaging the best as a BentoML service, starting it and the pipeline "
                  "around it: broker, sensors, processor, dashboard, aggregate (a few minutes)")
    with open(os.path.join(tf_dir, "demo.auto.tfvars.json"), "w") as f:
        json.dump(PIPELINE_VARS, f, indent=2)
    demo.terraform(env, tf_dir, "apply", "-auto-approve", "-input=false", "-no-color")
    out = json.loads(demo.terraform(env, tf_dir, "output", "-json"))
    model = out["model"]["value"]
    board = Table(title=f"stratum_model.congestion version {model['version']}: leaderboard (3-fold accuracy)")
    board.add_column("candidate")
    board.add_column("accuracy", justify="right")
    for line in model["leaderboard"]:
        name, _, score = line.rpartition(": ")
        board.add_row(name, score[:6])
    console.print(board)

    watch = PipelineWatch(c)
    deadline = time.monotonic() + WATCH_TIMEOUT_S
    with Live(view(watch.sample()), console=console, refresh_per_second=2) as live:
        while not (watch.flowing() and watch.batch_done()):
            if time.monotonic() > deadline:
                break
            demo.check_alive("the pipeline")
            time.sleep(SAMPLE_EVERY_S)
            live.update(view(watch.sample()))
    # Live leaves its last view on the screen (and prints it once where stdout is not a terminal):
    # the tables and figure_lines(), read by tests/integration/test_demo.py.
    console.print()  # where stdout is not a terminal, that view ends without a newline
    if not watch.flowing():
        raise RuntimeError(f"no readings reached the processor within {WATCH_TIMEOUT_S} s; the apps' logs are "
                           f"in {demo.workdir}/node-*/apps/*/logs (with --keep: `stratum app logs processor`)")
    if not watch.batch_done():
        raise RuntimeError(f"the aggregate job made no dataset version within {WATCH_TIMEOUT_S} s; its runs' logs "
                           f"are in {demo.workdir}/node-*/apps/aggregate-0/runs (with --keep: "
                           f"`stratum app runs aggregate`)")
    return watch


def write_helpers(demo: Demo, env: dict, data_dir: str) -> tuple[str, str]:
    """env.sh (what to export to use the CLI and terraform on the demo) and stop.sh (stops the node
    daemons, which stop their apps, then the control plane). Neither holds the admin token itself."""
    env_sh, stop_sh = os.path.join(demo.workdir, "env.sh"), os.path.join(demo.workdir, "stop.sh")
    with open(env_sh, "w") as f:
        f.write(f"# source {env_sh}\n"
                f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH\n"
                f"export STRATUM_ENDPOINT={shlex.quote(env['STRATUM_ENDPOINT'])}\n"
                f"export STRATUM_TOKEN=\"$(cat {shlex.quote(os.path.join(data_dir, 'admin.token'))})\"\n"
                f"export STRATUM_CA_CERT={shlex.quote(env['STRATUM_CA_CERT'])}\n"
                f"export TF_CLI_CONFIG_FILE={shlex.quote(env['TF_CLI_CONFIG_FILE'])}\n")
    plane, nodes = demo.procs[0].pid, " ".join(str(p.pid) for p in demo.procs[1:])
    with open(stop_sh, "w") as f:
        f.write(f"""#!/usr/bin/env bash
# Stops the demo in {demo.workdir}: the node daemons first (SIGTERM: each stops its apps and
# replicas), then the control plane; SIGKILL to a process group still there after {STOP_GRACE_S} s.
# Only processes that are still the demo's (their command line names its directory) are signalled.
set -u
workdir={shlex.quote(demo.workdir)}
ours() {{ grep -qF "$workdir" "/proc/$1/cmdline" 2>/dev/null; }}
stop() {{  # stop PID...: SIGTERM to each one's group, wait, SIGKILL what is left
  local pid pids=() i alive
  for pid in "$@"; do ours "$pid" && kill -TERM -- "-$pid" && pids+=("$pid"); done
  for ((i = 0; i < {STOP_GRACE_S * 5}; i++)); do
    alive=0
    for pid in "${{pids[@]}}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${{pids[@]}}"; do
    if kill -0 "$pid" 2>/dev/null; then echo "pid $pid did not stop in {STOP_GRACE_S} s: SIGKILL" >&2; kill -KILL -- "-$pid"; fi
  done
}}
left() {{  # what is still running of the demo: started with its paths or working in its directory,
  # but not this script, what it runs, or the shell it was started from (which may sit in the directory)
  local cwd
  cwd=$(find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$workdir*" 2>/dev/null | cut -d/ -f3 | paste -sd' ')
  ps -eo pid=,ppid=,stat=,args= | awk -v w="$workdir" -v me=$$ -v cwd=" $cwd " '
    {{ parent[$1] = $2; zombie[$1] = $3 ~ /^Z/; named[$1] = index($0, w) > 0 }}
    END {{
      mine[me] = 1  # this script and everything under it
      do {{ grew = 0; for (p in parent) if (!(p in mine) && (parent[p] in mine)) {{ mine[p] = 1; grew = 1 }} }} while (grew)
      for (p = parent[me]; p > 1; p = parent[p]) mine[p] = 1  # and the shells above it
      for (p in parent) if (!(p in mine) && !zombie[p] && (named[p] || index(cwd, " " p " "))) out = out " " p
      print substr(out, 2)
    }}'
}}
stop {nodes}
stop {plane}
# what they stop in turn (a training's replica, an app's last children) gets as long again
for ((i = 0; i < {STOP_GRACE_S * 5}; i++)); do [ -z "$(left)" ] && break; sleep 0.2; done
rest=$(left)
if [ -n "$rest" ]; then
  echo "still running after {STOP_GRACE_S} s, killed:" >&2
  ps -o pid=,args= -p "${{rest// /,}}" >&2
  kill -KILL $rest 2>/dev/null
  exit 1
fi
echo "stopped the demo in $workdir"
""")
    os.chmod(stop_sh, 0o755)
    return env_sh, stop_sh


def print_keep(demo: Demo, watch: PipelineWatch, env_sh: str, stop_sh: str, tf_dir: str) -> None:
    f = watch.figures
    lines = [
        f"[bold]left running[/bold] (data in {demo.workdir}, daemon logs in {demo.logs})",
        f"  Stratum's dashboard:  {demo.dashboard} (log in with the token in {demo.workdir}/control-plane/admin.token;"
        " the certificate is the control plane's own CA, ca.pem there)",
        f"  the traffic app:      {f.dashboard_url}",
        f"  processor counters:   curl {f.processor_url}/stats",
        f"  first, in your shell: source {env_sh}",
        "  (it exports PATH, STRATUM_ENDPOINT, STRATUM_TOKEN from the data dir, STRATUM_CA_CERT, TF_CLI_CONFIG_FILE)",
        "  then:",
        "    stratum status",
        "    stratum app logs processor --follow      # the stream processor, live (Ctrl-C to stop)",
        "    stratum app runs aggregate               # the periodic job's runs, one a minute",
        "    stratum app logs aggregate               # the latest run's log",
        "    stratum app show dashboard",
        "    stratum model show congestion            # versions, retrained from the aggregated history",
        f"    cd {tf_dir} && terraform plan            # the pipeline as configured: no changes",
        f"  stop everything:      {stop_sh}",
    ]
    for line in lines:
        demo.console.print(line, highlight=False)


def run(args) -> int:
    console = Console()
    if not shutil.which("terraform"):
        console.print("[red]error:[/red] terraform is not on PATH")
        return 1
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="stratum-demo-"))
    demo = Demo(workdir, console)
    data_dir = os.path.join(workdir, "control-plane")
    endpoint = f"127.0.0.1:{_free_port()}"
    demo.dashboard = f"https://127.0.0.1:{_free_port()}/"
    try:
        demo.spawn("control-plane", "control-plane", "--data-dir", data_dir, "--listen", endpoint,
                   "--node-listen", f"127.0.0.1:{_free_port()}", "--heartbeat-interval", "2s", "--node-timeout", "6s",
                   "--ui-listen", demo.dashboard.removeprefix("https://").rstrip("/"))
        client: list[Client] = []

        def control_plane_up():
            if not os.path.exists(os.path.join(data_dir, "join.token")):
                return False
            client[:] = client or [Client(endpoint, None, None, data_dir)]
            return client[0].call("GetStatus", cp.GetStatusRequest(), timeout=2)

        demo.wait(f"control plane on {endpoint} (data dir {data_dir}); its dashboard on {demo.dashboard}",
                  control_plane_up)
        c = client[0]
        join_token = open(os.path.join(data_dir, "join.token")).read().strip()
        for name, tier, label in NODES:
            demo.spawn(f"node-{name}", "node", "--server", endpoint, "--join-token", join_token, "--name", name,
                       "--tier", tier, "--label", label, "--data-dir", os.path.join(workdir, f"node-{name}"))
        demo.wait(f"{len(NODES)} node daemons enrolled and ready ({', '.join(n for n, _, _ in NODES)})",
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
        traffic_dir = os.path.join(modules, "examples", "smart-traffic")
        watch = smart_traffic(demo, env, traffic_dir, c)
        if args.keep:
            env_sh, stop_sh = write_helpers(demo, env, data_dir)
            print_keep(demo, watch, env_sh, stop_sh, traffic_dir)
            demo.procs = []
        else:
            console.print("stopping the node daemons (they stop their apps) and the control plane; "
                          "--keep leaves them running")
        return 0
    except (RuntimeError, ClientError, subprocess.CalledProcessError) as e:
        console.print(f"[red]demo failed:[/red] {e}", highlight=False)
        return 1
    finally:
        demo.stop()
