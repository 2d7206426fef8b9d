"""Per-RPC Prometheus metrics for every gRPC method the control plane serves (both listeners).

    stratum_grpc_requests_total{service,method,code}        RPCs ended, by final status code
    stratum_grpc_request_duration_seconds{service,method}    from the handler's start to its end

An RPC is counted when it ends, so a stream (a node's Connect session) counts once, with its whole
life as duration; messages on a stream are not wrapped, which keeps heartbeats free of any cost here.
Unknown methods count as service="unknown", method="unknown" (a client picks those names: as labels
they could grow without bound).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from contextlib import contextmanager

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

# Most RPCs answer in milliseconds; training and uploads take seconds; streams last minutes to days.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def final_code(context, exc: BaseException | None) -> str:
    """The status the RPC ends with, as grpc decides it: what abort() or set_code() set, UNKNOWN for an
    exception that was neither, CANCELLED when the client went away."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return "CANCELLED"
    code = context.code()  # an int in grpc.aio, a StatusCode or None from _SyncContext
    code = _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN) if isinstance(code, int) else (code or grpc.StatusCode.OK)
    if exc is not None and not isinstance(exc, grpc.aio.AbortError) and code == grpc.StatusCode.OK:
        return "UNKNOWN"
    return code.name


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Put it first in the server's interceptors: it then sees the final status of whatever the later
    ones return, e.g. the admin-token check's UNAUTHENTICATED denials."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("stratum_grpc_requests", "gRPC requests ended, by service, method and status code",
                                ["service", "method", "code"], registry=registry)
        self.duration = Histogram("stratum_grpc_request_duration_seconds", "gRPC request duration (a stream: its life)",
                                  ["service", "method"], buckets=BUCKETS_S, registry=registry)

    @contextmanager
    def _observe(self, service: str, method: str, context):
        start, exc = time.perf_counter(), None
        try:
            yield
        except BaseException as e:
            exc = e
            raise
        finally:
            self.duration.labels(service, method).observe(time.perf_counter() - start)
            self.requests.labels(service, method, final_code(context, exc)).inc()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return grpc.stream_stream_rpc_method_handler(self._unimplemented)  # a shape that fits any call
        service, _, method = details.method.lstrip("/").rpartition("/")
        kind = ("stream" if handler.request_streaming else "unary") + "_" + ("stream" if handler.response_streaming else "unary")
        return handler._replace(**{kind: self._wrap(getattr(handler, kind), service, method)})

    async def _unimplemented(self, request_iterator, context):
        with self._observe("unknown", "unknown", context):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")  # grpc's own words for it

    def _wrap(self, fn, service: str, method: str):
        """The same kind of callable as `fn` (grpc runs each kind differently: a sync one in a thread)."""
        observe = self._observe
        if inspect.isasyncgenfunction(fn):
            async def wrapped(request, context):
                with observe(service, method, context):
                    async for response in fn(request, context):
                        yield response
        elif inspect.iscoroutinefunction(fn):
            async def wrapped(request, context):
                with observe(service, method, context):
                    return await fn(request, context)
        elif inspect.isgeneratorfunction(fn):
            def wrapped(request, context):
                context = _SyncContext(context)
                with observe(service, method, context):
                    yield from fn(request, context)
        else:
            def wrapped(request, context):
                context = _SyncContext(context)
                with observe(service, method, context):
                    return fn(request, context)
        return wrapped


class _SyncContext:
    """The context grpc.aio hands a sync handler cannot say its status code: this one remembers it."""

    def __init__(self, context):
        self._context, self._code = context, None

    def __getattr__(self, name):
        return getattr(self._context, name)

    def code(self):
        return self._code

    def set_code(self, code):
        self._code = code
        self._context.set_code(code)

    def abort(self, code, details="", trailing_metadata=()):
        self._code = code
        self._context.abort(code, details, trailing_metadata)
