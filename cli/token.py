"""`stratum token create|list|delete`: scoped access tokens (read-only API and dashboard access).

    stratum token create grafana --ttl 30d     # prints the token once: keep it, it is not shown again
    stratum token list
    stratum token delete grafana
"""

from __future__ import annotations

import argparse
import os

from stratum.v1 import access_pb2 as ac


def add_parser(sub) -> None:
    p = sub.add_parser("token", help="access tokens: read-only API and dashboard access for people and tools")
    p.add_argument("--endpoint", default=os.environ.get("STRATUM_ENDPOINT", "127.0.0.1:7443"))
    p.add_argument("--token", default=os.environ.get("STRATUM_TOKEN"), help="admin token (env STRATUM_TOKEN)")
    p.add_argument("--ca-cert", default=os.environ.get("STRATUM_CA_CERT"), help="path to ca.pem (env STRATUM_CA_CERT)")
    p.add_argument("--data-dir", default=None, help="read token and CA from a control plane data dir")
    tsub = p.add_subparsers(dest="token_command", required=True)
    c = tsub.add_parser("create", help="issue a token; it is printed once")
    c.add_argument("name")
    c.add_argument("--scope", default="read", help="what it may do: read (every call that changes nothing)")
    c.add_argument("--ttl", default="", help="lifetime, e.g. 30d (default: no expiry)")
    c.add_argument("--description", default="")
    tsub.add_parser("list", help="the tokens (never their secrets)")
    d = tsub.add_parser("delete", help="revoke a token at once")
    d.add_argument("name")


def run(args: argparse.Namespace) -> int:
    # Here, not at the top: cli/main.py builds every subcommand's parser, also for the daemons.
    from rich.console import Console
    from rich.table import Table

    from stratum.client import Client, ClientError

    console, err = Console(), Console(stderr=True)
    try:
        client = Client(args.endpoint, args.token, args.ca_cert, args.data_dir)
        if args.token_command == "create":
            t = client.call("CreateAccessToken", ac.AccessTokenSpec(name=args.name, scope=args.scope, ttl=args.ttl,
                                                                    description=args.description))
            err.print(f"access token {args.name} ({t.spec.scope}"
                      + (f", expires in {t.spec.ttl}" if t.spec.ttl else ", no expiry") + "); shown once:", highlight=False)
            print(t.token)
        elif args.token_command == "list":
            table = Table(title="access tokens")
            for col in ("name", "id", "scope", "expires", "description"):
                table.add_column(col)
            for t in client.call("ListAccessTokens", ac.ListAccessTokensRequest()).tokens:
                expires = t.expires_at.ToDatetime().strftime("%Y-%m-%d %H:%M UTC") if t.HasField("expires_at") else "never"
                table.add_row(t.spec.name, t.id, t.spec.scope, expires, t.spec.description)
            console.print(table)
        else:
            client.call("DeleteAccessToken", ac.DeleteAccessTokenRequest(name=args.name))
            err.print(f"access token {args.name} revoked", highlight=False)
    except ClientError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        return 1
    return 0
