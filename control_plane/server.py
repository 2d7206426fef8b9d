"""Assemble and run the control plane: store, services, gRPC listeners, background loops."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from control_plane.access_tokens import AccessTokens
from control_plane.api.auth import AdminTokenInterceptor
from control_plane.api.forward import LeaderForwarding
from control_plane.api.servicers import ControlPlaneServicer, NodeAgentServicer
from control_plane.apps.resource import Apps
from control_plane.autoscale.loop import Autoscaler
from control_plane.provision.pools import Pools
from control_plane.datadir import DataDir
from control_plane.datasets import Datasets
from control_plane.history import History
from control_plane.join_tokens import JoinTokens
from control_plane.leadership import Leadership
from control_plane.packaging.store import ArtifactStore
from control_plane.nodes import NodeRegistry
from control_plane.models import Models
from control_plane.ml.dask_nodes import DaskNodes
from control_plane.reconcile import Reconciler
from control_plane.retraining import RetrainLoop
from control_plane.services import Services
from control_plane.store import Store
from control_plane.store.db import Fenced
from stratum import pki
from stratum.logs import event
from stratum.v1 import control_plane_pb2, control_plane_pb2_grpc, node_agent_pb2, node_agent_pb2_grpc

log = logging.getLogger("stratum.control_plane")

SERVER_OPTIONS = [
    # Nodes ping to keep their session alive through NATs; allow it.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # gRPC sets SO_REUSEPORT by default: a port already taken (by another process, or by the other
    # listener of this one) would then silently share connections, TLS clients landing on the mTLS
    # listener at random. Taken must mean "cannot listen".
    ("grpc.so_reuseport", 0),
]


@dataclass
class Config:
    data_dir: DataDir
    store: Store
    listen: str
    node_listen: str
    heartbeat_interval: float = 5.0
    node_timeout: float = 15.0
    flush_interval: float = 2.0
    # Automatic garbage collection is off; a full collection runs this often instead (see _maintain).
    gc_interval: float = 300.0
    retrain_interval: float = 30.0  # how often retraining triggers (age, drift) are checked
    training_workers: int = 1
    pool_interval: float = 5.0  # how often cloud pools are reconciled (and at once after a change)
    metrics_listen: str = ""  # HOST:PORT for Prometheus (/metrics); "" for none
    autoscale_interval: float = 30.0  # how often services with scaling get a replica count
    history_retention: float = 7 * 86400.0  # how long stored series (GetHistory, the dashboard) are kept
    history_interval: float = 15.0  # how often history is sampled (per-minute series are written once a minute)
    ui_listen: str = ""  # HOST:PORT of the dashboard (HTTPS); "" for none
    ui_session_ttl: float = 8 * 3600.0  # a dashboard login lasts this long
    lease_ttl: float = 10.0  # the leader's lease (several control planes on one PostgreSQL)
    advertise: str = ""  # the host other control planes and nodes reach this one at (default: the listen host)
    ports: dict = field(default_factory=dict)


async def serve(cfg: Config, started: asyncio.Event | None = None) -> None:
    dd = cfg.data_dir
    main_loop = asyncio.get_running_loop()  # runs' outputs arrive on worker threads; retraining runs here
    tokens = JoinTokens(cfg.store, pki.fingerprint(dd.ca_cert_pem))
    nodes = NodeRegistry(cfg.store, tokens, dd.ca_key_pem, dd.ca_cert_pem, cfg.node_timeout)
    # On PostgreSQL, blobs go to the database too: every control plane sharing it has them all.
    artifacts = ArtifactStore(dd.path, mirror=cfg.store if cfg.store.kind == "postgresql" else None)
    datasets = Datasets(cfg.store, artifacts)
    models = Models(cfg.store, datasets, dd.path, workers=cfg.training_workers)
    reconciler = Reconciler(cfg.store, nodes)
    services = Services(cfg.store, models, nodes, reconciler, artifacts)
    models.on_new_version = lambda name: reconciler.push()
    # Dask trainings (training.engine = "dask"): the training job runs the scheduler, and nodes that
    # match get workers in their assignments while it runs.
    models.dask = DaskNodes(dd, nodes, reconciler.push, cfg.node_listen.rpartition(":")[0])
    reconciler.sessions.build = models.dask.with_workers(reconciler.sessions.build)
    history = History(cfg.store, retention_s=cfg.history_retention)
    access_tokens = AccessTokens(cfg.store)
    retrain = RetrainLoop(models, services, artifacts, history=history)
    pools = Pools(cfg.store, tokens, nodes, server="", busy_nodes=reconciler.nodes_in_use, interval=cfg.pool_interval)
    reconciler.pools = pools
    # Several control planes may share the store: one leads (control_plane/leadership.py). The loops,
    # the node sessions and every change the API asks for run on the leader, under its term's fence.
    leadership = Leadership(cfg.store, api="", node="", ttl_s=cfg.lease_ttl,
                            holder=f"{socket.gethostname()}:{os.path.realpath(dd.path)}")
    nodes.authoritative = reconciler.leading = pools.may_act = lambda: leadership.is_leader
    pools.guard = leadership.fence

    async def on_new_data(dataset: str, version: int) -> None:
        if leadership.is_leader:
            with leadership.fence():
                await models.on_new_data(dataset, version)

    apps = Apps(cfg.store, nodes, reconciler, services, datasets, vault=pools.vault,
                on_new_data=lambda dataset, version: asyncio.run_coroutine_threadsafe(
                    on_new_data(dataset, version), main_loop))

    registry = None
    interceptors = [AdminTokenInterceptor(dd.admin_token, access_tokens), LeaderForwarding(leadership, dd.ca_cert_pem)]
    if cfg.metrics_listen:
        from prometheus_client import CollectorRegistry

        from control_plane.api.rpc_metrics import RpcMetricsInterceptor

        registry = CollectorRegistry()
        interceptors.insert(0, RpcMetricsInterceptor(registry))  # outermost: it counts the token check's denials too
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    chain = dd.server_cert_pem + dd.ca_cert_pem  # the CA in the chain lets new nodes discover it (see pki.fetch_ca)
    tls = grpc.ssl_server_credentials([(dd.server_key_pem, chain)])
    mtls = grpc.ssl_server_credentials([(dd.server_key_pem, chain)], root_certificates=dd.ca_cert_pem, require_client_auth=True)
    ports = []
    for address, creds in ((cfg.listen, tls), (cfg.node_listen, mtls)):
        try:
            ports.append(server.add_secure_port(address, creds))
        except RuntimeError:  # grpc's "Failed to bind": the port is taken
            ports.append(0)
        if not ports[-1]:
            raise OSError(f"cannot listen on {address}: the address is in use or not available")
    public_port, node_port = ports
    cfg.ports.update(public=public_port, node=node_port)
    node_host = cfg.node_listen.rpartition(":")[0]
    leadership.set_addresses(advertised(cfg.advertise or cfg.listen.rpartition(":")[0], public_port),
                             advertised(cfg.advertise or node_host, node_port))
    pools.server = f"{cfg.listen.rpartition(':')[0]}:{public_port}"  # where VMs enroll, unless a pool says

    control_plane_pb2_grpc.add_ControlPlaneServicer_to_server(
        ControlPlaneServicer(nodes, tokens, datasets, models, services, cfg.store.kind, f"{node_host}:{node_port}",
                             cfg.heartbeat_interval, cfg.node_timeout, pools, apps, reconciler=reconciler, history=history,
                             access_tokens=access_tokens, leadership=leadership), server)
    node_agent_pb2_grpc.add_NodeAgentServicer_to_server(NodeAgentServicer(nodes, reconciler, artifacts, node_port, cfg.heartbeat_interval, apps.logs,
                                                                          leadership=leadership), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection([
        control_plane_pb2.DESCRIPTOR.services_by_name["ControlPlane"].full_name,
        node_agent_pb2.DESCRIPTOR.services_by_name["NodeAgent"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ], server)

    await server.start()
    if registry is not None:
        from prometheus_client import GCCollector, PlatformCollector, ProcessCollector, start_http_server

        from control_plane.autoscale.metrics import PrometheusCollector

        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        registry.register(PrometheusCollector(services.series))
        m_host, _, m_port = cfg.metrics_listen.rpartition(":")
        start_http_server(int(m_port), addr=m_host or "127.0.0.1", registry=registry)
        event(log, "prometheus metrics", url=f"http://{cfg.metrics_listen}/metrics")
    ui = None
    if cfg.ui_listen:
        from control_plane.ui.server import UiServer

        ui = UiServer(cfg.ui_listen, f"{cfg.listen.rpartition(':')[0]}:{public_port}", dd, access_tokens, cfg.ui_session_ttl)
        try:
            cfg.ports["ui"] = ui.start()
        except OSError:
            await server.stop(grace=0)
            raise
        event(log, "dashboard serving", url=f"https://{cfg.ui_listen.rpartition(':')[0]}:{cfg.ports['ui']}/")
    for name in ("", "stratum.v1.ControlPlane", "stratum.v1.NodeAgent"):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    event(log, "control plane serving", listen=cfg.listen, public_port=public_port, node_port=node_port, store=cfg.store.kind)
    if started is not None:
        started.set()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    gc.disable()  # see _maintain

    async def elected() -> None:
        """This control plane leads now (its first term, or after another's): take over what the
        leader does, from what the store says."""
        with leadership.fence():
            await asyncio.to_thread(reconciler.adopt_stored_reports)
            await asyncio.to_thread(nodes.take_over, time.time())
            await asyncio.to_thread(pools.take_over)
            models.resume()
            await asyncio.to_thread(reconciler.tell_pools)  # what the placements want from the pools
            await asyncio.to_thread(reconciler.rebalance)
        pools.wake()

    def deposed() -> None:
        """Another leads now: stop what only the leader does; nodes reconnect to the new leader."""
        models.cancel_all()
        reconciler.sessions.close_all()

    pools.start()
    autoscaler = Autoscaler(services)
    lead = Lead(leadership, elected, deposed)
    await lead.tick()  # one control plane alone leads at once
    background = asyncio.create_task(_maintain(nodes, cfg, stop, reconciler, retrain, autoscaler, apps,
                                               lambda: history.sample(nodes, services, autoscaler), lead))
    await stop.wait()
    event(log, "control plane stopping")
    await health.enter_graceful_shutdown()
    if ui is not None:
        await asyncio.to_thread(ui.stop)
    await server.stop(grace=2)
    await background
    await asyncio.to_thread(pools.stop)
    if leadership.is_leader:
        await asyncio.to_thread(nodes.flush_heartbeats)
    await asyncio.to_thread(leadership.release)  # a follower takes over at its next tick


def advertised(host: str, port: int) -> str:
    """host:port others reach this control plane at: a wildcard listen address means this host."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Lead:
    """Ticks the leadership and runs the hand-overs when it changes."""

    def __init__(self, leadership: Leadership, elected, deposed):
        self.leadership, self.elected, self.deposed = leadership, elected, deposed
        self.leading = False
        self.next_tick = 0.0

    async def tick(self) -> bool:
        """Renew or take the lease when due; returns whether this process leads now."""
        now = time.monotonic()
        if now >= self.next_tick:
            await asyncio.to_thread(self.leadership.tick)
            every = self.leadership.ttl_s / 3
            # A follower asks again right when the leader's lease runs out: a dead leader is replaced
            # within the lease, not the lease and a tick.
            left = self.leadership.lease_left if not self.leadership.is_leader else every
            self.next_tick = time.monotonic() + max(0.02, min(every, left + 0.02))
        leading = self.leadership.is_leader  # also false once a lease it failed to renew runs out
        if leading and not self.leading:
            self.leading = True
            try:
                await self.elected()
            except Exception:  # noqa: BLE001 - the next pass of each loop catches up
                log.exception("taking over as the leader failed in part")
        elif self.leading and not leading:
            self.leading = False
            event(log, "not the leader any more: loops and node sessions stop here", level=logging.WARNING)
            self.deposed()
        return leading


async def _maintain(nodes: NodeRegistry, cfg: Config, stop: asyncio.Event, reconciler: Reconciler,
                    retrain: RetrainLoop, autoscaler: Autoscaler, apps: Apps, sample_history=None,
                    lead: Lead | None = None) -> None:
    """Liveness, heartbeat flushing and garbage collection, off the request path.

    With thousands of node sessions the heap holds many long-lived objects, and
    the generational collector's full passes rescan all of them, stalling the
    event loop for tens of milliseconds at random (bench/heartbeats measured p99
    heartbeat latency going from 30 ms to 400 ms at 7,500 nodes). Reference
    counting frees the per-heartbeat garbage; cycles are collected here on a
    schedule instead.
    """
    tick = min(1.0, cfg.node_timeout / 5)
    last_flush = last_gc = last_retrain = last_vm_check = last_scale = time.monotonic()
    last_history = 0.0  # at once: a restart's first minute is recorded too
    while not stop.is_set():
        woke = time.monotonic()
        # a follower wakes when the leader's lease is due to run out, to take over then
        wait = tick if lead is None or lead.leading else min(tick, max(0.02, lead.next_tick - woke))
        try:
            await asyncio.wait_for(stop.wait(), timeout=wait)
        except asyncio.TimeoutError:
            pass
        # A tick that ran late means the event loop was starved: heartbeats may be
        # waiting unread, so silence proves nothing about the nodes this time.
        stalled = time.monotonic() - woke > wait + tick
        if lead is not None and not await lead.tick():
            continue  # a follower: the leader does the rest
        try:
            with lead.leadership.fence() if lead is not None else contextlib.nullcontext():
                if stalled:
                    event(log, "maintenance ran late; liveness check skipped", late_s=round(time.monotonic() - woke - tick, 2),
                          level=logging.WARNING)
                else:
                    changes = await asyncio.to_thread(nodes.check_liveness, time.time())
                    for node_id, state in changes:
                        if state == "down":
                            event(log, "node down", node_id=node_id, state=state)
                    if changes:  # replicas of down nodes move, joined nodes take some; deletions waiting on them finish
                        await asyncio.to_thread(reconciler.rebalance)
                        await asyncio.to_thread(reconciler.finish_deletes)
                    elif reconciler.waiting_for_vms and time.monotonic() - last_vm_check >= 2.0:
                        last_vm_check = time.monotonic()  # replicas on cloud VMs still booting: move them once they join
                        await asyncio.to_thread(reconciler.rebalance)
                await asyncio.to_thread(apps.tick)  # periodic apps' scheduled runs; runs of lost nodes
                if time.monotonic() - last_flush >= cfg.flush_interval:
                    last_flush = time.monotonic()
                    await asyncio.to_thread(nodes.flush_heartbeats)
                if time.monotonic() - last_scale >= cfg.autoscale_interval:
                    last_scale = time.monotonic()
                    await asyncio.to_thread(autoscaler.tick)
                if sample_history is not None and time.monotonic() - last_history >= cfg.history_interval:
                    last_history = time.monotonic()
                    await asyncio.to_thread(sample_history)
                if time.monotonic() - last_retrain >= cfg.retrain_interval:
                    last_retrain = time.monotonic()
                    await retrain.tick()
                if time.monotonic() - last_gc >= cfg.gc_interval:
                    last_gc = time.monotonic()
                    started = time.perf_counter()
                    collected = gc.collect()
                    event(log, "garbage collected", objects=collected, ms=round((time.perf_counter() - started) * 1000, 1))
        except Fenced:  # this term ended while the pass ran: its writes were refused; the next tick knows
            event(log, "maintenance stopped: not the leader any more", level=logging.WARNING)
        except Exception:  # the store may be briefly unavailable; keep the loop alive
            log.exception("maintenance failed; retrying")
