"""`stratum control-plane`: bootstrap the data dir, open the store, serve."""

from __future__ import annotations

import asyncio
import os
import sys

from rich.console import Console

from control_plane.datadir import ClusterKeyError, DataDirBusy, cert_hosts, lock_data_dir, open_data_dir, share_with_cluster
from control_plane.join_tokens import JoinTokens
from control_plane.server import Config, serve
from control_plane.store import Store
from stratum import logs, pki
from stratum.durations import parse_duration
from stratum.grpc_util import split_endpoint
from stratum.v1 import control_plane_pb2 as cp

BOOTSTRAP_TOKEN = "bootstrap"


def _fail(msg: str) -> int:
    Console(stderr=True).print(f"[red]error:[/red] {msg}", highlight=False)
    return 2


def ui_address(flag: str | None, api_host: str, api_port: int) -> str:
    """Where the dashboard listens: `off` (or empty) for nowhere, HOST:PORT as given, by default
    the API's host and its port + 2 (the node listener has + 1), any free port when the API has one."""
    if flag is not None and flag.strip().lower() in ("off", ""):
        return ""
    if flag is None:
        if not api_port:  # the API on any free port: the dashboard too (the log says where)
            return f"[{api_host}]:0" if ":" in api_host else f"{api_host}:0"
        return f"[{api_host}]:{api_port + 2}" if ":" in api_host else f"{api_host}:{api_port + 2}"
    split_endpoint(flag, listen=True)  # a clear error for a malformed one
    return flag.strip()


def run(args) -> int:
    logs.setup("control-plane", args.log_level)
    try:
        host, port = split_endpoint(args.listen, listen=True)
        node_listen = args.node_listen or f"{args.listen.rpartition(':')[0]}:{port + 1 if port else 0}"
        node_host, _ = split_endpoint(node_listen, listen=True)
        interval = parse_duration(args.heartbeat_interval)
        timeout = parse_duration(args.node_timeout)
        retrain_interval = parse_duration(args.retrain_interval)
        pool_interval = parse_duration(args.pool_interval)
        autoscale_interval = parse_duration(args.autoscale_interval)
        history_retention = parse_duration(args.history_retention)
        history_interval = parse_duration(args.history_interval)
        lease_ttl = parse_duration(args.lease_ttl)
        ui_session_ttl = parse_duration(args.ui_session_ttl)
        ui_listen = ui_address(args.ui_listen, host, port)
    except ValueError as e:
        return _fail(str(e))
    if not 1 <= lease_ttl <= 300:
        return _fail(f"--lease-ttl ({args.lease_ttl}) must be from 1s to 5m")
    if history_retention < 3600:
        return _fail(f"--history-retention ({args.history_retention}) must be at least 1h")
    if ui_session_ttl <= 0:
        return _fail(f"--ui-session-ttl ({args.ui_session_ttl}) must be longer than 0s")
    if timeout <= interval:
        return _fail(f"--node-timeout ({args.node_timeout}) must be longer than --heartbeat-interval ({args.heartbeat_interval})")
    hosts = cert_hosts([host, node_host], args.advertise)
    dd = open_data_dir(os.path.abspath(args.data_dir), hosts)
    try:
        lock = lock_data_dir(dd.path)  # noqa: F841 - held until the process ends
    except DataDirBusy as e:
        return _fail(str(e))
    try:
        store = Store(args.store, dd.path)
    except Exception as e:  # noqa: BLE001 - one clear line, never a traceback (and never the URL's password)
        return _fail(f"cannot open store ({type(e).__name__}): {str(e).splitlines()[0] if str(e) else ''}")
    if store.kind == "postgresql":  # other control planes may share it: one CA, one admin token
        try:
            dd = share_with_cluster(dd, store, hosts, args.cluster_key_file)
        except ClusterKeyError as e:
            store.close()
            return _fail(str(e))
    # The bootstrap join token: created once, idempotently, and written where the operator finds it.
    tokens = JoinTokens(store, pki.fingerprint(dd.ca_cert_pem))
    row = tokens.create(cp.JoinTokenSpec(name=BOOTSTRAP_TOKEN, tier="edge", description="created at first start"))
    pki.write_private(dd.join_token_path, tokens.secret_text(row) + "\n")

    console = Console(stderr=True)
    console.print(f"[bold]Stratum control plane[/bold] ({store.kind} store, data dir {dd.path})", highlight=False)
    console.print(f"  CA certificate: {dd.ca_path}\n  admin token:    {dd.admin_token_path}\n  join token:     {dd.join_token_path}", highlight=False)
    if ui_listen:
        console.print(f"  dashboard:      https://{ui_listen} (log in with the admin token or a read access token)",
                      highlight=False)
    if args.training_workers < 1:
        return _fail(f"--training-workers must be at least 1, not {args.training_workers}")
    cfg = Config(dd, store, args.listen, node_listen, interval, timeout, retrain_interval=retrain_interval,
                 training_workers=args.training_workers, pool_interval=pool_interval, metrics_listen=args.metrics_listen,
                 autoscale_interval=autoscale_interval, history_retention=history_retention, ui_listen=ui_listen,
                 ui_session_ttl=ui_session_ttl, history_interval=history_interval, lease_ttl=lease_ttl,
                 advertise=args.advertise[0] if args.advertise else "")
    try:
        asyncio.run(serve(cfg))
    except OSError as e:
        return _fail(str(e))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    from cli.main import main

    sys.exit(main(["control-plane", *sys.argv[1:]]))
