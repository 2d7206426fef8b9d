"""Simulated node agents: many nodes per process, each with its own key, certificate, channel and stream.

A worker process runs one asyncio loop (grpc.aio) holding many simulated nodes. Each node
enrolls through the real NodeAgent.Enroll RPC with its own ECDSA key and CSR, opens its own
mTLS channel to the node listener with its own client certificate, sends Hello, waits for
Welcome, then sends a Heartbeat every interval at a random phase and waits for its
HeartbeatAck. The time from handing the Heartbeat to gRPC until its ack arrives is the
handling latency as a node sees it. When its stream breaks, a node notices at once (as the
daemon's reader does) and reconnects as the daemon does: node_daemon.agent's backoff and
Welcome timeout, retrying until it gets a Welcome.

The parent drives workers over a multiprocessing Pipe with small command dicts (see
`Worker.handle`).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import random
import resource
import threading
import time
from array import array

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node_daemon import agent
from stratum.grpc_util import CHANNEL_OPTIONS
from stratum.v1 import node_agent_pb2 as na, node_agent_pb2_grpc as na_grpc, types_pb2 as t

# The real daemon's channel options, plus a subchannel pool per channel: channels never
# share a connection, so every simulated node has its own TCP+TLS connection as it would.
SIM_CHANNEL_OPTIONS = CHANNEL_OPTIONS + [("grpc.use_local_subchannel_pool", 1)]
ENROLL_CONCURRENCY = 32
CONNECT_CONCURRENCY = 64
WELCOME_TIMEOUT_S = 60.0
LAG_PROBE_S = 0.05

GPU_MODELS = [("NVIDIA Jetson Orin NX", 15_656), ("Tesla T4", 15_360), ("NVIDIA A10G", 23_028), ("NVIDIA L4", 23_034)]


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- realistic messages ------------------------------------------------------------------


def capabilities(i: int, base: t.Capabilities) -> t.Capabilities:
    """A plausible edge/fog machine: this machine's real probe results (cpu model, os, kernel)
    with per-node identity, sizes, a typical set of interfaces and, on one node in four, a GPU."""
    rng = random.Random(i)
    c = t.Capabilities()
    c.CopyFrom(base)
    c.cpu_cores = rng.choice([2, 4, 4, 8, 8, 16])
    c.cpu_physical_cores = c.cpu_cores // rng.choice([1, 2])
    c.memory_mb = c.cpu_cores * rng.choice([2048, 4096, 8192]) - rng.randrange(200, 600)
    c.disk_mb = rng.choice([29_000, 58_000, 117_000, 238_000, 476_000])
    c.disk_free_mb = int(c.disk_mb * rng.uniform(0.2, 0.9))
    c.hostname = f"edge-{i:05d}.site-{i % 97:02d}.example.net"
    mac = lambda: "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))  # noqa: E731
    a, b = (i >> 8) & 0xFF, i & 0xFF
    del c.interfaces[:]
    c.interfaces.extend([
        t.NetworkInterface(name="lo", addresses=["127.0.0.1/8", "::1/128"], up=True, mtu=65536),
        t.NetworkInterface(name="eth0", mac=mac(), addresses=[f"10.{i % 200}.{a}.{b}/16", f"fd00:{a:x}::{b:x}/64", f"fe80::{a:x}:{b:x}ff:fe00:1/64"],
                           up=True, mtu=1500, speed_mbps=1000),
        t.NetworkInterface(name="wlan0", mac=mac(), addresses=[f"192.168.{a}.{b or 1}/24", f"fe80::{b:x}:{a:x}ff:fe00:2/64"], up=True, mtu=1500),
        t.NetworkInterface(name="docker0", mac=mac(), addresses=["172.17.0.1/16"], up=False, mtu=1500),
        t.NetworkInterface(name="wg0", addresses=[f"100.64.{a}.{b}/32"], up=True, mtu=1420),
    ])
    del c.gpus[:]
    if i % 4 == 0:
        model, mem = rng.choice(GPU_MODELS)
        c.gpus.append(t.Gpu(index=0, vendor="nvidia", model=model, memory_mb=mem, uuid=f"GPU-{rng.getrandbits(128):032x}",
                            driver_version="535.161.08"))
    return c


def labels(i: int) -> dict[str, str]:
    return {"zone": ["north", "south", "east", "west"][i % 4], "site": f"site-{i % 97:02d}", "rack": f"r{i % 12}"}


class UtilisationGen:
    """Plausible, changing utilisation (so varint sizes are what a real node sends)."""

    def __init__(self, caps: t.Capabilities, rng: random.Random):
        self.rng, self.caps = rng, caps
        self.rx, self.tx = rng.randrange(10**8, 10**11), rng.randrange(10**7, 10**10)

    def sample(self) -> t.Utilisation:
        r, caps = self.rng, self.caps
        self.rx += r.randrange(10**4, 10**7)
        self.tx += r.randrange(10**3, 10**6)
        mem_pct = r.uniform(15, 85)
        u = t.Utilisation(cpu_percent=round(r.uniform(1, 95), 1), memory_used_mb=int(caps.memory_mb * mem_pct / 100),
                          memory_percent=round(mem_pct, 1), disk_free_mb=caps.disk_free_mb - r.randrange(0, 500),
                          load1=r.uniform(0, caps.cpu_cores), net_rx_bytes=self.rx, net_tx_bytes=self.tx)
        u.gpu_percent.extend(round(r.uniform(0, 100), 1) for _ in caps.gpus)
        return u


def heartbeat(seq: int, util: t.Utilisation) -> na.NodeMessage:
    hb = na.Heartbeat(seq=seq, utilisation=util)
    hb.sent_at.GetCurrentTime()
    return na.NodeMessage(heartbeat=hb)


def _key_and_csr(name: str) -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).sign(key, hashes.SHA256())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def message_sizes(base: t.Capabilities) -> dict[str, int]:
    """Serialized sizes of a typical node's messages, bytes (protobuf only, no gRPC/HTTP2 framing)."""
    out = {}
    for i, kind in ((1, "no_gpu"), (0, "gpu")):
        caps = capabilities(i, base)
        util = UtilisationGen(caps, random.Random(i)).sample()
        out[f"hello_{kind}"] = na.NodeMessage(hello=na.Hello(capabilities=caps, labels=labels(i))).ByteSize()
        out[f"heartbeat_{kind}"] = heartbeat(1234, util).ByteSize()
    _, csr = _key_and_csr("edge-00001")
    out["enroll_request"] = na.EnrollRequest(join_token="x" * 80, name="edge-00001", csr_pem=csr, capabilities=capabilities(1, base)).ByteSize()
    return out


# -- the worker --------------------------------------------------------------------------


class Log:
    """Every heartbeat since the last reset: when it was due, when it was sent, its round trip (NaN until acked)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.gen = getattr(self, "gen", 0) + 1
        self.due, self.sent, self.rtt = array("d"), array("d"), array("d")
        self.errors = 0
        self.late = 0  # heartbeats skipped because the previous one was still waiting at its due time
        self.lag = array("d")

    def start(self, due: float, t0: float) -> tuple[int, int]:
        self.due.append(due)
        self.sent.append(t0)
        self.rtt.append(math.nan)
        return self.gen, len(self.sent) - 1

    def done(self, ref: tuple[int, int], rtt: float) -> None:
        if ref[0] == self.gen:
            self.rtt[ref[1]] = rtt


class SimNode:
    def __init__(self, worker: "Worker", index: int):
        self.w, self.index = worker, index
        self.name = f"bench-{index:05d}"
        self.caps = capabilities(index, worker.base)
        self.util = UtilisationGen(self.caps, random.Random(index * 7 + 1))
        self.key_pem = self.cert_pem = None
        self.node_id = ""
        self.channel = None
        self.call = None
        self.task: asyncio.Task | None = None
        self.seq = 0
        self.lost: asyncio.Future | None = None  # done when the current stream has ended

    async def enroll(self, stub) -> None:
        self.key_pem, csr = await asyncio.to_thread(_key_and_csr, self.name)
        req = na.EnrollRequest(join_token=self.w.join_token, name=self.name, csr_pem=csr, capabilities=self.caps, labels=labels(self.index))
        for attempt in range(5):
            try:
                resp = await stub.Enroll(req, timeout=120)
                break
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) or attempt == 4:
                    raise
                await asyncio.sleep(1 + attempt)
        self.node_id, self.cert_pem = resp.node_id, resp.certificate_pem.encode()

    async def connect(self, welcome_timeout: float = WELCOME_TIMEOUT_S) -> None:
        """Open the channel and the stream, Hello, Welcome."""
        await self.close()
        creds = grpc.ssl_channel_credentials(root_certificates=self.w.ca_pem, private_key=self.key_pem, certificate_chain=self.cert_pem)
        self.channel = grpc.aio.secure_channel(self.w.node_endpoint, creds, options=SIM_CHANNEL_OPTIONS)
        self.call = na_grpc.NodeAgentStub(self.channel).Connect()
        lost = self.lost = asyncio.get_running_loop().create_future()
        self.call.add_done_callback(lambda _: lost.done() or lost.set_result(None))
        self.seq = 0
        await self.call.write(na.NodeMessage(hello=na.Hello(capabilities=self.caps, labels=labels(self.index))))
        first = await asyncio.wait_for(self.call.read(), welcome_timeout)
        if first is grpc.aio.EOF or first.WhichOneof("body") != "welcome":
            raise RuntimeError(f"{self.name}: expected Welcome, got {first!r}")

    async def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
            self.call = None
        if self.channel is not None:
            await self.channel.close()
            self.channel = None

    async def run(self, interval: float) -> None:
        """Heartbeat at phase + k * interval; one outstanding heartbeat at a time; reconnect on failure."""
        loop = asyncio.get_running_loop()  # its clock is time.monotonic, the clock the parent's windows use
        due = loop.time() + random.uniform(0, interval)
        log = self.w.log
        while True:
            if not self.lost.done():  # wake early when the stream ends: the daemon's reader would see it at once
                await asyncio.wait((self.lost,), timeout=max(0.0, due - loop.time()))
            try:
                if self.lost.done():
                    raise ConnectionError("stream ended")
                self.seq += 1
                msg = heartbeat(self.seq, self.util.sample())
                t0 = time.monotonic()
                ref = log.start(due, t0)
                await self.call.write(msg)
                ack = await self.call.read()
                while ack is not grpc.aio.EOF and ack.WhichOneof("body") == "assignments":
                    ack = await self.call.read()  # what to run (nothing, for a simulated node): not an answer
                t1 = time.monotonic()
                if ack is grpc.aio.EOF or ack.WhichOneof("body") != "heartbeat_ack" or ack.heartbeat_ack.seq != self.seq:
                    raise RuntimeError(f"unexpected answer to heartbeat {self.seq}: {ack!r}")
                log.done(ref, t1 - t0)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - count it, reconnect like a daemon would
                self.w.log.errors += 1
                self.w.total_errors += 1
                await self.reconnect()
                due = loop.time() + random.uniform(0, interval)
                continue
            due += interval
            now = loop.time()
            while due < now:  # fell behind: skip the slots we missed (they count as missing)
                due += interval
                log.late += 1


    async def reconnect(self) -> None:
        """node_daemon/agent.py's loop: wait backoff(attempt), try, until a Welcome. Every try is
        logged (start time, success) for the restart scenario."""
        rc = self.w.reconnects
        rc.lost.append(time.monotonic())
        attempt = 0
        while True:
            attempt += 1
            await asyncio.sleep(agent.backoff(attempt))
            t0 = time.monotonic()
            try:
                await self.connect(agent.WELCOME_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - refused, timed out, or ended before Welcome: try again
                rc.tries.extend((t0, 0.0))
                continue
            rc.tries.extend((t0, 1.0))
            rc.welcomed.append(time.monotonic())
            return


class Reconnects:
    """Since the last reset: when nodes lost their stream, every reconnect try (start, 1.0 if it got a
    Welcome), and when each reconnected."""

    def __init__(self):
        self.lost, self.tries, self.welcomed = array("d"), array("d"), array("d")


class Worker:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.base = t.Capabilities.FromString(cfg["base_capabilities"])
        self.join_token, self.ca_pem = cfg["join_token"], cfg["ca_pem"]
        self.endpoint, self.node_endpoint = cfg["endpoint"], cfg["node_endpoint"]
        self.interval = cfg["interval"]
        self.nodes: list[SimNode] = []
        self.log = Log()
        self.reconnects = Reconnects()
        self.total_errors = 0
        self._enroll_channel = None

    async def lag_probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.log.lag.append(loop.time() - t0 - LAG_PROBE_S)

    async def add(self, indices: list[int]) -> dict:
        if self._enroll_channel is None:
            creds = grpc.ssl_channel_credentials(root_certificates=self.ca_pem)
            self._enroll_channel = grpc.aio.secure_channel(self.endpoint, creds, options=CHANNEL_OPTIONS)
        stub = na_grpc.NodeAgentStub(self._enroll_channel)
        new = [SimNode(self, i) for i in indices]
        failures: list[str] = []

        async def bounded(sem, coro_fn, node):
            async with sem:
                try:
                    await coro_fn(node)
                    return node
                except Exception as e:  # noqa: BLE001
                    failures.append(f"{node.name}: {type(e).__name__}: {str(e)[:200]}")
                    return None

        t0 = time.monotonic()
        sem = asyncio.Semaphore(ENROLL_CONCURRENCY)
        enrolled = [n for n in await asyncio.gather(*(bounded(sem, lambda n: n.enroll(stub), n) for n in new)) if n]
        t1 = time.monotonic()
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
        connected = [n for n in await asyncio.gather(*(bounded(sem, lambda n: n.connect(), n) for n in enrolled)) if n]
        t2 = time.monotonic()
        for n in connected:
            n.task = asyncio.create_task(n.run(self.interval))
        self.nodes.extend(connected)
        gc.collect()
        gc.freeze()  # the long-lived node objects need no more scanning: fewer, shorter pauses
        return {"enrolled": len(enrolled), "connected": len(connected), "failures": failures[:5], "failed": len(failures),
                "enroll_s": t1 - t0, "connect_s": t2 - t1, "nodes": len(self.nodes)}

    def stats(self, since: float, until: float, samples: bool = False) -> dict:
        """Heartbeats due in [since, until) (monotonic clock, the same in every process).

        Counting by due time makes a window of k intervals hold exactly k heartbeats per node.
        """
        lg = self.log
        due_n = acked = 0
        rtts, delays, raw = array("d"), array("d"), array("d")
        for k in range(len(lg.due)):
            if since <= lg.due[k] < until:
                due_n += 1
                delays.append(lg.sent[k] - lg.due[k])
                r = lg.rtt[k]
                if r == r:  # not NaN
                    acked += 1
                    rtts.append(r)
                if samples:
                    raw.extend((lg.sent[k], r))
        return {"sent": due_n, "acked": acked, "rtts": rtts.tobytes(), "send_delays": delays.tobytes(), "errors": lg.errors,
                "late": lg.late, "lag": lg.lag.tobytes(), "nodes": len(self.nodes), "samples": raw.tobytes()}

    async def handle(self, cmd: dict):
        op = cmd["op"]
        if op == "add":
            return await self.add(cmd["indices"])
        if op == "reset":
            self.log.reset()
            return {"at": time.monotonic()}
        if op == "stats":
            return self.stats(cmd["since"], cmd["until"], cmd.get("samples", False))
        if op == "reconnects":
            rc = self.reconnects
            if cmd.get("reset"):
                self.reconnects = Reconnects()
            return {"lost": rc.lost.tobytes(), "tries": rc.tries.tobytes(), "welcomed": rc.welcomed.tobytes(), "nodes": len(self.nodes)}
        if op == "stop":
            for n in self.nodes:
                if n.task:
                    n.task.cancel()
            await asyncio.gather(*(n.task for n in self.nodes if n.task), return_exceptions=True)
            await asyncio.wait_for(asyncio.gather(*(n.close() for n in self.nodes), return_exceptions=True), 20)
            if self._enroll_channel is not None:
                await self._enroll_channel.close()
            return {"stopped": True}
        raise ValueError(f"unknown op {op!r}")


def worker_main(conn, cfg: dict) -> None:
    """Entry point of a worker process: serve commands from `conn` until "stop"."""
    raise_nofile()
    if cfg.get("nice"):
        os.nice(cfg["nice"])
    asyncio.run(_serve(conn, cfg))


async def _serve(conn, cfg: dict) -> None:
    loop = asyncio.get_running_loop()
    w = Worker(cfg)
    probe = asyncio.create_task(w.lag_probe())
    inbox: asyncio.Queue = asyncio.Queue()

    def reader():
        while True:
            try:
                cmd = conn.recv()
            except EOFError:
                cmd = {"op": "stop", "eof": True}
            loop.call_soon_threadsafe(inbox.put_nowait, cmd)
            if cmd["op"] == "stop":
                return

    threading.Thread(target=reader, daemon=True).start()
    while True:
        cmd = await inbox.get()
        try:
            result = {"ok": True, **(await w.handle(cmd))}
        except Exception as e:  # noqa: BLE001 - report to the parent instead of dying silently
            result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        if not cmd.get("eof"):
            await asyncio.to_thread(conn.send, result)
        if cmd["op"] == "stop":
            break
    probe.cancel()
    os._exit(0)  # skip grpc's slow teardown of thousands of channels
