"""Several control planes on one PostgreSQL database, as real processes: one leads, every one serves
the API, a follower takes over from a leader that was killed, paused or cut off, and nothing is
lost or doubled (VMs in moto's EC2, app instances, runs). The store-level fence is tested in
tests/control_plane/test_store.py; how long a failover takes is bench/ha's."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import grpc
import psutil
import pytest

from stratum.v1 import access_pb2 as ac, apps_pb2 as a, control_plane_pb2 as cp, datasets_pb2 as ds
from stratum.v1 import models_pb2 as m, pools_pb2 as p
from tests.cloud import read_policy
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.lifecycle import upload

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

TTL = "2s"
S = grpc.StatusCode
IDLE = a.AppSpec(name="idle", kind="service", command="sleep", args=["3600"],
                 requirements=m.Requirements(cpu=0.1, memory_mb=32), kill_timeout_s=2)


class Cluster:
    """Control planes cp-0, cp-1, ... on one database; the first starts the cluster, the others join
    with its cluster key."""

    def __init__(self, root, url: str, n: int = 2, env: dict | None = None, extra: tuple = ()):
        self.root, self.url, self.env, self.extra = root, url, env or {}, list(extra)
        self.planes: list[ControlPlane] = []
        for i in range(n):
            self.planes.append(self._start(i))

    def _start(self, i: int, env: dict | None = None, port: int | None = None, node_port: int | None = None) -> ControlPlane:
        workdir = os.path.join(self.root, f"cp-{i}")
        os.makedirs(workdir, exist_ok=True)
        extra = ["--lease-ttl", TTL, *self.extra]
        if i:
            extra += ["--cluster-key-file", os.path.join(self.planes[0].data_dir, "cluster.key")]
        return ControlPlane(workdir, store=self.url, extra=extra, env={**self.env, **(env or {})}, port=port,
                            node_port=node_port).start()

    def restart(self, i: int, env: dict | None = None) -> ControlPlane:
        old = self.planes[i]
        if old.running:
            old.stop()
        self.planes[i] = self._start(i, env, port=old.port, node_port=old.node_port)
        return self.planes[i]

    def status(self, plane: ControlPlane) -> cp.GetStatusResponse | None:
        c = plane.client()
        try:
            return c.GetStatus(cp.GetStatusRequest(), timeout=3)
        except grpc.RpcError:
            return None
        finally:
            c.close()

    def leader(self, timeout: float = 30, exclude: tuple = ()) -> ControlPlane:
        def one():
            leading = [pl for pl in self.planes if pl.running and pl not in exclude and (st := self.status(pl)) and st.leading]
            return leading[0] if len(leading) == 1 else None
        return wait_for(one, timeout, interval=0.1, what="exactly one leading control plane")

    def followers(self) -> list[ControlPlane]:
        lead = self.leader()
        return [pl for pl in self.planes if pl is not lead and pl.running]

    def servers(self) -> str:
        return ",".join(pl.endpoint for pl in self.planes)

    def stop(self) -> None:
        for pl in self.planes:
            if pl.proc is not None and pl.proc.poll() is None:
                os.kill(pl.proc.pid, signal.SIGCONT)  # a paused one must be able to stop
            pl.stop()


@pytest.fixture
def cluster(tmp_path, postgres_url):
    c = Cluster(str(tmp_path), postgres_url)
    yield c
    c.stop()


def code_of(call) -> grpc.StatusCode | None:
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return None


def test_every_control_plane_serves_the_api_one_leads_and_they_share_one_ca(cluster, tmp_path):
    lead = cluster.leader()
    (follower,) = cluster.followers()
    assert cluster.status(follower).leader == cluster.status(lead).leader == lead.endpoint
    # one CA and one admin token: a token or certificate from one is good on the other
    assert open(lead.ca_pem_path).read() == open(follower.ca_pem_path).read()
    assert lead.admin_token == follower.admin_token
    f, l = follower.client(), lead.client()

    # A change asked of the follower is made by the leader; reads are answered by either.
    token = f.CreateJoinToken(cp.JoinTokenSpec(name="fleet", tier="edge", max_uses=2)).token
    assert l.GetJoinToken(cp.GetJoinTokenRequest(name="fleet")).token == token
    node = NodeDaemon(str(tmp_path), "n1", f"{follower.endpoint},{lead.endpoint}", token, tier="edge").start()
    try:
        wait_for(lambda: f.nodes().get("n1") and f.nodes()["n1"].state == "ready", 60, what="n1 ready (seen by the follower)")
        # the node asked the follower first; the follower named the leader, which holds the session
        started = [line for line in open(node.log_path) if '"session started"' in line]
        assert started and f'"endpoint": "{lead.host}:{lead.node_port}"' in started[-1], started
        assert l.GetJoinToken(cp.GetJoinTokenRequest(name="fleet")).uses == 1

        f.CreateApp(IDLE)
        app = wait_for(lambda: (x := f.GetApp(a.GetAppRequest(name="idle"))).state == "ready" and x, 60, what="idle ready")
        assert [i.node_name for i in app.instances] == ["n1"] and l.GetApp(a.GetAppRequest(name="idle")) == app
        # the leader's errors come back from the follower as they are, with their details
        bad = a.AppSpec(name="bad", kind="periodic", command="true", schedule=a.Schedule(cron="61 * * * *"))
        with pytest.raises(grpc.RpcError) as e:
            f.CreateApp(bad)
        assert e.value.code() == S.INVALID_ARGUMENT and "schedule.cron" in e.value.details()
        # logs come from the node through the leader, asked of either
        chunks = list(f.stub.StreamAppLogs(a.StreamAppLogsRequest(name="idle", tail_bytes=4096), metadata=f.md, timeout=20))
        assert b"starting" in b"".join(c.data for c in chunks)

        # A blob uploaded to the follower is there for the leader (the database holds a copy).
        data = b"x,y\n1,2\n3,4\n"
        sha = upload(f, data)
        assert l.GetBlob(ds.GetBlobRequest(sha256=sha)).size == len(data)
        l.CreateDataset(ds.DatasetSpec(name="tiny", source="file://tiny.csv", blob_sha256=sha))
        assert f.GetDataset(ds.GetDatasetRequest(name="tiny")).row_count == 2

        # A read token made through either works on both.
        viewer = l.CreateAccessToken(ac.AccessTokenSpec(name="viewer", scope="read")).token
        for plane in (lead, follower):
            with grpc.secure_channel(plane.endpoint, grpc.ssl_channel_credentials(open(plane.ca_pem_path, "rb").read()),
                                     options=[("grpc.ssl_target_name_override", "stratum-control-plane")]) as ch:
                from stratum.v1 import control_plane_pb2_grpc as cp_grpc
                stub = cp_grpc.ControlPlaneStub(ch)
                assert stub.ListApps(cp.ListAppsRequest(), metadata=[("authorization", f"Bearer {viewer}")], timeout=10).apps
                assert code_of(lambda: stub.DeleteApp(a.DeleteAppRequest(name="idle"), timeout=10,
                                                      metadata=[("authorization", f"Bearer {viewer}")])) == S.PERMISSION_DENIED
    finally:
        node.stop()
        f.close()
        l.close()


def test_a_killed_leader_is_replaced_and_its_nodes_and_apps_follow(cluster, tmp_path):
    lead = cluster.leader()
    node = NodeDaemon(str(tmp_path), "n1", cluster.servers(), lead.join_token, tier="edge").start()
    try:
        c = lead.client()
        wait_for(lambda: c.nodes().get("n1") and c.nodes()["n1"].state == "ready", 60, what="n1 ready")
        c.CreateApp(IDLE)
        wait_for(lambda: c.GetApp(a.GetAppRequest(name="idle")).state == "ready", 60, what="idle ready")
        # this node's instance: another test's node may run an app named idle at the same time
        here = os.path.join(os.path.realpath(node.data_dir), "apps", "idle-0")
        pid = next(pr.pid for pr in psutil.process_iter(["cwd"]) if pr.info["cwd"] == here)
        c.close()

        lead.kill()  # -9: no lease given up, no goodbye to the nodes
        new = cluster.leader(exclude=(lead,), timeout=30)
        n = new.client()
        # the node moves its session to the new leader and the app keeps running, the same process
        wait_for(lambda: any(f'"endpoint": "{new.host}:{new.node_port}"' in line and '"session started"' in line
                             for line in open(node.log_path)), 30, what="the node's session with the new leader")
        time.sleep(4)  # past the grace the new leader gave the nodes: the node is really there
        assert n.nodes()["n1"].state == "ready"
        assert n.GetApp(a.GetAppRequest(name="idle")).state == "ready" and psutil.pid_exists(pid)
        # the new leader places new work; the old one comes back as a follower
        n.CreateApp(a.AppSpec(name="second", kind="service", command="sleep", args=["3600"],
                              requirements=m.Requirements(cpu=0.1, memory_mb=32)))
        wait_for(lambda: n.GetApp(a.GetAppRequest(name="second")).state == "ready", 60, what="second ready")
        back = cluster.restart(cluster.planes.index(lead))
        assert cluster.leader() is new and not cluster.status(back).leading
        assert len(n.GetApp(a.GetAppRequest(name="idle")).instances) == 1  # nothing doubled
        n.close()
    finally:
        node.stop()


def test_a_paused_leader_steps_down_and_what_it_wanted_to_write_is_refused(cluster, tmp_path):
    lead = cluster.leader()
    node = NodeDaemon(str(tmp_path), "n1", cluster.servers(), lead.join_token, tier="edge").start()
    try:
        c = lead.client()
        wait_for(lambda: c.nodes().get("n1") and c.nodes()["n1"].state == "ready", 60, what="n1 ready")
        c.close()
        os.kill(lead.proc.pid, signal.SIGSTOP)  # past its lease: a long GC, a frozen VM
        new = cluster.leader(exclude=(lead,), timeout=30)
        n = new.client()
        n.CreateApp(IDLE)
        wait_for(lambda: n.GetApp(a.GetAppRequest(name="idle")).state == "ready", 60, what="idle placed by the new leader")
        os.kill(lead.proc.pid, signal.SIGCONT)
        wait_for(lambda: (st := cluster.status(lead)) is not None and not st.leading and st.leader == new.endpoint, 30,
                 what="the old leader a follower")
        log = lead.log()
        assert '"not the leader any more' in log or '"stepped down"' in log, log[-3000:]
        time.sleep(2)
        assert cluster.leader() is new
        app = n.GetApp(a.GetAppRequest(name="idle"))
        assert app.state == "ready" and len(app.instances) == 1
        n.close()
    finally:
        node.stop()


@pytest.fixture(scope="module")
def pool_env(bao):
    return {"VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token(read_policy("secret/stratum/*"))}


def pool_spec(moto, name: str, vms: int) -> p.CloudPoolSpec:
    return p.CloudPoolSpec(name=name, driver="ec2", region="us-east-1", size="t3.micro", image="ami-12c6146b",
                           credentials="secret/stratum/aws", tier="cloud", min_nodes=vms, max_nodes=vms, idle_grace_s=1,
                           driver_options={"host": "127.0.0.1", "port": str(moto.port), "secure": "false"})


def live_instances(moto, pool: str) -> list[dict]:
    return [i for i in moto.instances(**{"stratum-pool": pool}) if i["State"]["Name"] not in ("terminated", "shutting-down")]


def test_a_leader_paused_between_recording_a_vm_and_requesting_it_never_requests_it(tmp_path, postgres_url, moto, pool_env):
    """The leader records the VM, then stops (SIGSTOP) right before the cloud call. The new leader
    requests that VM; the old one, continued, finds its term over and does not: one VM."""
    cluster = Cluster(str(tmp_path), postgres_url, env=pool_env, extra=("--pool-interval", "0.3s"))
    try:
        pausing = cluster.restart(cluster.planes.index(cluster.leader()), env={"STRATUM_PAUSE_AT": "before-cloud-create"})
        lead = cluster.leader(timeout=30)
        if lead is not pausing:  # the other took over while it restarted: hand the lease back
            lead.stop()  # a clean stop gives the lease up
            cluster.leader(timeout=30)
            cluster.restart(cluster.planes.index(lead))
        assert cluster.leader() is pausing
        c = cluster.followers()[0].client()
        c.CreateCloudPool(pool_spec(moto, "paused", 1))
        wait_for(lambda: psutil.Process(pausing.proc.pid).status() == psutil.STATUS_STOPPED, 30,
                 what="the leader stopped right before the cloud call")
        assert live_instances(moto, "paused") == []
        new = cluster.leader(exclude=(pausing,), timeout=30)
        wait_for(lambda: len(live_instances(moto, "paused")) == 1, 30, what="the new leader's request")
        os.kill(pausing.proc.pid, signal.SIGCONT)
        wait_for(lambda: (st := cluster.status(pausing)) is not None and not st.leading, 30, what="the old leader a follower")
        time.sleep(3)  # the old leader's pools thread ran on: it must not have asked for the VM
        assert len(live_instances(moto, "paused")) == 1
        assert "is left for the leader to request" in pausing.log()
        n = new.client()
        vms = n.GetCloudPool(p.GetCloudPoolRequest(name="paused")).vms
        assert [v.instance_id for v in vms] == [i["InstanceId"] for i in live_instances(moto, "paused")]
        n.DeleteCloudPool(p.DeleteCloudPoolRequest(name="paused"))
        wait_for(lambda: live_instances(moto, "paused") == [], 60, what="the pool's VM terminated")
        n.close()
        c.close()
    finally:
        cluster.stop()


def test_the_leader_killed_at_random_points_of_a_pool_scale_up_leaves_exactly_the_vms_wanted(
        tmp_path, postgres_url, moto, pool_env):
    cluster = Cluster(str(tmp_path), postgres_url, env=pool_env, extra=("--pool-interval", "0.3s"))
    rng = random.Random(19)
    points = [round(rng.uniform(0.0, 2.0), 2) for _ in range(10)]
    try:
        for k, after in enumerate(points):
            name, want = f"scale-{k}", 3
            asker = cluster.followers()[0]
            c = asker.client()
            lead = cluster.leader()
            c.CreateCloudPool(pool_spec(moto, name, want))
            time.sleep(after)
            lead.kill()
            new = cluster.leader(exclude=(lead,), timeout=30)
            cluster.restart(cluster.planes.index(lead))
            n = new.client()
            wait_for(lambda: len(live_instances(moto, name)) >= want and
                     all(v.instance_id for v in n.GetCloudPool(p.GetCloudPoolRequest(name=name)).vms), 60,
                     what=f"pool {name}: its VMs requested and recorded (killed after {after}s)")
            time.sleep(1)  # more passes change nothing
            made = live_instances(moto, name)
            vms = n.GetCloudPool(p.GetCloudPoolRequest(name=name)).vms
            assert len(made) == want, (after, [i["InstanceId"] for i in made])
            assert sorted(v.instance_id for v in vms) == sorted(i["InstanceId"] for i in made), (after, vms)
            n.DeleteCloudPool(p.DeleteCloudPoolRequest(name=name))
            wait_for(lambda: live_instances(moto, name) == [], 60, what=f"pool {name}'s VMs terminated")
            n.close()
            c.close()
    finally:
        cluster.stop()


def test_postgresql_restarted_under_load_the_control_planes_reconnect(cluster, postgres):
    """Calls keep coming while the database restarts: each answers or says UNAVAILABLE (retry),
    never INTERNAL; afterwards both control planes answer and one leads again."""
    codes: dict[str, int] = {}
    stop = threading.Event()
    made = []

    def load(plane, tag):
        c = plane.client()
        i = 0
        while not stop.is_set():
            i += 1
            try:
                c.CreateJoinToken(cp.JoinTokenSpec(name=f"{tag}-{i}", tier="edge"), timeout=5)
                made.append(f"{tag}-{i}")
                c.ListNodes(cp.ListNodesRequest(), timeout=5)
                codes["OK"] = codes.get("OK", 0) + 1
            except grpc.RpcError as e:
                codes[e.code().name] = codes.get(e.code().name, 0) + 1
            time.sleep(0.05)
        c.close()

    threads = [threading.Thread(target=load, args=(pl, f"t{j}")) for j, pl in enumerate(cluster.planes)]
    for t in threads:
        t.start()
    time.sleep(2)
    postgres.restart(down_s=3)
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(30)
    assert codes.get("OK", 0) > 20 and set(codes) <= {"OK", "UNAVAILABLE", "ALREADY_EXISTS", "DEADLINE_EXCEEDED"}, codes
    assert codes.get("UNAVAILABLE", 0) + codes.get("DEADLINE_EXCEEDED", 0) > 0, codes  # the restart was seen
    lead = cluster.leader(timeout=30)
    for plane in cluster.planes:
        c = plane.client()
        c.CreateJoinToken(cp.JoinTokenSpec(name=f"after-{plane.port}", tier="edge"))
        names = {t.spec.name for t in c.ListJoinTokens(cp.ListJoinTokensRequest()).tokens}
        assert set(made) <= names  # every create that answered OK is there
        c.close()
    assert cluster.status(lead).leading
