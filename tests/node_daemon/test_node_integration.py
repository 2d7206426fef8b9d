"""The node daemon against a real control plane process (tests/conftest.py fixtures)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from node_daemon import enroll as enroll_mod, identity
from stratum import pki, tokens
from stratum.v1 import control_plane_pb2 as cp
from tests.harness import REPO, ControlPlane, NodeDaemon, nproc, wait_for


def log_events(node: NodeDaemon, msg: str, since: int = 0) -> list[dict]:
    """JSON log records with this msg, from byte `since` of the log (daemons of one name share a log file)."""
    out = []
    for line in node.log()[since:].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == msg:
            out.append(rec)
    return out


def get_node(control_plane, name: str):
    c = control_plane.client()
    try:
        return c.nodes().get(name)
    finally:
        c.close()


def wait_ready(control_plane, name: str, node: NodeDaemon | None = None, timeout: float = 30):
    def ready():
        if node is not None and not node.running:
            raise AssertionError(f"node daemon exited ({node.proc.returncode}):\n{node.log()[-3000:]}")
        n = get_node(control_plane, name)
        return n if n is not None and n.state == "ready" and n.utilisation.memory_used_mb > 0 else None

    return wait_for(ready, timeout, what=f"node {name} ready with a heartbeat")


def token_uses(control_plane, name: str) -> int:
    c = control_plane.client()
    try:
        return c.GetJoinToken(cp.GetJoinTokenRequest(name=name)).uses
    finally:
        c.close()


def create_token(control_plane, **spec) -> str:
    c = control_plane.client()
    try:
        return c.CreateJoinToken(cp.JoinTokenSpec(**spec)).token
    finally:
        c.close()


def test_enrolls_and_reports_this_machine(control_plane, start_node):
    node = start_node("n1", labels={"zone": "north"})
    n = wait_ready(control_plane, "n1", node)
    assert n.tier == "edge"  # the bootstrap token's tier
    assert n.labels["zone"] == "north"
    assert n.join_token == "bootstrap"
    caps = n.capabilities
    # Compare what arrived at the control plane with independent sources on this machine.
    assert caps.cpu_cores == nproc()
    assert caps.memory_mb == next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:")) // 1024
    assert caps.arch == os.uname().machine and caps.hostname == os.uname().nodename
    ip = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout)
    assert sorted(i.name for i in caps.interfaces) == sorted(i["ifname"] for i in ip)
    assert list(caps.gpus) == []  # no GPU on these machines, and none made up
    # Identity on disk, private.
    ident = identity.load(node.data_dir)
    assert ident.node_id == n.id and ident.name == "n1"
    assert oct(os.stat(os.path.join(node.data_dir, "node.key")).st_mode & 0o777) == "0o600"
    # Heartbeats keep coming: the acked sequence moves on.
    first = n.last_heartbeat.ToNanoseconds()
    wait_for(lambda: get_node(control_plane, "n1").last_heartbeat.ToNanoseconds() > first, 15, what="a later heartbeat")
    assert node.stop() == 0  # SIGTERM: clean exit


def test_restart_loads_identity_and_never_duplicates(control_plane, start_node, tmp_path):
    node = start_node("n1", tier="fog")
    first = wait_ready(control_plane, "n1", node)
    assert token_uses(control_plane, "bootstrap") == 1
    assert node.stop() == 0
    # No join token this time: the identity in the data dir is enough.
    again = NodeDaemon(str(tmp_path), "n1", control_plane.endpoint, None)
    since = len(again.log())
    again.start()
    try:
        wait_for(lambda: len(log_events(again, "session started", since)) >= 1, 30, what="second daemon's session")
        n = wait_ready(control_plane, "n1", again)
        assert n.id == first.id and n.tier == "fog"
        assert log_events(again, "enrolled", since) == []
        assert len(log_events(again, "loaded identity; not enrolling again", since)) == 1
        c = control_plane.client()
        assert [x.name for x in c.ListNodes(cp.ListNodesRequest()).nodes] == ["n1"]
        c.close()
        assert token_uses(control_plane, "bootstrap") == 1
    finally:
        assert again.stop() == 0


def test_keeps_running_through_a_control_plane_outage(control_plane, start_node):
    node = start_node("n1")
    wait_ready(control_plane, "n1", node)
    control_plane.kill()
    # The daemon notices, keeps trying, and does not exit.
    wait_for(lambda: len(log_events(node, "reconnecting")) >= 3, 60, what="reconnect attempts")
    assert node.running
    restarted_at = time.time()
    control_plane.start()
    wait_for(lambda: len(log_events(node, "session started")) >= 2, 60, what="a new session after the restart")
    wait_for(lambda: get_node(control_plane, "n1").last_heartbeat.ToNanoseconds() > restarted_at * 1e9, 30,
             what="a heartbeat after the restart")
    assert get_node(control_plane, "n1").state == "ready"
    assert node.stop() == 0


def test_starts_while_control_plane_is_down(control_plane, start_node, tmp_path):
    node = start_node("n1")
    wait_ready(control_plane, "n1", node)
    node.stop()
    control_plane.stop()
    later = NodeDaemon(str(tmp_path), "n1", control_plane.endpoint, None)
    since = len(later.log())
    later.start()
    try:
        wait_for(lambda: len(log_events(later, "reconnecting", since)) >= 2, 60, what="reconnect attempts")
        assert later.running
        control_plane.start()
        wait_for(lambda: len(log_events(later, "session started", since)) >= 1, 60, what="a session once the control plane is back")
        wait_ready(control_plane, "n1", later)
    finally:
        assert later.stop() == 0


def _node_once(control_plane, tmp_path, name: str, token: str, *extra: str, data_dir: str | None = None):
    argv = [sys.executable, "-m", "cli", "node", "--server", control_plane.endpoint, "--join-token", token,
            "--name", name, "--data-dir", data_dir or str(tmp_path / f"once-{name}"), *extra]
    # These runs must fail fast; a daemon that started instead would hit the timeout.
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return done.returncode, errors[0]


def test_wrong_secret_is_refused(control_plane, tmp_path):
    parts = tokens.parse_join_token(control_plane.join_token)
    forged = tokens.format_join_token(parts.ca_fingerprint, parts.token_id, "0" * 40)
    code, line = _node_once(control_plane, tmp_path, "n1", forged)
    assert code == 1 and "enrollment refused" in line and "not recognised" in line
    assert "0" * 40 not in line
    assert get_node(control_plane, "n1") is None


def test_used_up_token(control_plane, tmp_path):
    token = create_token(control_plane, name="once", tier="cloud", labels={"zone": "east"}, max_uses=1)
    ident = enroll_mod.enroll(server=control_plane.endpoint, join_token=token, name="a1", tier="", labels={"rack": "r1"},
                              data_dir=str(tmp_path / "a1"))
    assert (ident.tier, ident.labels) == ("cloud", {"zone": "east", "rack": "r1"})
    code, line = _node_once(control_plane, tmp_path, "a2", token)
    assert code == 1 and "used up" in line


def test_expired_token(control_plane, tmp_path):
    token = create_token(control_plane, name="short", tier="edge", ttl="1s")
    time.sleep(1.5)  # let the 1s lifetime pass
    code, line = _node_once(control_plane, tmp_path, "n1", token)
    assert code == 1 and "expired" in line


def test_taken_name(control_plane, tmp_path):
    enroll_mod.enroll(server=control_plane.endpoint, join_token=control_plane.join_token, name="n1", tier="", labels={},
                      data_dir=str(tmp_path / "first"))
    code, line = _node_once(control_plane, tmp_path, "n1", control_plane.join_token, data_dir=str(tmp_path / "second"))
    assert code == 1 and "'n1' is taken" in line


def test_retried_enrollment_is_the_same_node(control_plane, tmp_path):
    d = str(tmp_path / "n1")
    first = enroll_mod.enroll(server=control_plane.endpoint, join_token=control_plane.join_token, name="n1", tier="", labels={}, data_dir=d)
    # A crash before node.json was written: only the key survived. Enrolling again must not make a second node.
    os.unlink(os.path.join(d, identity.META))
    os.unlink(os.path.join(d, identity.CERT))
    second = enroll_mod.enroll(server=control_plane.endpoint, join_token=control_plane.join_token, name="n1", tier="", labels={}, data_dir=d)
    assert second.node_id == first.node_id
    assert token_uses(control_plane, "bootstrap") == 1


def test_ca_cert_flag(control_plane, tmp_path):
    ident = enroll_mod.enroll(server=control_plane.endpoint, join_token=control_plane.join_token, name="n1", tier="", labels={},
                              data_dir=str(tmp_path / "n1"), ca_cert_path=control_plane.ca_pem_path)
    assert ident.ca_pem == open(control_plane.ca_pem_path, "rb").read()
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(pki.make_ca()[1])
    code, line = _node_once(control_plane, tmp_path, "n2", control_plane.join_token, "--ca-cert", str(other_ca))
    assert code == 2 and "not the CA this join token was issued by" in line


def test_token_of_another_control_plane(control_plane, tmp_path):
    parts = tokens.parse_join_token(control_plane.join_token)
    foreign = tokens.format_join_token("1" * 64, parts.token_id, parts.secret)
    code, line = _node_once(control_plane, tmp_path, "n1", foreign)
    assert code == 1 and "fingerprint mismatch" in line


def test_unreachable_server_message(tmp_path):
    from tests.harness import free_port

    endpoint = f"127.0.0.1:{free_port()}"
    done = subprocess.run([sys.executable, "-m", "cli", "node", "--server", endpoint, "--data-dir", str(tmp_path),
                           "--join-token", tokens.format_join_token("ab" * 32, "jt-0123456789ab", "x")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and endpoint in errors[0] and "cannot reach" in errors[0]


def test_sigint_during_session_exits_zero(control_plane, start_node):
    node = start_node("n1")
    wait_ready(control_plane, "n1", node)
    node.signal(signal.SIGINT)
    assert node.proc.wait(15) == 0


@pytest.mark.netns
def test_node_in_its_own_network_namespace(test_network, tmp_path):
    host = test_network.add_host()
    cpl = ControlPlane(str(tmp_path), host=test_network.gateway).start()
    node = NodeDaemon(str(tmp_path), "edge1", cpl.endpoint, cpl.join_token, netns=host.netns).start()
    try:
        n = wait_ready(cpl, "edge1", node)
        # It reports the namespace's interfaces, not the machine's.
        assert sorted(i.name for i in n.capabilities.interfaces) == ["eth0", "lo"]
        assert list(n.addresses) == [host.address]
        # Cut its link: the node goes down, the daemon keeps trying; mend it: ready again.
        host.link_down()
        wait_for(lambda: get_node(cpl, "edge1").state == "down", 60, what="node down after the link cut")
        assert node.running
        host.link_up()
        wait_for(lambda: get_node(cpl, "edge1").state == "ready", 90, what="node ready after the link is back")
    finally:
        assert node.stop() == 0
        cpl.stop()
