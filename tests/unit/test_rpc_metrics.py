"""control_plane/api/rpc_metrics.py on a real grpc.aio server: every handler kind, the final status code
(aborts, set_code, exceptions, cancellation), unknown methods, and an inner interceptor's denial."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from prometheus_client import CollectorRegistry

from control_plane.api.rpc_metrics import RpcMetricsInterceptor


async def ok(request, context):
    return b"ok"


async def not_found(request, context):
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


async def set_code(request, context):
    context.set_code(grpc.StatusCode.ALREADY_EXISTS)
    return b""


async def boom(request, context):
    raise ValueError("a bug")


def sync_ok(request, context):  # grpc.aio runs a sync handler in a thread
    return b"sync"


def sync_denied(request, context):
    context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")


def sync_set_code(request, context):
    context.set_code(grpc.StatusCode.OUT_OF_RANGE)
    yield b"x"


async def three(request, context):
    for i in range(3):
        yield bytes([i])


async def echo_then_abort(request_iterator, context):
    async for msg in request_iterator:
        yield msg
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "one is enough")


async def sum_up(request_iterator, context):
    return bytes([sum([len(m) async for m in request_iterator])])


async def forever(request, context):
    while True:
        yield b"."
        await asyncio.sleep(0.01)


HANDLERS = grpc.method_handlers_generic_handler("t.S", {
    "Ok": grpc.unary_unary_rpc_method_handler(ok),
    "NotFound": grpc.unary_unary_rpc_method_handler(not_found),
    "SetCode": grpc.unary_unary_rpc_method_handler(set_code),
    "Boom": grpc.unary_unary_rpc_method_handler(boom),
    "SyncOk": grpc.unary_unary_rpc_method_handler(sync_ok),
    "SyncDenied": grpc.unary_unary_rpc_method_handler(sync_denied),
    "SyncSetCode": grpc.unary_stream_rpc_method_handler(sync_set_code),
    "Three": grpc.unary_stream_rpc_method_handler(three),
    "EchoThenAbort": grpc.stream_stream_rpc_method_handler(echo_then_abort),
    "SumUp": grpc.stream_unary_rpc_method_handler(sum_up),
    "Forever": grpc.unary_stream_rpc_method_handler(forever),
    "Denied": grpc.unary_unary_rpc_method_handler(ok),
})


class DenyOne(grpc.aio.ServerInterceptor):
    """Stands in for the admin-token check: replaces one method's handler by a refusal."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if details.method == "/t.S/Denied":
            async def deny(request, context):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")
            return grpc.unary_unary_rpc_method_handler(deny)
        return handler


async def _exercise(registry) -> None:
    server = grpc.aio.server(interceptors=[RpcMetricsInterceptor(registry), DenyOne()])
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            uu = lambda m: ch.unary_unary(f"/t.S/{m}")  # noqa: E731
            assert await uu("Ok")(b"") == b"ok"
            assert await uu("Ok")(b"") == b"ok"
            assert await uu("SyncOk")(b"") == b"sync"
            for method, code in (("NotFound", grpc.StatusCode.NOT_FOUND), ("SetCode", grpc.StatusCode.ALREADY_EXISTS),
                                 ("Boom", grpc.StatusCode.UNKNOWN), ("SyncDenied", grpc.StatusCode.PERMISSION_DENIED), ("Denied", grpc.StatusCode.UNAUTHENTICATED),
                                 ("Nope", grpc.StatusCode.UNIMPLEMENTED)):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await uu(method)(b"")
                assert e.value.code() == code, method
            assert [r async for r in ch.unary_stream("/t.S/Three")(b"")] == [b"\0", b"\1", b"\2"]
            call = ch.unary_stream("/t.S/SyncSetCode")(b"")
            assert await call.read() == b"x" and await call.code() == grpc.StatusCode.OUT_OF_RANGE
            call = ch.stream_stream("/t.S/EchoThenAbort")(iter([b"a", b"b"]))
            assert await call.read() == b"a"
            assert await call.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert await ch.stream_unary("/t.S/SumUp")(iter([b"ab", b"c"])) == b"\3"
            call = ch.unary_stream("/t.S/Forever")(b"")
            await call.read()
            call.cancel()
            for _ in range(200):  # the server notices the cancellation on its own time
                if _value(registry, "stratum_grpc_requests_total", method="Forever") is not None:
                    break
                await asyncio.sleep(0.01)
    finally:
        await server.stop(None)


def _value(registry, name, **labels):
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_every_handler_kind_is_counted_with_its_final_code_and_timed():
    registry = CollectorRegistry()
    asyncio.run(_exercise(registry))
    count = lambda method, code, service="t.S": _value(registry, "stratum_grpc_requests_total",  # noqa: E731
                                                        service=service, method=method, code=code)
    assert count("Ok", "OK") == 2
    assert count("SyncOk", "OK") == 1
    assert count("SyncDenied", "PERMISSION_DENIED") == 1
    assert count("SyncSetCode", "OUT_OF_RANGE") == 1
    assert count("NotFound", "NOT_FOUND") == 1
    assert count("SetCode", "ALREADY_EXISTS") == 1
    assert count("Boom", "UNKNOWN") == 1
    assert count("Denied", "UNAUTHENTICATED") == 1  # the inner interceptor's refusal is seen
    assert count("unknown", "UNIMPLEMENTED", service="unknown") == 1
    assert count("Three", "OK") == 1
    assert count("EchoThenAbort", "FAILED_PRECONDITION") == 1
    assert count("SumUp", "OK") == 1
    assert count("Forever", "CANCELLED") == 1
    assert count("Ok", "UNKNOWN") is None  # no code a method did not end with
    hist = lambda method, suffix: _value(registry, f"stratum_grpc_request_duration_seconds_{suffix}",  # noqa: E731
                                         service="t.S", method=method)
    assert hist("Ok", "count") == 2 and hist("Ok", "sum") > 0
    assert hist("Three", "count") == 1
