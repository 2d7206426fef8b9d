"""The control plane process on PostgreSQL: same API, state survives a kill -9."""

from tests.control_plane.test_api import enroll
from tests.harness import ControlPlane
from stratum.v1 import control_plane_pb2 as cp


def test_control_plane_on_postgresql(tmp_path, postgres_url):
    plane = ControlPlane(str(tmp_path), store=postgres_url).start()
    try:
        c = plane.client()
        assert c.GetStatus().store == "postgresql"
        c.CreateJoinToken(cp.JoinTokenSpec(name="pg-fleet", tier="fog", max_uses=2))
        enroll(plane, c.GetJoinToken(cp.GetJoinTokenRequest(name="pg-fleet")).token, "pg-node")
        plane.kill()
        plane.start()
        c = plane.client()
        assert c.GetJoinToken(cp.GetJoinTokenRequest(name="pg-fleet")).uses == 1
        assert set(c.nodes()) == {"pg-node"} and c.nodes()["pg-node"].tier == "fog"
    finally:
        plane.stop()


def test_unreachable_postgresql_is_one_clear_line(tmp_path):
    import subprocess
    import sys
    from tests.harness import free_port
    url = f"postgresql://stratum:hunter2@127.0.0.1:{free_port()}/x"
    res = subprocess.run([sys.executable, "-m", "cli", "control-plane", "--data-dir", str(tmp_path / "d"),
                          "--listen", "127.0.0.1:0", "--store", url], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "cannot open store" in res.stderr and "Traceback" not in res.stderr
    assert "hunter2" not in res.stderr + res.stdout
