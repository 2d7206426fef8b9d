"""The service endpoint: one HTTP reverse proxy per service, in front of its ready replicas.

    router = ServiceRouter("127.0.0.1", 0)              # port 0: pick a free one
    await router.start()                                  # router.url is the service endpoint
    router.add_backend("r1", "127.0.0.1", 41001)
    await router.drain("r1", timeout=30)                  # no new requests, wait for in-flight, remove

Balancing: each request goes to the ready backend with the fewest requests in flight (ties:
round robin).  POST /predict is a pure function of its body, so a connection-level failure
(refused, reset, closed before the whole response) is retried once on another backend, as is
any GET/HEAD; other requests are retried only when they failed on a reused keep-alive
connection before any byte of the answer came back (the backend closed an idle connection as
we sent: nothing reached the service).  A backend whose fresh connection fails is marked
down; a background GET /healthz every `health_interval` s brings it back (and marks a backend
down after `health_failures` failed checks in a row).  No ready backend:
503 {"error": ...}; a backend that does not answer within `request_timeout`: 504.

Rolling update (node_daemon/replicas/service.py): start the new replica, wait for its
/healthz, `add_backend` it, `drain` the old one (returns once its in-flight requests are
done), and only then stop the old process.

Drift sampling: a bounded reservoir (Vitter's algorithm R, over requests) of input rows of
POST /predict.  A body is parsed only when the reservoir takes it, after the response is on
its way, so parsing stays off the fast path once the reservoir is full.  `samples()`.

Why not a framework: the proxy must cost little next to a ~2-6 ms BentoML request (target
<= 1.10x the latency of calling BentoML directly) on small edge CPUs.  aiohttp server +
aiohttp client measured ~0.7 ms of CPU per proxied request here; this byte-level proxy on
asyncio protocols, with a keep-alive pool per backend and no per-request task, needs a
fraction of that.  It parses only what routing needs (request line, Content-Length /
chunked, Connection, Expect) and relays the backend's response bytes untouched.

`python -m node_daemon.replicas.router --port P --backend HOST:PORT ...` runs one standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field

from stratum.runtime.latency import MinuteMetrics

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024
IDLE_REUSE_S = 4.0  # uvicorn (BentoML) closes idle keep-alive connections after 5 s
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer",
              b"upgrade", b"expect", b"content-length", b"proxy-authorization", b"proxy-authenticate"}
_REASONS = {400: "Bad Request", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 501: "Not Implemented"}


def _json_response(status: int, message: str, close: bool = False) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n")
    return head.encode() + body


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _parse_chunked(buf: bytearray, pos: int) -> tuple[int, bytes] | None:
    """Decode a chunked body starting at buf[pos]: (end offset, body) or None if incomplete."""
    out = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadRequest(400, "malformed chunked body") from None
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # trailers (usually none) end with an empty line
            if end < 0:
                return None
            return end + 4, b"".join(out)
        start = eol + 2
        if len(buf) < start + size + 2:
            return None
        out.append(bytes(buf[start:start + size]))
        pos = start + size + 2


class _Exchange:
    """One client request on its way through the router."""
    __slots__ = ("down", "method", "path", "wire", "body", "idempotent", "tried", "backend", "t0", "timer", "upstream",
                 "close_after", "done", "stream", "forwarded", "forms", "form", "parked", "arrived", "from_peer")

    def __init__(self, down, method: bytes, path: bytes, wire: bytes, body: bytes, close_after: bool,
                 stream: bytes = b"", forwarded: bool = False):
        self.down, self.method, self.path, self.wire, self.body = down, method, path, wire, body
        self.idempotent = method in (b"GET", b"HEAD", b"OPTIONS") or (method == b"POST" and path == b"/predict")
        self.tried: list = []
        self.backend = self.timer = self.upstream = None
        self.t0 = 0.0
        self.close_after = close_after
        self.done = False
        self.stream, self.forwarded = stream, forwarded  # request placement: stream key; from another router
        self.from_peer = forwarded  # another node's router sent it: that router counts it in its minutes
        self.forms = None  # forms to try, best first (request placement), or None: any local replica
        self.form = ""  # the form that answered
        self.parked = False  # has waited for an on-demand start once (a failed start is not retried for it)
        self.arrived = 0.0  # time.time() of its first dispatch: its latency, for the minute metrics


class _Downstream(asyncio.Protocol):
    """A client connection: parses requests one at a time (pipelined ones wait their turn)."""

    def __init__(self, router: "ServiceRouter"):
        self.router = router
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self._continued = False  # 100 Continue sent for the request being read

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc):
        self.closed = True

    def data_received(self, data: bytes):
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        try:
            ex = self._parse()
        except _BadRequest as e:
            self.transport.write(_json_response(e.status, str(e), close=True))
            self.transport.close()
            self.closed = True
            return
        if ex is not None:
            self.busy = True
            self.router._dispatch(ex)

    def _parse(self) -> _Exchange | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise _BadRequest(431, "request head too large")
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ", 2)
        except ValueError:
            raise _BadRequest(400, "malformed request line") from None
        length = 0
        chunked = expect = False
        conn = stream = b""
        forwarded = False
        kept = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise _BadRequest(400, "malformed header line")
            lname = name.strip().lower()
            if lname.startswith(b"x-stratum-"):
                if lname == b"x-stratum-stream":
                    stream = value.strip()[:200]
                elif lname == b"x-stratum-forwarded":
                    forwarded = True
                    continue  # added again, once, when this request is forwarded
            if lname in HOP_BY_HOP:
                value = value.strip()
                if lname == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        raise _BadRequest(400, "invalid Content-Length") from None
                elif lname == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif lname == b"connection":
                    conn = value.lower()
                elif lname == b"expect":
                    expect = value.lower() == b"100-continue"
                elif lname == b"upgrade":
                    raise _BadRequest(501, "protocol upgrades are not supported by the service router")
                continue
            kept.append(line)
        close_after = b"close" in conn or (version == b"HTTP/1.0" and b"keep-alive" not in conn)
        start = end + 4
        if chunked:
            if expect and not self._continued:
                self._continued = True
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            parsed = _parse_chunked(buf, start)
            if parsed is None:
                if len(buf) > MAX_HEAD + MAX_BODY:
                    raise _BadRequest(413, "request body too large")
                return None
            consumed, body = parsed
        else:
            if length > MAX_BODY:
                raise _BadRequest(413, "request body too large")
            if len(buf) < start + length:
                if expect and not self._continued:
                    self._continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return None
            consumed, body = start + length, bytes(buf[start:start + length])
        self._continued = False
        del buf[:consumed]
        head = b"\r\n".join([method + b" " + target + b" HTTP/1.1", *kept, b"content-length: %d" % len(body)])
        path = target.split(b"?", 1)[0]
        return _Exchange(self, method, path, head + b"\r\n\r\n" + body, body, close_after, stream, forwarded)

    def respond(self, data: bytes, close: bool) -> None:
        if self.closed:
            return
        self.transport.write(data)
        self.busy = False
        if close:
            self.transport.close()
            self.closed = True
        elif self.buf:
            self._next()


class _Upstream(asyncio.Protocol):
    """One keep-alive connection to a backend, carrying one exchange at a time."""

    def __init__(self, router: "ServiceRouter", backend: "Backend"):
        self.router, self.backend = router, backend
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.ex: _Exchange | None = None
        self.closed = False
        self.used = 0  # exchanges sent on this connection
        self.idle_since = 0.0
        self._reset_parse()

    def _reset_parse(self):
        self.head_end = -1
        self.length = -1  # -1: unknown yet; -2: chunked; -3: until close
        self.keep_alive = True
        self.no_body = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def send(self, ex: _Exchange) -> None:
        self.ex = ex
        ex.upstream = self
        self.used += 1
        self.transport.write(ex.wire)

    def data_received(self, data: bytes):
        if self.ex is None:
            if data:  # bytes nobody asked for: this connection cannot be trusted for the next exchange
                self.closed = True
                self.backend.discard(self)
                self.transport.close()
            return
        self.buf += data
        buf = self.buf
        if self.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_end = end + 4
            lines = bytes(buf[:end]).split(b"\r\n")
            status_line = lines[0].split(b" ", 2)
            status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 502
            if status in (100, 103):  # interim response: skip it
                del buf[:end + 4]
                self.head_end = -1
                if buf:
                    self.data_received(b"")
                return
            self.no_body = self.ex.method == b"HEAD" or status in (204, 304)
            self.keep_alive = not lines[0].startswith(b"HTTP/1.0")
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    self.length = int(value.strip())
                elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                    self.length = -2
                elif lname == b"connection":
                    v = value.strip().lower()
                    if b"close" in v:
                        self.keep_alive = False
                    elif b"keep-alive" in v:
                        self.keep_alive = True
            if self.no_body:
                self.length = 0
            elif self.length == -1:
                self.length, self.keep_alive = -3, False
        if self.length >= 0:
            total = self.head_end + self.length
            if len(buf) < total:
                return
        elif self.length == -2:
            total = self._chunked_end()
            if total < 0:
                return
        else:
            return  # until close: finished in connection_lost
        self._finish(total)

    def _chunked_end(self) -> int:
        buf, pos = self.buf, self.head_end
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return -1
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)
                return -1 if end < 0 else end + 4
            pos = eol + 2 + size + 2
            if len(buf) < pos:
                return -1

    def _finish(self, total: int) -> None:
        data = bytes(self.buf[:total])
        del self.buf[:total]
        ex, self.ex = self.ex, None
        keep = self.keep_alive and not self.closed
        self._reset_parse()
        if not keep:
            self.closed = True
            self.transport.close()
        self.router._complete(ex, self, data, keep)

    def connection_lost(self, exc):
        self.closed = True
        self.backend.discard(self)
        ex, self.ex = self.ex, None
        if ex is None or ex.done:
            return
        if self.length == -3 and self.head_end >= 0:  # response delimited by close
            data = bytes(self.buf)
            self._reset_parse()
            self.router._complete(ex, self, data, False)
            return
        got_bytes = self.head_end >= 0 or bool(self.buf)
        self.router._failed(ex, self, exc or ConnectionResetError("connection closed before the response"),
                            reused=self.used > 1, got_bytes=got_bytes)


@dataclass(eq=False)
class Backend:
    id: str
    host: str
    port: int
    state: str = "ready"  # ready | down | draining
    form: str = "edge"  # request placement: edge (a local replica) | always_on (another node's router) | on_demand
    remote: bool = False  # another node's service router: requests sent there carry x-stratum-forwarded
    last_used: float = field(default_factory=time.monotonic)  # last request sent or answered: on-demand idle stop
    outstanding: int = 0
    requests: int = 0
    errors: int = 0
    latency_s_total: float = 0.0
    added_at: float = field(default_factory=time.monotonic)
    idle: list = field(default_factory=list)
    conns: set = field(default_factory=set)
    drained: asyncio.Event | None = None
    failed_probes: int = 0

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def discard(self, conn: _Upstream) -> None:
        self.conns.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def close_idle(self) -> None:
        for conn in list(self.idle):
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()

    def describe(self) -> dict:
        return {"id": self.id, "url": self.base, "state": self.state, "outstanding": self.outstanding,
                "form": self.form, "requests": self.requests, "errors": self.errors, "connections": len(self.conns),
                "mean_latency_ms": round(self.latency_s_total / self.requests * 1000, 3) if self.requests else None}


class Reservoir:
    """Uniform sample of at most `size` items from a stream (algorithm R)."""

    def __init__(self, size: int, rng: random.Random | None = None):
        self.size = size
        self.items: list = []
        self.seen = 0
        self.rng = rng or random.Random()

    def slot(self) -> int | None:
        """Count one more stream item; the index it should take, or None to drop it."""
        self.seen += 1
        if len(self.items) < self.size:
            return len(self.items)
        j = self.rng.randrange(self.seen)
        return j if j < self.size else None

    def put(self, index: int, item) -> None:
        if index >= len(self.items):
            self.items.append(item)
        else:
            self.items[index] = item


class ServiceRouter:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, sample_size: int = 1000, health_interval: float = 1.0,
                 request_timeout: float = 60.0, service_id: str = "", health_failures: int = 3):
        self.host, self.port = host, port
        self.health_failures = health_failures
        self.service_id = service_id
        self.backends: dict[str, Backend] = {}
        self._order: list[Backend] = []
        self._rr = 0
        self.reservoir = Reservoir(sample_size)
        self.health_interval = health_interval
        self.request_timeout = request_timeout
        self.requests = 0
        self.failures = 0  # answers the router itself had to fail (502/503/504)
        self.retries = 0
        self._server: asyncio.AbstractServer | None = None
        self._health_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._downstreams: set = set()
        # Scale from zero: a form with a waker (wakers[form] = callable) is started on demand. A request
        # that wants it and finds none of its replicas waits (up to request_timeout) in _parked while
        # the waker starts one, instead of a 503; add_backend of that form releases it.
        self.wakers: dict = {}
        self._parked: dict[str, list] = {}
        self._waking: set = set()
        self.last_request = time.monotonic()
        # Request placement (stratum/request_placement.py): with a Placer, each POST /predict goes to
        # the form its stream is placed on; without one, to any local replica.
        self.placer = None
        self.input_check = None  # InputCheck: flags out-of-distribution requests for the placer
        self.form_requests: dict[str, int] = {}
        self._remotes = 0  # backends that are other nodes' routers
        self.spills = 0  # placed requests that found their form full and tried the next one
        self.minutes = MinuteMetrics()  # per-minute requests, failures, latency buckets, queue depth
        self._in_flight = 0

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> "ServiceRouter":
        self._loop = asyncio.get_running_loop()

        def factory():
            return _Downstream(self)

        self._server = await self._loop.create_server(factory, self.host, self.port, reuse_address=True, backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]
        self._health_task = asyncio.create_task(self._health_loop())
        return self

    async def stop(self) -> None:
        if self._health_task:
            self._health_task.cancel()
            try:
                await self._health_task
            except asyncio.CancelledError:
                pass
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        for b in list(self.backends.values()):
            b.close_idle()
            for conn in list(b.conns):
                if conn.transport is not None:
                    conn.transport.close()
        self._server = self._health_task = None

    # -- backends -----------------------------------------------------------------------------
    def add_backend(self, backend_id: str, host: str, port: int, form: str = "edge", remote: bool = False) -> Backend:
        old = self.backends.get(backend_id)
        if old is not None:
            self.remove_backend(backend_id)
        b = Backend(backend_id, host, port, form=form, remote=remote)
        self._remotes += remote
        self.backends[backend_id] = b
        self._order.append(b)
        self.woken(form)
        return b

    def woken(self, form: str) -> None:
        """A waker of `form` is done (a replica added, or the start failed): dispatch the requests that
        waited for it; with no replica of that form they go on to the next form or get their error."""
        self._waking.discard(form)
        parked = self._parked.pop(form, None)
        for ex in parked or ():
            if not ex.done:
                self._loop.call_soon(self._dispatch, ex)

    def remove_backend(self, backend_id: str) -> None:
        b = self.backends.pop(backend_id, None)
        if b is not None:
            self._remotes -= b.remote
            self._order = [x for x in self._order if x is not b]
            b.close_idle()

    async def drain(self, backend_id: str, timeout: float = 60.0) -> bool:
        """Send this backend nothing new; wait (up to `timeout`) for its in-flight requests; remove it.
        True if it drained cleanly."""
        b = self.backends.get(backend_id)
        if b is None:
            return True
        b.state = "draining"
        clean = True
        if b.outstanding:
            b.drained = asyncio.Event()
            try:
                async with asyncio.timeout(timeout):  # not wait_for: see probe()
                    await b.drained.wait()
            except TimeoutError:
                clean = False
        self.remove_backend(backend_id)
        return clean

    def ready_backends(self) -> list[Backend]:
        return [b for b in self._order if b.state == "ready"]

    def _pick(self, exclude: list, form: str | None = None, local: bool = False) -> Backend | None:
        """The ready backend with the fewest requests in flight: any (form None), or of one form;
        `local` leaves out other nodes' routers."""
        order = self._order
        if form is not None or local:
            order = [b for b in order if (form is None or b.form == form) and not (local and b.remote)]
        n = len(order)
        if n == 0:
            return None
        if n == 1:
            b = order[0]
            return b if b.state != "draining" and b not in exclude else None
        start = self._rr % n
        self._rr += 1
        best = None
        for k in range(n):
            b = order[(start + k) % n]
            if b.state != "ready" or b in exclude:
                continue
            if best is None or b.outstanding < best.outstanding:
                best = b
                if b.outstanding == 0:
                    break
        if best is None:  # nothing ready: a replica marked down may be back before the health loop saw it
            for b in order:
                if b.state == "down" and b not in exclude:
                    return b
        return best

    def stats(self) -> dict:
        out = {"service_id": self.service_id, "url": self.url, "requests": self.requests, "failures": self.failures,
               "retries": self.retries, "samples": len(self.reservoir.items), "sampled_from": self.reservoir.seen,
               "backends": [b.describe() for b in self._order], "forms": dict(self.form_requests), "spills": self.spills}
        if self.placer is not None:
            out["streams"] = {k: f"{d.form}: {d.reason}" for k, d in self.placer.decisions().items()}
        return out

    def samples(self) -> list[dict]:
        """Input rows sampled from POST /predict (for drift detection); at most `sample_size`."""
        return list(self.reservoir.items)

    def take_samples(self) -> list[dict]:
        """The samples, and a fresh reservoir: each row is handed out once."""
        rows = self.samples()
        self.reservoir = Reservoir(self.reservoir.size, self.reservoir.rng)
        return rows

    # -- request path -------------------------------------------------------------------------
    def _dispatch(self, ex: _Exchange) -> None:
        if not ex.tried and ex.timer is None:  # first dispatch (a parked request has its timer already)
            self.requests += 1
            self.last_request = time.monotonic()
            ex.arrived = time.time()
            self._in_flight += not ex.from_peer
            predict = ex.path == b"/predict" and ex.method == b"POST"
            if predict and ex.body:
                slot = self.reservoir.slot()
                if slot is not None:
                    self._loop.call_soon(self._sample, slot, ex.body)
            if self.placer is not None and predict and not ex.forwarded:
                self._place(ex)
        if ex.forms is None:
            # Not placed (no placer, not a prediction, or already forwarded by another router):
            # any local replica; parked for the on-demand form when the node has none running.
            b = self._pick(ex.tried, local=self._remotes > 0)
            if b is None and not ex.tried and not ex.parked and "on_demand" in self.wakers and not any(
                    not x.remote and x.state != "draining" for x in self._order):
                self._park(ex, "on_demand")
                return
        else:
            b = self._pick_placed(ex)
            if b is False:
                return  # parked
        if b is None:
            self.failures += 1
            if ex.tried:
                msg = f"replica {ex.tried[-1].id} failed and no other replica is ready"
                self._answer(ex, _json_response(502, msg, ex.close_after), ex.close_after)
            else:
                self._answer(ex, _json_response(503, "no ready replica for this service", ex.close_after), ex.close_after)
            return
        if b.remote and not ex.forwarded:  # the other router serves it locally, never forwards it again
            i = ex.wire.find(b"\r\n")
            ex.wire = ex.wire[:i + 2] + b"x-stratum-forwarded: 1\r\n" + ex.wire[i + 2:]
            ex.forwarded = True
        ex.form = b.form
        ex.backend = b
        b.outstanding += 1
        ex.t0 = time.perf_counter()
        if ex.timer is None:
            ex.timer = self._loop.call_later(self.request_timeout, self._timeout, ex)
        now = b.last_used = time.monotonic()  # not the request's arrival: a parked one waited for this replica
        while b.idle:
            conn = b.idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_REUSE_S:
                conn.send(ex)
                return
            conn.closed = True
            b.conns.discard(conn)
            conn.transport.close()
        self._loop.create_task(self._connect_and_send(b, ex))

    def _pick_placed(self, ex: _Exchange):
        """A backend of the first of the request's forms that has one with room; False when the request
        was parked for an on-demand start. A backend holding its form's in-flight limit (Placer.
        inflight_limit) counts as full: the request spills to the next form that has a ready backend
        with room, or, when all are full, queues at the backend whose queue is shortest for its limit."""
        full, fullest = None, 0.0
        for form in ex.forms:
            b = self._pick(ex.tried, form)
            if b is None:
                if (full is None and form in self.wakers and not ex.tried and not ex.parked
                        and not any(x.form == form for x in self._order)):
                    self._park(ex, form)
                    return False
                continue
            limit = self.placer.inflight_limit(form, sum(1 for x in self._order if x.form == form and x.state == "ready"))
            if limit and b.outstanding >= limit:
                if full is None or b.outstanding / limit < fullest:  # all full: queue where the queue is shortest
                    full, fullest = b, b.outstanding / limit
                self.spills += 1
                continue
            return b
        return full

    def _place(self, ex: _Exchange) -> None:
        if ex.stream:
            key = ex.stream.decode("latin-1")
        else:  # the client's address: one stream per client host
            peer = ex.down.transport.get_extra_info("peername") if ex.down.transport else None
            key = peer[0] if peer else ""
        ood = self.input_check.is_ood(ex.body) if self.input_check else False
        ex.forms = self.placer.forms(key, self.last_request, len(ex.body), ood)

    def _park(self, ex: _Exchange, form: str) -> None:
        if ex.timer is None:
            ex.timer = self._loop.call_later(self.request_timeout, self._timeout, ex)
        ex.parked = True
        self._parked.setdefault(form, []).append(ex)
        if form not in self._waking:
            self._waking.add(form)
            self.wakers[form]()

    async def _connect_and_send(self, b: Backend, ex: _Exchange) -> None:
        try:
            _, conn = await self._loop.create_connection(lambda: _Upstream(self, b), b.host, b.port)
        except OSError as exc:
            self._failed(ex, None, exc, reused=False, got_bytes=False)
            return
        if ex.done:  # timed out while connecting
            conn.transport.close()
            return
        b.conns.add(conn)
        conn.send(ex)

    def _release(self, b: Backend, ex: _Exchange) -> None:
        b.outstanding -= 1
        b.last_used = time.monotonic()  # idle time counts from the last answer
        if b.outstanding == 0 and b.drained is not None:
            b.drained.set()

    def _complete(self, ex: _Exchange, conn: _Upstream, data: bytes, keep: bool) -> None:
        b = conn.backend
        if keep:
            if b.state == "draining" or b.id not in self.backends:
                conn.closed = True
                conn.transport.close()
            else:
                conn.idle_since = time.monotonic()
                b.idle.append(conn)
        if ex.done:
            return
        self._release(b, ex)
        b.requests += 1
        b.latency_s_total += time.perf_counter() - ex.t0
        close = ex.close_after or _says_close(data)
        self.form_requests[b.form] = self.form_requests.get(b.form, 0) + 1
        if ex.forms is not None:  # placed: say where it went (after the status line)
            i = data.find(b"\r\n")
            data = data[:i + 2] + b"x-stratum-form: " + b.form.encode() + b"\r\n" + data[i + 2:]
        self._answer(ex, data, close)

    def _failed(self, ex: _Exchange, conn: _Upstream | None, exc: BaseException, *, reused: bool, got_bytes: bool) -> None:
        if ex.done:
            return
        b = ex.backend
        self._release(b, ex)
        b.errors += 1
        keepalive_race = reused and not got_bytes
        if not keepalive_race and b.state == "ready":
            b.state = "down"
        retry = (ex.idempotent or keepalive_race) and len(ex.tried) < 1
        log.warning("replica %s at %s failed: %r%s", b.id, b.base, exc, "; retrying" if retry else "")
        if retry:
            self.retries += 1
            ex.tried.append(b)
            self._dispatch(ex)
            return
        self.failures += 1
        self._answer(ex, _json_response(502, f"replica {b.id} failed: {exc.__class__.__name__}", ex.close_after),
                     ex.close_after)

    def _timeout(self, ex: _Exchange) -> None:
        if ex.done:
            return
        ex.timer = None
        if ex.backend is not None:
            self._release(ex.backend, ex)
        if ex.upstream is not None and ex.upstream.ex is ex:
            ex.upstream.ex = None
            ex.upstream.closed = True
            ex.upstream.transport.close()
        self.failures += 1
        self._answer(ex, _json_response(504, f"no answer from the replica within {self.request_timeout:g}s", True), True)

    def _answer(self, ex: _Exchange, data: bytes, close: bool) -> None:
        if ex.arrived and not ex.from_peer:  # a client's request counts once, where it arrived: latency, 5xx
            now = time.time()
            self.minutes.record(now, now - ex.arrived, failed=data[9:10] == b"5",  # a 5xx: ours or the replica's
                                in_flight=self._in_flight)
            self._in_flight -= 1
            ex.arrived = 0.0
        ex.done = True
        if ex.timer is not None:
            ex.timer.cancel()
            ex.timer = None
        ex.down.respond(data, close)

    def _sample(self, slot: int, body: bytes) -> None:
        try:
            rows = json.loads(body).get("instances")
        except (ValueError, AttributeError, UnicodeDecodeError):
            return
        if isinstance(rows, list) and rows:
            row = rows[self.reservoir.rng.randrange(len(rows))]
            if isinstance(row, dict):
                self.reservoir.put(slot, row)

    # -- health -------------------------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            for b in list(self._order):
                if b.state not in ("ready", "down"):
                    continue
                ok = await probe(b.host, b.port)
                b.failed_probes = 0 if ok else b.failed_probes + 1
                if ok and b.state == "down":
                    log.info("replica %s is healthy again", b.id)
                    b.state = "ready"
                elif b.failed_probes >= self.health_failures and b.state == "ready":
                    log.warning("replica %s failed %d health checks in a row", b.id, b.failed_probes)
                    b.state = "down"


def _says_close(response: bytes) -> bool:
    end = response.find(b"\r\n\r\n")
    head = response[:end].lower()
    return b"\r\nconnection: close" in head or head.startswith(b"http/1.0")


async def probe(host: str, port: int, path: str = "/healthz", timeout: float = 2.0) -> bool:
    """GET path on a backend: True on 200."""
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result when a cancel lands just as the
    # awaited call finishes, so the health loop swallowed the cancel of router.stop() and stop() never returned.
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except OSError:  # TimeoutError is an OSError
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        async with asyncio.timeout(timeout):
            line = await reader.readline()
        parts = line.split()
        return len(parts) >= 2 and parts[1] == b"200"
    except OSError:
        return False
    finally:
        writer.close()


class RouterThread:
    """A ServiceRouter on its own event loop in a daemon thread, with blocking methods: for callers that
    are not asyncio (tests, tools).  The node daemon runs ServiceRouter on its own loop instead."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs):
        self.loop = asyncio.new_event_loop()
        self.router = ServiceRouter(host, port, **kwargs)
        self._thread = threading.Thread(target=self.loop.run_forever, name="service-router", daemon=True)
        self._thread.start()
        self.call(self.router.start())

    def call(self, coro, timeout: float | None = 120.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self, fn, *args):
        async def run():
            return fn(*args)

        return self.call(run())

    @property
    def url(self) -> str:
        return self.router.url

    def add_backend(self, backend_id: str, host: str, port: int) -> None:
        self.sync(self.router.add_backend, backend_id, host, port)

    def drain(self, backend_id: str, timeout: float = 60.0) -> bool:
        return self.call(self.router.drain(backend_id, timeout), timeout + 10)

    def stats(self) -> dict:
        return self.sync(self.router.stats)

    def samples(self) -> list[dict]:
        return self.sync(self.router.samples)

    def close(self) -> None:
        if self.loop.is_running():
            self.call(self.router.stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m node_daemon.replicas.router", description="A standalone service router.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--backend", action="append", default=[], help="HOST:PORT of a replica (repeatable)")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop: uvloop when installed (auto), or the standard one")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    new_loop = asyncio.new_event_loop
    if args.loop != "asyncio":
        try:
            import uvloop  # type: ignore[import-not-found]

            new_loop = uvloop.new_event_loop
        except ImportError:
            if args.loop == "uvloop":
                raise

    async def run() -> None:
        router = ServiceRouter(args.host, args.port)
        for i, hp in enumerate(args.backend):
            host, _, port = hp.rpartition(":")
            router.add_backend(f"b{i}", host or "127.0.0.1", int(port))
        await router.start()
        print(json.dumps({"url": router.url, "port": router.port}), flush=True)
        await asyncio.Event().wait()

    try:
        with asyncio.Runner(loop_factory=new_loop) as r:
            r.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
