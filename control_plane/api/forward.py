"""Several control planes, one API: what a follower answers itself and what it passes to the leader.

Every control plane serves every ControlPlane method. Reads (Get*, List*, Validate*, PlaceWhatIf)
and uploads are answered from the shared store by whichever control plane is asked. A call that
changes something (it places, trains, provisions, schedules a run, pins, drains), and the two
reads that need the node sessions (GetServiceMetrics: the per-minute series the leader keeps;
StreamAppLogs: relayed from a node), go to the leader: a follower passes the request's bytes on,
with the caller's token, and returns the leader's answer, errors included, as they came. So the
API means the same thing wherever it is called, and one process decides placements.

On the leader, those calls run under its leadership's fence (control_plane/leadership.py): if it
was deposed while answering (paused past its lease), its writes are refused, not applied twice.
With no leader reachable, the answer is UNAVAILABLE: safe to retry (every mutating call is
idempotent on its natural key), on this control plane or another.
"""

from __future__ import annotations

import grpc

from control_plane.access_tokens import allowed
from control_plane.api.auth import CONTROL_PLANE_PREFIX
from control_plane.store.db import Fenced
from stratum.grpc_util import CHANNEL_OPTIONS

LOCAL = frozenset({"UploadBlob", "GetBlob"})  # blobs go to the shared store from any control plane
LEADERS_READS = frozenset({"GetServiceMetrics", "StreamAppLogs"})
FORWARD_TIMEOUT_S = 120.0  # when the caller set no deadline


def answered_here(method: str) -> bool:
    """Can any control plane answer this method from the store (else: the leader)?"""
    name = method.rpartition("/")[2]
    return name in LOCAL or (allowed("read", name) and name not in LEADERS_READS) or name in (
        "GetJoinToken", "ListJoinTokens", "ListAccessTokens")  # reads the read scope may not make


class LeaderForwarding(grpc.aio.ServerInterceptor):
    def __init__(self, leadership, ca_pem: bytes):
        self.leadership, self.ca_pem = leadership, ca_pem
        self._channel: grpc.aio.Channel | None = None
        self._channel_to = ""

    def _leader_channel(self) -> grpc.aio.Channel | None:
        target = self.leadership.leader_api
        if not target or target == self.leadership.api:  # none yet, or this one, whose term just ran out
            return None
        if target != self._channel_to:
            old = self._channel
            self._channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(self.ca_pem), options=CHANNEL_OPTIONS)
            self._channel_to = target
            if old is not None:
                old.close()  # a coroutine on aio channels: closed when collected is fine too
        return self._channel

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        method = details.method
        if handler is None or not method.startswith(CONTROL_PLANE_PREFIX) or answered_here(method):
            return handler
        if self.leadership.is_leader:
            return _fenced(handler, self.leadership)
        if handler.request_streaming:
            return handler  # no such method forwards (uploads are answered here)
        return self._forwarding(handler, method)

    def _forwarding(self, handler, method: str):
        interceptor = self

        def metadata_of(context):
            return tuple((k, v) for k, v in context.invocation_metadata() if k in ("authorization", "x-request-id"))

        def timeout_of(context):
            left = context.time_remaining()
            return FORWARD_TIMEOUT_S if left is None or left > FORWARD_TIMEOUT_S else max(0.1, left)

        async def unavailable(context, why: str):
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"no leader to pass {method.rpartition('/')[2]} to ({why}); "
                                                           "retry, here or on another control plane")

        if handler.response_streaming:
            async def relay_stream(request: bytes, context):
                channel = interceptor._leader_channel()
                if channel is None:
                    await unavailable(context, "none elected now")
                call = channel.unary_stream(method)(request, metadata=metadata_of(context), timeout=timeout_of(context))
                try:
                    async for chunk in call:
                        yield chunk
                except grpc.aio.AioRpcError as e:
                    await context.abort(e.code(), e.details() or "", tuple(e.trailing_metadata() or ()))

            return grpc.unary_stream_rpc_method_handler(relay_stream)

        async def relay(request: bytes, context):
            channel = interceptor._leader_channel()
            if channel is None:
                await unavailable(context, "none elected now")
            try:
                return await channel.unary_unary(method)(request, metadata=metadata_of(context), timeout=timeout_of(context))
            except grpc.aio.AioRpcError as e:
                await context.abort(e.code(), e.details() or "", tuple(e.trailing_metadata() or ()))

        return grpc.unary_unary_rpc_method_handler(relay)


def _fenced(handler, leadership):
    """The same handler, run under the leader's current term. A term that ended between the
    interceptor's look and the call (the store unreachable, another elected) is refused before the
    handler runs, outside its error mapping (control_plane/api/errors.py): UNAVAILABLE, retry."""
    async def refused(context, e: Fenced):
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"this control plane stopped leading ({e}); retry, here or "
                                                       "on another control plane")

    def wrap(behavior, streaming_response: bool):
        if streaming_response:
            async def gen(request, context):
                entered = False
                try:
                    with leadership.fence():
                        entered = True
                        async for item in behavior(request, context):
                            yield item
                except Fenced as e:
                    if entered:
                        raise
                    await refused(context, e)
            return gen

        async def unary(request, context):
            entered = False
            try:
                with leadership.fence():
                    entered = True
                    return await behavior(request, context)
            except Fenced as e:
                if entered:
                    raise
                await refused(context, e)
        return unary

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), handler.request_deserializer,
                                                   handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), handler.request_deserializer,
                                                    handler.response_serializer)
    return handler  # stream-request methods are answered where they arrive
