"""cloud-init user data for a pool VM: enroll it as a node with its own single-use join token.

The script is plain sh so any image with Python 3.11 runs it. It installs the node daemon when the
image does not carry it, then runs `stratum node`, which enrolls with the token (the token fixes
the node's tier and labels: the pool's, plus `stratum.io/pool`) and then keeps serving. Service
endpoints listen on all addresses and are advertised on the VM's first address, so clients reach them.
The token is single-use and expires, so the user data, readable to whoever may describe the
instance, is worth nothing once the VM has joined.
"""

from __future__ import annotations

import shlex

DATA_DIR = "/var/lib/stratum-node"
INSTALL = "python3 -m pip install --quiet stratum"


def user_data(*, pool: str, node_name: str, server: str, join_token: str, install: str = INSTALL) -> str:
    q = shlex.quote
    return f"""#!/bin/sh
# stratum: VM of cloud pool {q(pool)}, joins as node {q(node_name)}
set -eu
STRATUM_SERVER={q(server)}
STRATUM_JOIN_TOKEN={q(join_token)}
STRATUM_NODE_NAME={q(node_name)}
STRATUM_DATA_DIR="${{STRATUM_DATA_DIR:-{DATA_DIR}}}"
command -v stratum >/dev/null 2>&1 || {install}
exec stratum node --server "$STRATUM_SERVER" --join-token "$STRATUM_JOIN_TOKEN" \\
  --name "$STRATUM_NODE_NAME" --data-dir "$STRATUM_DATA_DIR" --serve-host 0.0.0.0
"""
