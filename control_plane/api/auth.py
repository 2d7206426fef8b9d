"""Who may call what.

ControlPlane methods need the admin token as `authorization: Bearer <token>`.
NodeAgent.Enroll is authorised by the join token in its request. Other
NodeAgent methods need a client certificate from enrollment: they are only
usable on the mTLS node listener, and the certificate's common name is the
caller's node id.
"""

from __future__ import annotations

import hmac

import grpc

CONTROL_PLANE_PREFIX = "/stratum.v1.ControlPlane/"


def _deny(handler, message: str):
    """A handler of the same shape as `handler` (unary or streaming, either way) that only refuses;
    None (no such method: the server answers UNIMPLEMENTED) when there is no handler."""
    if handler is None:
        return None

    async def abort(request, context):  # a coroutine serves streaming responses too (grpc.aio)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    shape = {(False, False): grpc.unary_unary_rpc_method_handler, (True, False): grpc.stream_unary_rpc_method_handler,
             (False, True): grpc.unary_stream_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    make = shape[(handler.request_streaming, handler.response_streaming)]
    return make(abort)


class AdminTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, admin_token: str):
        self._token = admin_token.encode()

    async def intercept_service(self, continuation, details):
        if details.method.startswith(CONTROL_PLANE_PREFIX):
            header = dict(details.invocation_metadata or ()).get("authorization", "")
            if not header:
                return _deny(await continuation(details), "missing admin token: send 'authorization: Bearer <token>' (the provider's token / STRATUM_TOKEN)")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._token):
                return _deny(await continuation(details), "admin token rejected: it does not match this control plane's admin.token")
        return await continuation(details)


def node_id_of(context) -> str | None:
    """The node id from the caller's verified client certificate, or None without one."""
    names = context.auth_context().get("x509_common_name") or []
    return names[0].decode() if names else None
