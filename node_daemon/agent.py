"""The node's session with the control plane: Hello, Welcome, then heartbeats.

One asyncio task owns the session. When the stream breaks (control plane
restarted, network cut) the agent reconnects with capped exponential backoff
and full jitter, forever: a node must outlive any control-plane outage and rejoin
by itself (the house rule "keep serving while the control plane is away").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import signal

import grpc

from node_daemon import metrics
from node_daemon.capabilities import collect
from node_daemon.identity import Identity
from node_daemon.utilisation import Sampler
from stratum.grpc_util import secure_channel, split_endpoint
from stratum.logs import event
from stratum.v1 import node_agent_pb2 as na, node_agent_pb2_grpc as na_grpc

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
# A node is back at most this long after the control plane is. Tries while it is down are refused
# connections, which cost it nothing; once it is up, the jitter spreads the fleet's tries over the cap.
BACKOFF_CAP_S = 5.0
WELCOME_TIMEOUT_S = 15.0
DEFAULT_INTERVAL_S = 5.0
MISSED_ACKS = 3  # heartbeats without an ack after which the session is presumed dead


class SessionLost(Exception):
    pass


async def _write(call, msg: na.NodeMessage) -> None:
    try:
        await call.write(msg)
    except asyncio.InvalidStateError:
        # The RPC ended before this write (e.g. the connection never came up): report why it ended.
        raise SessionLost(f"stream closed: {(await call.code()).name}: {await call.details()}") from None


def backoff(attempt: int) -> float:
    """Delay before reconnect number `attempt` (1-based): "full jitter", uniform between 0 and an
    exponential ceiling capped at BACKOFF_CAP_S. A fleet that lost the control plane together comes
    back spread evenly over the ceiling (fleet / cap tries a second at most), not in one burst."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(0.0, ceiling)


SAMPLES_EVERY = 6  # heartbeats between reports that carry sampled request inputs (30 s at the default 5 s)


class Agent:
    def __init__(self, ident: Identity, labels: dict[str, str], server: str | None = None, services=None, apps=None):
        self.ident = ident
        self.labels = labels
        # The node listener lives on the host the operator points us at; its port came from
        # enrollment. With several control planes (--server a,b,c: they share one port plan), the
        # agent tries them in turn; a follower refuses the session and names the leader's listener,
        # which is tried next, at once.
        self.endpoints = []
        for each in (server or ident.server).split(","):
            host, _ = split_endpoint(each.strip())
            self.endpoints.append(f"[{host}]:{ident.node_agent_port}" if ":" in host else f"{host}:{ident.node_agent_port}")
        self.endpoint = self.endpoints[0]
        self._next = 0  # index into endpoints of the one to try after this one
        self.redirect = ""  # the leader's node listener, as a follower named it
        self.sampler = Sampler(ident.data_dir)
        self.stop = asyncio.Event()
        self.sessions = 0  # sessions that got a Welcome; a new one resets the backoff
        self.reconnects = 0  # attempts after a session ended or failed (node_daemon/metrics.py reads these)
        self.connected = False
        self.services = services  # node_daemon.services.ServiceManager, or None (no replicas on this node)
        self.stub = None  # the current session's NodeAgent stub (FetchBento uses it)
        self.report_due = asyncio.Event()
        # Other messages for the control plane (log data it asked for): written by the session loop,
        # the stream's one writer.
        self.outbox: asyncio.Queue = asyncio.Queue()
        if services is not None:
            services.report = self.report_due.set
            services.fetch = self._fetch
        self.apps = apps  # node_daemon.apps.manager.AppManager, or None
        self.dask = None  # node_daemon.dask_workers.DaskWorkers: dask workers for trainings, or None
        if apps is not None:
            apps.report = self.report_due.set
            apps.fetch = self._fetch_blob
            apps.upload = self._upload

    def _fetch_blob(self, digest: str, offset: int):
        if self.stub is None:
            raise ConnectionError("no session with the control plane")
        from node_daemon.services import grpc_fetcher

        return grpc_fetcher(self.stub, digest, offset, method="FetchBlob")

    async def _upload(self, run_id: str, path) -> str:
        """A run's output file to the control plane (UploadOutput), verified by its sha256 there."""
        if self.stub is None:
            raise ConnectionError("no session with the control plane")
        data = await asyncio.to_thread(path.read_bytes)
        sha = hashlib.sha256(data).hexdigest()

        def messages():
            yield na.UploadOutputRequest(header=na.UploadOutputHeader(run_id=run_id, sha256=sha, size=len(data)))
            for i in range(0, len(data), 1 << 20):
                yield na.UploadOutputRequest(chunk=data[i:i + (1 << 20)])

        res = await self.stub.UploadOutput(messages(), timeout=120)
        return res.sha256

    def report(self, with_samples: bool = False) -> na.ServiceReport:
        report = self.services.status(with_samples=with_samples) if self.services is not None else na.ServiceReport()
        if self.apps is not None:
            report.apps.extend(self.apps.status())
        return report

    def _fetch(self, digest: str, offset: int):
        if self.stub is None:
            raise ConnectionError("no session with the control plane")
        from node_daemon.services import grpc_fetcher

        return grpc_fetcher(self.stub, digest, offset)

    def _choose(self) -> None:
        """The endpoint for the next session: the leader a follower named, else the next in the list."""
        if self.redirect:
            self.endpoint, self.redirect = self.redirect, ""
            return
        self.endpoint = self.endpoints[self._next % len(self.endpoints)]
        self._next += 1

    async def run(self) -> None:
        # attempt: rounds of tries without a session, each round every control plane in the list once
        # (one down must not delay reaching the one up: the backoff comes between rounds)
        attempt = redirects = tried = 0
        while not self.stop.is_set():
            welcomed_before = self.sessions
            self._choose()
            try:
                await self._session()
            except grpc.aio.AioRpcError as e:
                md = e.trailing_metadata()
                leader = (md.get("stratum-leader-node", "") if hasattr(md, "get") else
                          next((v for k, v in md or () if k == "stratum-leader-node"), ""))
                if e.code() == grpc.StatusCode.UNAVAILABLE and leader and leader != self.endpoint and redirects < 3:
                    event(log, "not the leader; trying the leader", endpoint=self.endpoint, leader=leader)
                    self.redirect = leader
                    redirects += 1
                    continue  # at once: the follower answered, so the cluster is up (a few times, then backoff)
                event(log, "session failed", level=logging.WARNING, endpoint=self.endpoint, code=e.code().name, error=e.details())
            except SessionLost as e:
                event(log, "session lost", level=logging.WARNING, endpoint=self.endpoint, error=str(e))
            except Exception as e:  # noqa: BLE001 - nothing in one session may end the daemon
                event(log, "session error", level=logging.ERROR, endpoint=self.endpoint, error=f"{type(e).__name__}: {e}")
            if self.stop.is_set():
                break
            redirects = 0
            if self.sessions > welcomed_before:  # a session that got as far as Welcome was healthy: start over
                attempt, tried = 1, 0
            else:
                tried += 1
                if tried < len(self.endpoints):
                    self.reconnects += 1
                    event(log, "trying the next control plane", endpoint=self.endpoint, attempt=attempt)
                    continue
                attempt, tried = attempt + 1, 0
            delay = backoff(attempt)
            self.reconnects += 1
            event(log, "reconnecting", endpoint=self.endpoint, attempt=attempt, retry_in_s=round(delay, 2))
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def _session(self) -> None:
        """One session; returns when stop is set, raises when the session breaks."""
        ident = self.ident
        async with secure_channel(self.endpoint, ident.ca_pem, ident.key_pem, ident.cert_pem, aio=True) as channel:
            self.stub = na_grpc.NodeAgentStub(channel)
            call = self.stub.Connect()
            try:
                # Probes block (netlink, nvidia-smi): keep them off the event loop.
                caps = await asyncio.to_thread(collect, ident.data_dir)
                await _write(call, na.NodeMessage(hello=na.Hello(capabilities=caps, labels=self.labels)))
                first = await asyncio.wait_for(call.read(), timeout=WELCOME_TIMEOUT_S)
                if first is grpc.aio.EOF:  # (a non-OK end raises AioRpcError from read() instead)
                    raise SessionLost("control plane closed the stream before Welcome")
                if first.WhichOneof("body") != "welcome":
                    raise SessionLost(f"expected Welcome, got {first.WhichOneof('body')}")
                interval = first.welcome.heartbeat_interval_s or DEFAULT_INTERVAL_S
                if first.welcome.control_planes:  # every control plane's listener: where to go if this one goes
                    self.endpoints = list(dict.fromkeys([*first.welcome.control_planes, *self.endpoints]))
                    self._next = 1
                self.sessions += 1
                self.connected = True
                event(log, "session started", endpoint=self.endpoint, node_id=first.welcome.node_id,
                      heartbeat_interval_s=interval, session=self.sessions)
                await self._heartbeats(call, interval)
            except asyncio.TimeoutError:
                raise SessionLost("no Welcome from the control plane") from None
            finally:
                self.stub = None
                self.connected = False
                call.cancel()

    async def _heartbeats(self, call, interval: float) -> None:
        acked = 0
        seq = 0
        loop = asyncio.get_running_loop()
        sent_at: dict[int, float] = {}  # seq -> loop time it was sent, until acked (at most MISSED_ACKS)

        async def read_acks():
            nonlocal acked
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    raise SessionLost("control plane ended the session")
                kind = msg.WhichOneof("body")
                if kind == "heartbeat_ack":
                    ack = msg.heartbeat_ack.seq
                    acked = max(acked, ack)
                    if ack in sent_at:
                        metrics.heartbeat_acked(loop.time() - sent_at[ack])
                    for s in [s for s in sent_at if s <= ack]:  # and any older one whose ack never came
                        del sent_at[s]
                elif kind == "assignments":
                    # Stopping replicas takes seconds: never hold up the acks (the managers order applies).
                    if self.services is not None:
                        asyncio.create_task(self.services.apply(msg.assignments))
                    if self.apps is not None:
                        asyncio.create_task(self.apps.apply(msg.assignments))
                    if self.dask is not None:
                        asyncio.create_task(self.dask.apply(msg.assignments))
                elif kind == "log_request" and self.apps is not None:
                    await self.apps.serve_log(msg.log_request, lambda data: self.outbox.put_nowait(data))

        reader = asyncio.create_task(read_acks())
        try:
            while not self.stop.is_set():
                if seq - acked >= MISSED_ACKS:
                    raise SessionLost(f"{seq - acked} heartbeats unacknowledged")
                seq += 1
                hb = na.Heartbeat(seq=seq, utilisation=await asyncio.to_thread(self.sampler.sample))
                hb.sent_at.GetCurrentTime()
                sent_at[seq] = loop.time()
                await _write(call, na.NodeMessage(heartbeat=hb))
                running = (self.services is not None and self.services.services) or (self.apps is not None and self.apps.instances)
                if running and seq % SAMPLES_EVERY == 0:
                    self.report_due.set()  # a node running nothing has nothing to report
                # Sleep one interval, but wake for stop, for the reader failing (stream gone), or to report
                # a change of what this node runs (one writer: this loop).
                deadline = loop.time() + interval
                while True:
                    stopper = asyncio.create_task(self.stop.wait())
                    reporter = asyncio.create_task(self.report_due.wait())
                    mail = asyncio.create_task(self.outbox.get())
                    left = max(0.0, deadline - loop.time())
                    done, _ = await asyncio.wait({reader, stopper, reporter, mail}, timeout=left,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    stopper.cancel()
                    reporter.cancel()
                    if mail in done:
                        await _write(call, na.NodeMessage(log=mail.result()))
                    else:
                        mail.cancel()
                    if reader in done:
                        reader.result()  # re-raises the reason
                    if mail in done:
                        continue
                    if reporter in done and not self.stop.is_set():
                        self.report_due.clear()
                        await _write(call, na.NodeMessage(services=self.report(with_samples=seq % SAMPLES_EVERY == 0)))
                        continue
                    break
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def serve(ident: Identity, labels: dict[str, str], server: str | None = None, services=None, apps=None,
                dask=None) -> None:
    """Run the agent until SIGTERM or SIGINT; then stop every replica, app and dask worker (services.close,
    apps.close, dask.close)."""
    agent = Agent(ident, labels, server, services, apps)
    agent.dask = dask
    if dask is not None:  # a training's scheduler runs beside the control plane this node has its session with
        dask.server_host = lambda: split_endpoint(agent.endpoint)[0]
    metrics.watch(agent, services)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop.set)
    event(log, "node agent starting", node_id=ident.node_id, name=ident.name, endpoint=agent.endpoint)
    runner = asyncio.create_task(agent.run())
    await agent.stop.wait()
    event(log, "node agent stopping", node_id=ident.node_id)
    try:
        await asyncio.wait_for(runner, timeout=5)
    except asyncio.TimeoutError:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    if dask is not None:
        await dask.close()
    if apps is not None:
        await apps.close()
    if services is not None:
        await services.close()
