"""A leader whose term ends between the forwarding interceptor's look (leading: run it here) and the
call's fence answers UNAVAILABLE, which clients retry, not UNKNOWN (seen when PostgreSQL restarted
under load). A real gRPC server with the real interceptor and a real Leadership on a real store;
only the moment the term ends is forced, by ending it right after the interceptor looked."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from control_plane.api.forward import LeaderForwarding
from control_plane.leadership import Leadership
from control_plane.store import Store

METHOD = "/stratum.v1.ControlPlane/CreateJoinToken"  # a write: run by the leader, under its term


class EndsAfterTheLook(Leadership):
    """Leading when the interceptor asks; its term over by the time the call runs."""

    @property
    def is_leader(self) -> bool:
        leading = self.epoch is not None
        self.epoch = None  # the lease lost right after this look
        return leading


@pytest.mark.parametrize("streaming", [False, True], ids=["unary", "server-streaming"])
def test_a_term_ended_before_the_call_runs_answers_unavailable(tmp_path, streaming):
    async def scenario():
        leadership = EndsAfterTheLook(Store(None, str(tmp_path)), api="127.0.0.1:1", node="127.0.0.1:2")
        ran = []

        async def unary(request, context):
            ran.append(1)
            return b"ok"

        async def stream(request, context):
            ran.append(1)
            yield b"ok"

        handler = (grpc.unary_stream_rpc_method_handler(stream) if streaming else grpc.unary_unary_rpc_method_handler(unary))
        server = grpc.aio.server(interceptors=[LeaderForwarding(leadership, b"")])
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("stratum.v1.ControlPlane",
                                                                              {"CreateJoinToken": handler})])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            leadership.epoch = 7
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    if streaming:
                        async for _ in ch.unary_stream(METHOD)(b""):
                            pass
                    else:
                        await ch.unary_unary(METHOD)(b"")
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
            assert "stopped leading" in e.value.details() and "retry" in e.value.details()
            assert ran == []  # nothing ran outside a term
        finally:
            await server.stop(None)

    asyncio.run(scenario())
