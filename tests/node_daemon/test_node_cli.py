"""`stratum node` input errors: one clear line on stderr, a non-zero exit, no traceback, nothing enrolled."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest

from node_daemon import enroll as enroll_mod
from stratum import tokens

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = tokens.format_join_token("ab" * 32, "jt-0123456789ab", "s3cr3t")


def node_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "node", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout)


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("label, words", [
    ("zone", ["malformed label 'zone'", "key=value"]),
    ("=north", ["malformed label '=north'"]),
    ("bad key=x", ["--label", "invalid label key 'bad key'"]),
    ("zone=no way", ["invalid label value 'no way'"]),
])
def test_malformed_label(tmp_path, label, words):
    done = node_cli("--server", "127.0.0.1:7443", "--join-token", TOKEN, "--data-dir", str(tmp_path / "d"), "--label", "ok=yes", "--label", label)
    assert done.returncode == 2
    line = _one_error_line(done)
    for w in words:
        assert w in line
    assert not (tmp_path / "d").exists()  # rejected before touching anything


def test_unknown_tier(tmp_path):
    done = node_cli("--server", "127.0.0.1:7443", "--join-token", TOKEN, "--data-dir", str(tmp_path), "--tier", "mars")
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "--tier" in line and "'mars'" in line and "edge, fog, cloud" in line


def test_invalid_metrics_listen(tmp_path):
    done = node_cli("--server", "127.0.0.1:7443", "--join-token", TOKEN, "--data-dir", str(tmp_path / "d"),
                    "--metrics-listen", "9100")
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "--metrics-listen" in line and "expected host:port" in line
    assert not (tmp_path / "d").exists()


def test_invalid_name(tmp_path):
    done = node_cli("--server", "127.0.0.1:7443", "--join-token", TOKEN, "--data-dir", str(tmp_path), "--name", "Not_A_Name")
    assert done.returncode == 2
    assert "--name" in _one_error_line(done)


@pytest.mark.parametrize("token, why", [
    ("hello", "expected stj1.<ca-sha256>.<token-id>.<secret>"),
    ("stj1.abc.jt-0123456789ab.s", "CA fingerprint must be 64 hex characters"),
    ("stj1." + "ab" * 32 + ".nope.s", "bad token id"),
])
def test_malformed_join_token(tmp_path, token, why):
    done = node_cli("--server", "127.0.0.1:7443", "--join-token", token, "--data-dir", str(tmp_path))
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "malformed join token" in line and why in line


def test_join_token_required_on_first_start(tmp_path):
    env_free = {k: v for k, v in os.environ.items() if k != "STRATUM_JOIN_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "cli", "node", "--server", "127.0.0.1:7443", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, env=env_free, timeout=60)
    assert done.returncode == 2
    assert "--join-token" in _one_error_line(done)


def test_bad_server_endpoint(tmp_path):
    done = node_cli("--server", "no-port-here", "--join-token", TOKEN, "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "'no-port-here'" in _one_error_line(done)


def test_secret_never_echoed(tmp_path):
    done = node_cli("--server", "127.0.0.1:7443", "--join-token", "stj1.zz.jt-0123456789ab.topsecretvalue", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "topsecretvalue" not in done.stderr + done.stdout


def test_unreachable_server_names_the_endpoint(tmp_path):
    from tests.harness import free_port

    endpoint = f"127.0.0.1:{free_port()}"
    with pytest.raises(enroll_mod.EnrollError) as err:
        enroll_mod.enroll(server=endpoint, join_token=TOKEN, name="n1", tier="", labels={}, data_dir=str(tmp_path), retry_for=1.0)
    assert endpoint in str(err.value) and "cannot reach" in str(err.value)
    assert err.value.exit_code == 1


class _RpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize("code, exit_code, words", [
    (grpc.StatusCode.UNAUTHENTICATED, 1, ["refused", "expired 5m ago"]),
    (grpc.StatusCode.INVALID_ARGUMENT, 2, ["rejected", "expired 5m ago"]),
    (grpc.StatusCode.ALREADY_EXISTS, 1, ["'n1' is taken", "--name"]),
    (grpc.StatusCode.PERMISSION_DENIED, 1, ["PERMISSION_DENIED", "h:1"]),
])
def test_rpc_errors_become_one_line(code, exit_code, words):
    e = enroll_mod._explain(_RpcError(code, "expired 5m ago"), "h:1", "n1")
    assert e.exit_code == exit_code and "\n" not in str(e)
    for w in words:
        assert w in str(e)
