"""`stratum control-plane`: bootstrap the data dir, open the store, serve."""

from __future__ import annotations

import asyncio
import os
import sys

from rich.console import Console

from control_plane.datadir import cert_hosts, open_data_dir
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
    except ValueError as e:
        return _fail(str(e))
    if timeout <= interval:
        return _fail(f"--node-timeout ({args.node_timeout}) must be longer than --heartbeat-interval ({args.heartbeat_interval})")
    dd = open_data_dir(os.path.abspath(args.data_dir), cert_hosts([host, node_host], args.advertise))
    try:
        store = Store(args.store, dd.path)
    except Exception as e:  # noqa: BLE001 - one clear line, never a traceback (and never the URL's password)
        return _fail(f"cannot open store ({type(e).__name__}): {str(e).splitlines()[0] if str(e) else ''}")
    # The bootstrap join token: created once, idempotently, and written where the operator finds it.
    tokens = JoinTokens(store, pki.fingerprint(dd.ca_cert_pem))
    row = tokens.create(cp.JoinTokenSpec(name=BOOTSTRAP_TOKEN, tier="edge", description="created at first start"))
    pki.write_private(dd.join_token_path, tokens.secret_text(row) + "\n")

    console = Console(stderr=True)
    console.print(f"[bold]Stratum control plane[/bold] ({store.kind} store, data dir {dd.path})", highlight=False)
    console.print(f"  CA certificate: {dd.ca_path}\n  admin token:    {dd.admin_token_path}\n  join token:     {dd.join_token_path}", highlight=False)
    if args.training_workers < 1:
        return _fail(f"--training-workers must be at least 1, not {args.training_workers}")
    cfg = Config(dd, store, args.listen, node_listen, interval, timeout, retrain_interval=retrain_interval,
                 training_workers=args.training_workers, pool_interval=pool_interval, metrics_listen=args.metrics_listen,
                 autoscale_interval=autoscale_interval)
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
