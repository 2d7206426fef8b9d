"""The node's session with the control plane: Hello, Welcome, then heartbeats.

One asyncio task owns the session. When the stream breaks (control plane
restarted, network cut) the agent reconnects with capped exponential backoff
and jitter, forever: a node must outlive any control-plane outage and rejoin
by itself (the house rule "keep serving while the control plane is away").
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal

import grpc

from node_daemon.capabilities import collect
from node_daemon.identity import Identity
from node_daemon.utilisation import Sampler
from stratum.grpc_util import secure_channel, split_endpoint
from stratum.logs import event
from stratum.v1 import node_agent_pb2 as na, node_agent_pb2_grpc as na_grpc

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
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
    """Delay before reconnect number `attempt` (1-based): exponential, capped, with jitter so a
    fleet that lost the control plane together does not come back in one burst."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


class Agent:
    def __init__(self, ident: Identity, labels: dict[str, str], server: str | None = None):
        self.ident = ident
        self.labels = labels
        # The node listener lives on the host the operator points us at; its port came from enrollment.
        host, _ = split_endpoint(server or ident.server)
        self.endpoint = f"[{host}]:{ident.node_agent_port}" if ":" in host else f"{host}:{ident.node_agent_port}"
        self.sampler = Sampler(ident.data_dir)
        self.stop = asyncio.Event()
        self.sessions = 0  # sessions that got a Welcome; a new one resets the backoff

    async def run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            welcomed_before = self.sessions
            try:
                await self._session()
            except grpc.aio.AioRpcError as e:
                event(log, "session failed", level=logging.WARNING, endpoint=self.endpoint, code=e.code().name, error=e.details())
            except SessionLost as e:
                event(log, "session lost", level=logging.WARNING, endpoint=self.endpoint, error=str(e))
            except Exception as e:  # noqa: BLE001 - nothing in one session may end the daemon
                event(log, "session error", level=logging.ERROR, endpoint=self.endpoint, error=f"{type(e).__name__}: {e}")
            if self.stop.is_set():
                break
            # A session that got as far as Welcome was healthy: start the backoff over.
            attempt = 1 if self.sessions > welcomed_before else attempt + 1
            delay = backoff(attempt)
            event(log, "reconnecting", endpoint=self.endpoint, attempt=attempt, retry_in_s=round(delay, 2))
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def _session(self) -> None:
        """One session; returns when stop is set, raises when the session breaks."""
        ident = self.ident
        async with secure_channel(self.endpoint, ident.ca_pem, ident.key_pem, ident.cert_pem, aio=True) as channel:
            call = na_grpc.NodeAgentStub(channel).Connect()
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
                self.sessions += 1
                event(log, "session started", endpoint=self.endpoint, node_id=first.welcome.node_id,
                      heartbeat_interval_s=interval, session=self.sessions)
                await self._heartbeats(call, interval)
            except asyncio.TimeoutError:
                raise SessionLost("no Welcome from the control plane") from None
            finally:
                call.cancel()

    async def _heartbeats(self, call, interval: float) -> None:
        acked = 0
        seq = 0

        async def read_acks():
            nonlocal acked
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    raise SessionLost("control plane ended the session")
                if msg.WhichOneof("body") == "heartbeat_ack":
                    acked = max(acked, msg.heartbeat_ack.seq)

        reader = asyncio.create_task(read_acks())
        try:
            while not self.stop.is_set():
                if seq - acked >= MISSED_ACKS:
                    raise SessionLost(f"{seq - acked} heartbeats unacknowledged")
                seq += 1
                hb = na.Heartbeat(seq=seq, utilisation=await asyncio.to_thread(self.sampler.sample))
                hb.sent_at.GetCurrentTime()
                await _write(call, na.NodeMessage(heartbeat=hb))
                # Sleep one interval, but wake for stop or for the reader failing (stream gone).
                stopper = asyncio.create_task(self.stop.wait())
                done, _ = await asyncio.wait({reader, stopper}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if reader in done:
                    reader.result()  # re-raises the reason
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def serve(ident: Identity, labels: dict[str, str], server: str | None = None) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    agent = Agent(ident, labels, server)
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
