"""`stratum app show|runs|logs|run-now NAME`: an app's instances, its runs, its log streamed from the
node that holds it (over the control plane: nodes dial out, so only their session reaches them).

There is no `stratum app list`: the API has no call listing apps (Terraform state is the list).
Heavy imports (grpc, rich, the stubs) happen in run(), so building the parser stays cheap for
`stratum node` on a small device.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

ACTIVE_RUN_STATES = ("pending", "running")
TAIL_BYTES_PER_LINE = 1024  # bytes asked per line of --tail (the API counts bytes, --tail counts lines)
MAX_TAIL_BYTES = 16 << 20
WATCH_INTERVAL_S = 1.0  # how often a followed run's state is read
QUIET_S = 2.0  # a run that ended is followed until its log has been quiet this long
FIRST_CHUNK_BYTES = 64 * 1024  # a node sends a log's tail in chunks of up to this (node_daemon/apps/manager.py)


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="apps: show one, list its runs, stream its log, start a run")
    p.add_argument("--endpoint", default=os.environ.get("STRATUM_ENDPOINT", "127.0.0.1:7443"))
    p.add_argument("--token", default=os.environ.get("STRATUM_TOKEN"), help="admin token (env STRATUM_TOKEN)")
    p.add_argument("--ca-cert", default=os.environ.get("STRATUM_CA_CERT"), help="path to ca.pem (env STRATUM_CA_CERT)")
    p.add_argument("--data-dir", default=None, help="read token and CA from a control plane data dir")
    asub = p.add_subparsers(dest="app_command", required=True)
    s = asub.add_parser("show", help="state, instances, endpoints, latest and next run")
    s.add_argument("name")
    r = asub.add_parser("runs", help="runs of a batch or periodic app, newest first")
    r.add_argument("name")
    r.add_argument("--limit", type=int, default=20, help="most recent runs to show (1-1000, default 20)")
    lg = asub.add_parser("logs", help="an app's log, from the node holding it")
    lg.add_argument("name")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing what is appended (Ctrl-C ends it)")
    lg.add_argument("--run", type=int, default=0, help="run number (batch/periodic; default: the latest run)")
    lg.add_argument("--instance", type=int, default=0, help="instance index (service apps; default 0)")
    lg.add_argument("-n", "--tail", type=int, default=None,
                    help="start with the last N lines (default: the last 64 KiB)")
    n = asub.add_parser("run-now", help="start a run of a batch or periodic app now")
    n.add_argument("name")


def run(args) -> int:
    from rich.console import Console

    from stratum.client import Client, ClientError

    err = Console(stderr=True, highlight=False)
    try:
        _check_args(args)
        client = Client(args.endpoint, args.token, args.ca_cert, args.data_dir)
        return {"show": show, "runs": runs, "logs": logs, "run-now": run_now}[args.app_command](client, args)
    except ClientError as e:
        err.print(f"[red]error:[/red] {e}")
        return 1


def _check_args(args) -> None:
    from stratum.client import ClientError

    if args.app_command == "runs" and not 1 <= args.limit <= 1000:
        raise ClientError(f"--limit {args.limit}: give 1 to 1000")
    if args.app_command == "logs":
        if args.run < 0:
            raise ClientError(f"--run {args.run}: run numbers start at 1")
        if args.instance < 0:
            raise ClientError(f"--instance {args.instance}: instance indexes start at 0")
        if args.tail is not None and args.tail < 0:
            raise ClientError(f"--tail {args.tail}: give a number of lines, 0 or more")


# -- formatting ---------------------------------------------------------------------------------
def _when(ts) -> str:
    """A Timestamp as UTC date and time; '-' when unset."""
    if not ts.seconds and not ts.nanos:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts.seconds))


def _duration(run) -> str:
    """Ended minus started; for a run still going, so far (with a '+')."""
    if not run.HasField("started_at"):
        return "-"
    start = run.started_at.ToNanoseconds() / 1e9
    if run.HasField("ended_at"):
        return _seconds(run.ended_at.ToNanoseconds() / 1e9 - start)
    return _seconds(time.time() - start) + "+" if run.state == "running" else "-"


def _seconds(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


STATE_STYLE = {"succeeded": "green", "ready": "green", "running": "cyan", "healthy": "green", "pending": "yellow",
               "failed": "red", "lost": "red", "unhealthy": "red", "missed": "yellow", "skipped": "dim"}


def _state(s: str) -> str:
    style = STATE_STYLE.get(s)
    return f"[{style}]{s}[/{style}]" if style else s


def runs_table(name: str, runs, dataset: str = ""):
    """A rich Table of AppRun messages (newest first, as ListAppRuns returns them)."""
    from rich.table import Table

    table = Table(title=f"runs of app {name}" + (f" (outputs → dataset {dataset})" if dataset else ""))
    for col, justify in (("#", "right"), ("state", "left"), ("scheduled for (UTC)", "left"), ("started (UTC)", "left"),
                         ("ended (UTC)", "left"), ("duration", "right"), ("exit", "right"), ("attempts", "right"),
                         ("dataset version", "right"), ("node", "left"), ("message", "left")):
        table.add_column(col, justify=justify)
    for r in runs:
        table.add_row(str(r.number), _state(r.state), _when(r.scheduled_for), _when(r.started_at), _when(r.ended_at),
                      _duration(r), str(r.exit_code) if r.HasField("exit_code") else "-", str(r.attempts),
                      str(r.dataset_version) if r.dataset_version else "-", r.node_name or "-", r.message)
    return table


# -- subcommands --------------------------------------------------------------------------------
def _get(client, name: str):
    from stratum.v1 import apps_pb2 as a

    return client.call("GetApp", a.GetAppRequest(name=name))


def show(client, args) -> int:
    from rich.console import Console
    from rich.table import Table

    app = _get(client, args.name)
    spec, console = app.spec, Console(highlight=False)
    what = spec.command + (" " + " ".join(spec.args) if spec.args else "")
    console.print(f"app [bold]{spec.name}[/bold]: {spec.kind}, {_state(app.state)}, spec version {app.spec_version}"
                  + (f"; runs {what}" if what.strip() else ""))
    if app.message:
        console.print(f"  {app.message}")
    if spec.connects_to:
        console.print(f"  connects to {', '.join(spec.connects_to)}")
    if spec.kind == "periodic":
        tz = spec.schedule.time_zone or "UTC"
        console.print(f"  schedule {spec.schedule.cron!r} ({tz}); next run {_when(app.next_run_at)} UTC")
    if spec.outputs.dataset:
        console.print(f"  a successful run's output becomes the next version of dataset {spec.outputs.dataset} "
                      f"({spec.outputs.mode or 'replace'})")
    table = Table(title="instances")
    for col in ("#", "node", "state", "restarts", "endpoints", "error"):
        table.add_column(col)
    for i in app.instances:
        table.add_row(str(i.index), i.node_name or "-", _state(i.state), str(i.restarts),
                      ", ".join(f"{k}={v}" for k, v in sorted(i.endpoints.items())) or "-", i.error)
    console.print(table)
    if app.HasField("last_run") and app.last_run.number:
        console.print(runs_table(spec.name, [app.last_run], spec.outputs.dataset))
    return 0


def runs(client, args) -> int:
    from rich.console import Console

    from stratum.client import ClientError
    from stratum.v1 import apps_pb2 as a

    app = _get(client, args.name)
    if app.spec.kind == "service":
        raise ClientError(f"app {args.name} is a service: it has instances, not runs "
                          f"(see `stratum app logs {args.name}`)")
    found = client.call("ListAppRuns", a.ListAppRunsRequest(name=args.name, limit=args.limit)).runs
    console = Console(highlight=False)
    if not found:
        nxt = f"; next run {_when(app.next_run_at)} UTC" if app.spec.kind == "periodic" else ""
        console.print(f"app {args.name} has no runs yet{nxt}")
        return 0
    console.print(runs_table(args.name, found, app.spec.outputs.dataset))
    return 0


def run_now(client, args) -> int:
    from rich.console import Console

    from stratum.v1 import apps_pb2 as a

    r = client.call("RunAppNow", a.RunAppNowRequest(name=args.name))
    Console(highlight=False).print(f"run {r.number} of app {args.name} recorded ({r.state}); "
                                   f"see `stratum app logs {args.name} --run {r.number} --follow`")
    return 0


def logs(client, args) -> int:
    from rich.console import Console

    from stratum.client import ClientError
    from stratum.v1 import apps_pb2 as a

    app = _get(client, args.name)
    err = Console(stderr=True, highlight=False)
    follow, watch = args.follow, None
    if app.spec.kind == "service":
        if args.run:
            raise ClientError(f"--run {args.run}: app {args.name} is a service: it has instances, not runs "
                              f"(use --instance)")
        if args.instance >= len(app.instances) and app.instances:
            raise ClientError(f"--instance {args.instance}: app {args.name} has instances "
                              f"0 to {len(app.instances) - 1}")
        what, number = f"instance {args.instance}", 0
    else:
        if args.instance:
            raise ClientError(f"--instance {args.instance}: app {args.name} is a {app.spec.kind} app: "
                              f"pick a run with --run")
        run = _pick_run(client, args.name, args.run)
        what, number = f"run {run.number}", run.number
        if follow and run.state == "pending":  # no log until its node starts it
            with err.status(f"waiting for {what} of app {args.name} to start"):
                run = _wait_started(client, args.name, run.number)
        # A finished run's log no longer grows: following it would wait for nothing; a running one
        # is followed until it ends.
        follow = follow and run.state in ACTIVE_RUN_STATES
        watch = (lambda: _run_of(client, args.name, number)) if follow else None
    # --tail counts lines, the API bytes. Without --follow the whole answer is cut to the last N
    # lines; with it, only the first chunk can be, which holds the tail when it fits one chunk.
    tail_bytes = 0
    if args.tail is not None:
        tail_bytes = FIRST_CHUNK_BYTES if follow else min(MAX_TAIL_BYTES,
                                                          max(FIRST_CHUNK_BYTES, args.tail * TAIL_BYTES_PER_LINE))
    req = a.StreamAppLogsRequest(name=args.name, run=number, instance=args.instance, follow=follow,
                                 tail_bytes=tail_bytes)
    stream = LogStream(client, req, what, args.tail, err, watch)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends a follow as Ctrl-C does
    try:
        stream.copy_to(sys.stdout.buffer)
    except KeyboardInterrupt:
        stream.cancel()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


class LogStream:
    """One StreamAppLogs call copied to a file. With `watch` (a function returning the followed
    run), a thread ends the follow once that run has ended and the log has gone quiet."""

    def __init__(self, client, req, what: str, tail: int | None, err, watch=None):
        self.client, self.req, self.what, self.tail, self.err, self.watch = client, req, what, tail, err, watch
        self.call = client.stub.StreamAppLogs(req, metadata=client.metadata, timeout=None if req.follow else 60)
        self.last_data = time.monotonic()
        self.ended = None  # the run, once the watcher saw it end
        self._stop = threading.Event()

    def copy_to(self, out) -> None:
        import grpc

        from stratum.client import ClientError

        if self.watch is not None:
            threading.Thread(target=self._watch, daemon=True).start()
        first, held = True, []
        try:
            for chunk in self.call:
                self.last_data = time.monotonic()
                data = chunk.data
                if first:
                    first = False
                    self.err.print(f"[dim]── log of {self.what} of app {self.req.name} on node {chunk.node_name}"
                                   f"{' (following; Ctrl-C to stop)' if self.req.follow else ''} ──[/dim]")
                    if self.tail is not None and self.req.follow:
                        data = _last_lines(data, self.tail)
                if self.tail is not None and not self.req.follow:
                    held.append(data)  # cut to the last N lines once it is all here
                    continue
                out.write(data)
                out.flush()
            if held:
                out.write(_last_lines(b"".join(held), self.tail))
                out.flush()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise ClientError(f"cannot reach the Stratum control plane at {self.client.endpoint}: "
                                      f"{e.details()}") from None
                raise ClientError(f"{e.code().name}: {e.details()}") from None
        finally:
            self._stop.set()
        if self.ended is not None:
            r = self.ended
            self.err.print(f"[dim]── {self.what} of app {self.req.name} ended: {r.state}"
                           + (f", exit code {r.exit_code}" if r.HasField("exit_code") else "") + " ──[/dim]")
        elif first:
            self.err.print(f"[dim]the log of {self.what} of app {self.req.name} is empty[/dim]")

    def cancel(self) -> None:
        self._stop.set()
        self.call.cancel()

    def _watch(self) -> None:
        from stratum.client import ClientError

        while not self._stop.wait(WATCH_INTERVAL_S):
            try:
                run = self.watch()
            except ClientError:
                continue  # the stream itself reports a control plane that went away
            if run is not None and run.state not in ACTIVE_RUN_STATES:
                # The node sends what is appended every half second: wait for the log to go quiet.
                while not self._stop.wait(0.2):
                    if time.monotonic() - self.last_data >= QUIET_S:
                        self.ended = run
                        self.call.cancel()
                        return
                return


def _run_of(client, name: str, number: int):
    """Run `number` of an app (None once it is older than the last 1000)."""
    from stratum.v1 import apps_pb2 as a

    latest = client.call("ListAppRuns", a.ListAppRunsRequest(name=name, limit=1)).runs
    if not latest:
        return None
    depth = latest[0].number - number + 1
    if depth > 1000:
        return None
    runs = client.call("ListAppRuns", a.ListAppRunsRequest(name=name, limit=max(1, depth))).runs
    return next((r for r in runs if r.number == number), None)


def _wait_started(client, name: str, number: int):
    while True:
        run = _run_of(client, name, number)
        if run is None or run.state != "pending":
            return run
        time.sleep(WATCH_INTERVAL_S)


def _pick_run(client, name: str, number: int):
    """The run asked for (or the latest), with a message naming what exists when it is not there."""
    from stratum.client import ClientError
    from stratum.v1 import apps_pb2 as a

    latest = client.call("ListAppRuns", a.ListAppRunsRequest(name=name, limit=1)).runs
    if not latest:
        raise ClientError(f"app {name} has no runs yet")
    if not number:
        return latest[0]
    if number > latest[0].number:
        raise ClientError(f"--run {number}: app {name} has runs 1 to {latest[0].number}")
    # Older than the last 1000 runs: the log may still be on its node, ask for it blind.
    return _run_of(client, name, number) or a.AppRun(number=number, state="succeeded")


def _last_lines(data: bytes, n: int) -> bytes:
    if n == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:])


def _interrupt(signum, frame):
    raise KeyboardInterrupt
