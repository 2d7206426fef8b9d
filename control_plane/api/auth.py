"""Who may call what.

ControlPlane methods need the admin token as `authorization: Bearer <token>`, or an access
token whose scope allows the method (control_plane/access_tokens.py: a read token may call what
changes nothing; anything else is PERMISSION_DENIED).
NodeAgent.Enroll is authorised by the join token in its request. Other
NodeAgent methods need a client certificate from enrollment: they are only
usable on the mTLS node listener, and the certificate's common name is the
caller's node id.
"""

from __future__ import annotations

import asyncio
import hmac

import grpc

from control_plane.access_tokens import PREFIX as ACCESS_PREFIX, allowed

CONTROL_PLANE_PREFIX = "/stratum.v1.ControlPlane/"


def _deny(handler, message: str, code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED):
    """A handler of the same shape as `handler` (unary or streaming, either way) that only refuses;
    None (no such method: the server answers UNIMPLEMENTED) when there is no handler."""
    if handler is None:
        return None

    async def abort(request, context):  # a coroutine serves streaming responses too (grpc.aio)
        await context.abort(code, message)

    shape = {(False, False): grpc.unary_unary_rpc_method_handler, (True, False): grpc.stream_unary_rpc_method_handler,
             (False, True): grpc.unary_stream_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    make = shape[(handler.request_streaming, handler.response_streaming)]
    return make(abort)


class AdminTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, admin_token: str, access_tokens=None):
        self._token = admin_token.encode()
        self._access = access_tokens  # control_plane.access_tokens.AccessTokens, or None: the admin token only

    async def intercept_service(self, continuation, details):
        if details.method.startswith(CONTROL_PLANE_PREFIX):
            header = dict(details.invocation_metadata or ()).get("authorization", "")
            if not header:
                return _deny(await continuation(details), "missing admin token: send 'authorization: Bearer <token>' (the provider's token / STRATUM_TOKEN)")
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), self._token):
                return await continuation(details)
            if scheme.lower() == "bearer" and self._access is not None and token.startswith(ACCESS_PREFIX):
                doc = await asyncio.to_thread(self._access.authenticate, token)
                if doc is None:
                    return _deny(await continuation(details), "access token rejected: unknown, revoked or expired")
                if not allowed(doc["scope"], details.method):
                    return _deny(await continuation(details),
                                 f"access token {doc['name']!r} has scope {doc['scope']!r}, which may not call "
                                 f"{details.method.rpartition('/')[2]}", grpc.StatusCode.PERMISSION_DENIED)
                return await continuation(details)
            return _deny(await continuation(details), "admin token rejected: it does not match this control plane's admin.token")
        return await continuation(details)


def node_id_of(context) -> str | None:
    """The node id from the caller's verified client certificate, or None without one."""
    names = context.auth_context().get("x509_common_name") or []
    return names[0].decode() if names else None
