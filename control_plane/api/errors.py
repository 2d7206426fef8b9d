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


def to_status(err: StratumError) -> grpc.Status:
    code = getattr(code_pb2, err.code)
    details = []
    if isinstance(err, InvalidArgument):
        bad = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in err.violations])
        detail = any_pb2.Any()
        detail.Pack(bad)
        details.append(detail)
    return rpc_status.to_status(status_pb2.Status(code=code, message=str(err), details=details))


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
