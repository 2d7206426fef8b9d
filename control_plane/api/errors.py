"""Domain errors -> gRPC status, with google.rpc.BadRequest details for INVALID_ARGUMENT."""

from __future__ import annotations

import functools
import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from control_plane.errors import InvalidArgument, StratumError

log = logging.getLogger("stratum.api")

# A status travels in trailing metadata, which clients cap (grpc-python at 8-16 KiB; grpc-js gives no
# status at all past its limit, the call just waits for its deadline). Messages quote input through
# stratum.validation.shown, but a request with thousands of bad fields still adds up, so the message
# and the details are cut here too: at most MAX_MESSAGE + MAX_DETAILS bytes (before the wire's
# percent- and base64-encoding, which at most triple them).
MAX_MESSAGE = 1024
MAX_DETAILS = 1024
MAX_FIELD = 200  # of a violation's field path or description


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-8 bytes, with an ellipsis when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - len("…".encode())].decode(errors="ignore") + "…"


def _bad_request(violations: list[tuple[str, str]]) -> any_pb2.Any:
    """BadRequest details with as many violations as fit MAX_DETAILS, the first ones first."""
    bad = error_details_pb2.BadRequest()
    for i, (f, d) in enumerate(violations):
        bad.field_violations.add(field=_cut(f, MAX_FIELD), description=_cut(d, MAX_FIELD))
        if bad.ByteSize() > MAX_DETAILS - 64:  # room for the Any's type URL
            del bad.field_violations[-1]
            bad.field_violations.add(field="", description=f"and {len(violations) - i} more problems")
            break
    detail = any_pb2.Any()
    detail.Pack(bad)
    return detail


def to_status(err: StratumError) -> grpc.Status:
    code = getattr(code_pb2, err.code)
    details = [_bad_request(err.violations)] if isinstance(err, InvalidArgument) else []
    return rpc_status.to_status(status_pb2.Status(code=code, message=_cut(str(err), MAX_MESSAGE), details=details))


def rpc(method):
    """Wrap an async servicer method: StratumError -> its status; anything else -> INTERNAL, logged."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except StratumError as e:
            status = to_status(e)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("internal error", extra={"fields": {"method": method.__name__}})
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}; see the control plane log")

    return wrapper
