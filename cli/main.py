"""The `stratum` command line: the argument parser and the dispatch to each daemon or tool.

It lives outside stratum/ because it imports every daemon, and stratum/ is the base layer they
share. Subcommands import their module lazily so `stratum node` on a small device never loads
control-plane code, and the reverse.
"""

from __future__ import annotations

import argparse
import os
import sys


def _add_control_plane(sub) -> None:
    p = sub.add_parser("control-plane", help="run the control plane daemon")
    p.add_argument("--data-dir", required=True, help="directory for the CA, tokens and the embedded store")
    p.add_argument("--listen", default="127.0.0.1:7443", help="HOST:PORT of the public TLS API (ControlPlane, and Enroll for nodes)")
    p.add_argument("--node-listen", default=None, help="HOST:PORT of the mTLS node listener (default: listen port + 1)")
    p.add_argument("--store", default=None, help="postgresql://... to use PostgreSQL; default: SQLite in the data dir")
    p.add_argument("--heartbeat-interval", default="5s", help="how often nodes send heartbeats")
    p.add_argument("--node-timeout", default="15s", help="silence after which a node is marked down")
    p.add_argument("--advertise", action="append", default=[], help="extra host name or IP for the server certificate (repeatable)")
    p.add_argument("--training-workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                   help="worker processes one model training uses (default: up to 2)")
    p.add_argument("--retrain-interval", default="30s", help="how often retraining triggers (max_age, drift) are checked")
    p.add_argument("--pool-interval", default="5s", help="how often cloud pools are reconciled (also at once on a change)")
    p.add_argument("--metrics-listen", default="", help="HOST:PORT to serve Prometheus metrics on (/metrics); default: none")
    p.add_argument("--autoscale-interval", default="30s", help="how often autoscaled services get a replica count")
    p.add_argument("--history-retention", default="7d",
                   help="how long stored series are kept (node utilisation, service minutes, scaling, drift)")
    p.add_argument("--ui-listen", default=None,
                   help="HOST:PORT of the web dashboard (HTTPS, the control plane's certificate); default: the "
                        "--listen host and its port + 2; `off` for none")
    p.add_argument("--ui-session-ttl", default="8h", help="how long a dashboard login lasts")
    p.add_argument("--lease-ttl", default="10s",
                   help="with several control planes on one PostgreSQL: how long the leader's lease lasts "
                        "(a follower takes over this long after the leader is gone)")
    p.add_argument("--cluster-key-file", default=None,
                   help="with several control planes on one PostgreSQL: the cluster key that opens the shared CA key "
                        "and admin token (the first control plane writes it to its data dir as cluster.key)")
    p.add_argument("--history-interval", default="15s",
                   help="how often stored series are sampled (each is written at most once a minute)")
    p.add_argument("--log-level", default="INFO")


def _add_node(sub) -> None:
    p = sub.add_parser("node", help="run the node daemon on this machine")
    p.add_argument("--server", required=True, help="HOST:PORT of the control plane's public listener")
    p.add_argument("--join-token", default=os.environ.get("STRATUM_JOIN_TOKEN"), help="join token (only needed the first time; env STRATUM_JOIN_TOKEN)")
    p.add_argument("--name", default=None, help="node name (default: host name)")
    p.add_argument("--tier", default="", help="edge, fog or cloud (default: the join token's tier)")
    p.add_argument("--label", action="append", default=[], help="k=v label, repeatable (merged over the token's labels)")
    p.add_argument("--data-dir", required=True, help="directory for the node's identity and cache")
    p.add_argument("--ca-cert", default=None, help="CA certificate PEM, instead of discovering it with the join token's fingerprint")
    p.add_argument("--serve-host", default="127.0.0.1",
                   help="address service endpoints listen on (0.0.0.0 for every interface)")
    p.add_argument("--advertise-host", default=None,
                   help="host put in service endpoint URLs (default: --serve-host, or the node's first address for 0.0.0.0)")
    p.add_argument("--cache-size", default="4096", help="bento cache size limit in MiB")
    p.add_argument("--cgroups", choices=("auto", "off"), default="auto",
                   help="run each replica in a cgroup of its own, so its cpu quota and memory limit can change "
                        "while it serves (vertical scaling): auto uses cgroup v2, else v1, when writable")
    p.add_argument("--metrics-listen", default="", help="HOST:PORT to serve Prometheus metrics on (/metrics); default: none")
    p.add_argument("--binary", action="append", default=[],
                   help="a program to report to the control plane when found on PATH (requirements.binaries), "
                        "beyond the built-in catalogue; repeatable")
    p.add_argument("--log-level", default="INFO")


def _add_provider(sub) -> None:
    p = sub.add_parser("provider", help="Terraform provider tools")
    psub = p.add_subparsers(dest="provider_command", required=True)
    i = psub.add_parser("install", help="install terraform-provider-stratum where an offline `terraform init` finds it")
    i.add_argument("--plugins-dir", default=None, help="implied local mirror root (default: ~/.terraform.d/plugins)")


def _add_status(sub) -> None:
    p = sub.add_parser("status", help="show the control plane and its nodes")
    p.add_argument("--endpoint", default=os.environ.get("STRATUM_ENDPOINT", "127.0.0.1:7443"))
    p.add_argument("--token", default=os.environ.get("STRATUM_TOKEN"), help="admin token (env STRATUM_TOKEN)")
    p.add_argument("--ca-cert", default=os.environ.get("STRATUM_CA_CERT"), help="path to ca.pem (env STRATUM_CA_CERT)")
    p.add_argument("--data-dir", default=None, help="read token and CA from a control plane data dir")


def _add_model(sub) -> None:
    p = sub.add_parser("model", help="models: show one, download a version's training script, retrain")
    p.add_argument("--endpoint", default=os.environ.get("STRATUM_ENDPOINT", "127.0.0.1:7443"))
    p.add_argument("--token", default=os.environ.get("STRATUM_TOKEN"), help="admin token (env STRATUM_TOKEN)")
    p.add_argument("--ca-cert", default=os.environ.get("STRATUM_CA_CERT"), help="path to ca.pem (env STRATUM_CA_CERT)")
    p.add_argument("--data-dir", default=None, help="read token and CA from a control plane data dir")
    msub = p.add_subparsers(dest="model_command", required=True)
    g = msub.add_parser("show", help="versions, leaderboard and the current operation")
    g.add_argument("name")
    s = msub.add_parser("script", help="write a version's plain scikit-learn training script")
    s.add_argument("name")
    s.add_argument("--version", default="", help="version (default: the serving one)")
    s.add_argument("-o", "--output", default=None, help="file to write (default: the suggested name; - for stdout)")
    r = msub.add_parser("retrain", help="train a new version now on the dataset's current content")
    r.add_argument("name")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the whole demo on the embedded default (SQLite, local node daemons)")
    p.add_argument("--workdir", default=None, help="where to keep the demo's data (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="leave the control plane and nodes running at the end")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratum", description="ML services across cloud, fog and edge")
    sub = parser.add_subparsers(dest="command", required=True)
    from cli.app import add_parser as _add_app  # their parsers live beside the commands (cheap to import)
    from cli.token import add_parser as _add_token

    for add in (_add_control_plane, _add_node, _add_provider, _add_status, _add_model, _add_app, _add_token, _add_demo):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "control-plane":
            from control_plane.main import run
        elif args.command == "node":
            from node_daemon.main import run
        elif args.command == "provider":
            from provider.install import run
        elif args.command == "status":
            from cli.status import run
        elif args.command == "model":
            from cli.model import run
        elif args.command == "app":
            from cli.app import run
        elif args.command == "token":
            from cli.token import run
        else:
            from cli.demo import run
        return run(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
