"""`stratum node`: check the flags, load or create the node's identity, run its session."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

from node_daemon import agent, identity
from node_daemon.enroll import EnrollError, enroll_any
from stratum import logs
from stratum.grpc_util import split_endpoint
from stratum.logs import event
from stratum.validation import check_name, check_tier, parse_label_flags

log = logging.getLogger("stratum.node")


def _fail(msg: str, code: int) -> int:
    # One line, no traceback: this is what an operator reads at a console.
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return code


class _Interrupted(Exception):
    pass


def _interrupt(signum, frame):
    raise _Interrupted()


def default_name() -> str:
    # Node names are DNS-label-like; host names may carry a domain or capitals.
    return socket.gethostname().split(".")[0].lower()


def run(args) -> int:
    logs.setup("node", args.log_level)
    try:
        labels = parse_label_flags(args.label or [])
        servers = [x.strip() for x in args.server.split(",") if x.strip()]
        if not servers:
            raise ValueError("--server: give HOST:PORT (several control planes: HOST:PORT,HOST:PORT,...)")
        for x in servers:
            split_endpoint(x)
    except ValueError as e:
        return _fail(str(e), 2)
    try:
        if args.metrics_listen:
            split_endpoint(args.metrics_listen, listen=True)
    except ValueError as e:
        return _fail(f"--metrics-listen: {e}", 2)
    problems = check_tier(args.tier or "", "--tier", allow_empty=True)
    if args.name:
        problems += check_name(args.name, "--name")
    if problems:
        return _fail("; ".join(f"{f}: {d}" for f, d in problems), 2)

    from node_daemon.capabilities import binaries

    binaries.EXTRA[:] = [b for b in args.binary if b]
    data_dir = os.path.abspath(args.data_dir)
    # Until the asyncio loop takes over, SIGTERM/SIGINT end enrollment cleanly too.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        identity.prepare_dir(data_dir)
        ident = identity.load(data_dir)
        if ident is None:
            if not args.join_token:
                return _fail(f"{data_dir} holds no node identity yet: give --join-token (or STRATUM_JOIN_TOKEN) to enroll", 2)
            name = args.name or default_name()
            if check_name(name):
                return _fail(f"the host name {name!r} is not a valid node name: give --name (lowercase letters, digits and '-')", 2)
            ident = enroll_any(servers, join_token=args.join_token, name=name, tier=args.tier or "",
                               labels=labels, data_dir=data_dir, ca_cert_path=args.ca_cert)
        else:
            event(log, "loaded identity; not enrolling again", node_id=ident.node_id, name=ident.name)
            if args.name and args.name != ident.name:
                event(log, "--name differs from the enrolled name; keeping the enrolled identity", level=logging.WARNING,
                      name=args.name, enrolled_name=ident.name)
    except _Interrupted:
        return 0
    except EnrollError as e:
        return _fail(str(e), e.exit_code)
    except (identity.IdentityError, OSError) as e:
        return _fail(str(e), 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if args.metrics_listen:
        from node_daemon import metrics

        try:
            metrics.serve(args.metrics_listen)
        except OSError as e:
            return _fail(f"--metrics-listen {args.metrics_listen}: {e}", 1)
        event(log, "prometheus metrics", url=f"http://{args.metrics_listen}/metrics")
    asyncio.run(_serve(ident, labels, args))
    return 0


async def _serve(ident, labels, args) -> None:
    """The agent plus what it runs: bento cache and replica runner, artifact cache and the exec driver
    for apps, all under the data dir."""
    from node_daemon.apps.artifacts import ArtifactCache
    from node_daemon.apps.driver import ExecDriver
    from node_daemon.apps.manager import AppManager
    from node_daemon.replicas.cache import BentoCache
    from node_daemon.services import ServiceManager
    from stratum.runtime.runner import ReplicaRunner

    cache = BentoCache(os.path.join(ident.data_dir, "bentos"), max_bytes=int(float(args.cache_size) * 2**20))
    cgroups = None
    if args.cgroups == "auto":
        from stratum.runtime.cgroups import Cgroups

        cgroups = Cgroups.usable(prefix=f"stratum/{ident.node_id}")
        event(log, "replica cgroups", mode=cgroups.mode if cgroups else "none (no vertical scaling)")
    runner = ReplicaRunner(cache.bentoml_home, os.path.join(ident.data_dir, "replicas"), host="127.0.0.1",
                           cgroups=cgroups)
    reaped = runner.reap_stale()  # replicas a killed daemon left behind: we start afresh from assignments
    if reaped:
        event(log, "stopped replicas left by an earlier run", pids=reaped)
    advertise = args.advertise_host or (args.serve_host if args.serve_host not in ("0.0.0.0", "::") else None)
    if advertise is None:
        from node_daemon.capabilities import collect

        # in a thread: pyroute2's netlink socket runs an event loop of its own, which cannot nest in ours
        caps = await asyncio.to_thread(collect, ident.data_dir)
        ips = [a.split("/")[0] for i in caps.interfaces for a in i.addresses]
        advertise = next((ip for ip in ips if not ip.startswith(("127.", "fe80:")) and ip != "::1"), "127.0.0.1")
    manager = ServiceManager(runner, cache, fetch=None, serve_host=args.serve_host, advertise_host=advertise)
    apps = AppManager(ExecDriver(os.path.join(ident.data_dir, "apps"), cgroups=cgroups, serve_host=args.serve_host,
                                 advertise_host=advertise, node_name=ident.name),
                      ArtifactCache(os.path.join(ident.data_dir, "artifacts"), max_bytes=int(float(args.cache_size) * 2**20)))
    apps.start()  # app processes a killed daemon left behind are stopped too; runs they held go on below
    from node_daemon.dask_workers import DaskWorkers

    dask = DaskWorkers(ident.data_dir, ident.name, ident.ca_pem)
    await agent.serve(ident, labels, args.server, manager, apps, dask)
