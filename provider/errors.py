"""gRPC errors from the control plane -> Terraform diagnostics.

Pure functions (no channel, no Terraform) so every mapping is unit-tested.
Users see a sentence about what went wrong and what to check, attached to the
attribute the server named when there is one; never a traceback or a token.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Iterable, Optional

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tf.utils import AttributePath, Diagnostic

# Secrets seen by this process (the provider token). Every message we emit passes
# through redact(), so a server or library echoing one cannot leak it.
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: Optional[str]) -> None:
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, "<redacted>")
    return text


_SEGMENT = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_field_path(field: str) -> Optional[AttributePath]:
    """A request field path as the server writes it -> a `tf` attribute path.

    `tier` -> ["tier"]; `labels["zone"]` -> ["labels", ("zone",)];
    `a.b[0].c` -> ["a", "b", (0,), "c"]. None when the text is not a path.
    """
    path: AttributePath = []
    pos = 0
    while pos < len(field):
        m = _SEGMENT.match(field, pos)
        if not m or (pos == 0 and field.startswith(".")):
            return None
        name, index, key = m.groups()
        if name is not None:
            path.append(name)
        elif index is not None:
            path.append((int(index),))
        else:
            try:
                path.append((json.loads(key),))
            except ValueError:
                return None
        pos = m.end()
    return path or None


def _field_label(path: AttributePath) -> str:
    """Terraform-style rendering of a path: labels["zone"], nodes[0].name."""
    out = ""
    for step in path:
        if isinstance(step, tuple):
            out += f"[{json.dumps(step[0])}]"
        else:
            out += f".{step}" if out else step
    return out


def violation_diagnostic(field: str, description: str, attributes: Optional[Iterable[str]] = None) -> Diagnostic:
    """One BadRequest field violation -> an error attached to the attribute it names.

    `attributes` are the top-level attribute names of the resource/data source;
    a field outside them (a server-side name we do not expose) keeps no path
    so Terraform does not point at the wrong line.
    """
    path = parse_field_path(field)
    if path is not None and attributes is not None and path[0] not in set(attributes):
        path = None
    label = _field_label(path) if path else field or "request"
    return Diagnostic.error(f"Invalid {label}", redact(description), path=path)


def _bad_request_violations(err: grpc.RpcError) -> list[tuple[str, str]]:
    try:
        status = rpc_status.from_call(err)
    except Exception:  # malformed details: fall back to the status message
        return []
    if status is None:
        return []
    out = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.extend((v.field, v.description) for v in br.field_violations)
    return out


def _code(err: grpc.RpcError) -> grpc.StatusCode:
    try:
        return err.code()
    except Exception:
        return grpc.StatusCode.UNKNOWN


def _details(err: grpc.RpcError) -> str:
    try:
        return redact(err.details() or "")
    except Exception:
        return ""


def to_diagnostics(
    err: grpc.RpcError,
    *,
    endpoint: str,
    action: str,
    token_given: bool = True,
    attributes: Optional[Iterable[str]] = None,
) -> list[Diagnostic]:
    """Diagnostics for a failed call. `action` reads like "creating join token \"edge\""."""
    code, details = _code(err), _details(err)

    if code == grpc.StatusCode.UNAUTHENTICATED:
        if token_given:
            summary = "The Stratum control plane rejected the token"
            why = "The token was rejected"
        else:
            summary = "No Stratum token configured"
            why = "No token was sent"
        return [
            Diagnostic.error(
                summary,
                f"{why} while {action} ({details or 'UNAUTHENTICATED'}). Check the provider's token argument "
                "or the STRATUM_TOKEN environment variable: it must hold the control plane's admin token "
                "(admin.token in its data dir).",
            )
        ]

    if code == grpc.StatusCode.PERMISSION_DENIED:
        return [Diagnostic.error("Permission denied by the Stratum control plane", f"While {action}: {details}. Check the provider's token / STRATUM_TOKEN.")]

    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        hint = ""
        low = details.lower()
        if any(w in low for w in ("ssl", "handshake", "certificate", "tls")):
            hint = " The TLS handshake failed: check that ca_cert / STRATUM_CA_CERT is the ca.pem of this control plane."
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            hint = " The call timed out."
        return [
            Diagnostic.error(
                "Cannot reach the Stratum control plane",
                f"cannot reach the Stratum control plane at {endpoint}: {details or code.name} (while {action}).{hint} "
                "Check that it is running and that the provider's endpoint / STRATUM_ENDPOINT is right.",
            )
        ]

    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violations = _bad_request_violations(err)
        if violations:
            return [violation_diagnostic(f, d, attributes) for f, d in violations]
        return [Diagnostic.error(f"Invalid request while {action}", details or "The control plane rejected the request.")]

    titles = {
        grpc.StatusCode.NOT_FOUND: "Not found",
        grpc.StatusCode.ALREADY_EXISTS: "Already exists",
        grpc.StatusCode.FAILED_PRECONDITION: "Cannot proceed",
        grpc.StatusCode.RESOURCE_EXHAUSTED: "Out of resources",
        grpc.StatusCode.UNIMPLEMENTED: "Not supported by this control plane",
    }
    title = titles.get(code, f"Stratum control plane error ({code.name})")
    return [Diagnostic.error(f"{title} while {action}", details or code.name)]


def internal_error(exc: BaseException, what: str) -> Diagnostic:
    """A bug in the provider: a clean diagnostic rather than a dead plugin."""
    return Diagnostic.error(
        f"Internal error in the Stratum provider while {what}",
        redact(f"{type(exc).__name__}: {exc}") + "\nPlease report this; run with TF_LOG_PROVIDER=DEBUG for details.",
    )
