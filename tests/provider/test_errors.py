"""gRPC error -> Terraform diagnostic mapping (provider/errors.py): pure, no server."""

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from provider import errors
from provider.errors import parse_field_path, to_diagnostics, violation_diagnostic

ENDPOINT = "127.0.0.1:7443"


class FakeRpcError(grpc.RpcError):
    """What a failed unary call raises: code(), details(), trailing_metadata()."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing=()):
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


def invalid(violations):
    br = error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations])
    any_ = any_pb2.Any()
    any_.Pack(br)
    message = "; ".join(f"{f}: {d}" for f, d in violations)
    status = rpc_status.to_status(status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[any_]))
    return FakeRpcError(status.code, status.details, status.trailing_metadata)


def diags(err, **kw):
    kw.setdefault("endpoint", ENDPOINT)
    kw.setdefault("action", 'creating join token "x"')
    return to_diagnostics(err, **kw)


@pytest.mark.parametrize("field,path", [
    ("tier", ["tier"]),
    ('labels["zone"]', ["labels", ("zone",)]),
    ('labels["a.b/c d"]', ["labels", ("a.b/c d",)]),
    ('labels["q\\"uote"]', ["labels", ('q"uote',)]),
    ("requirements.cpu", ["requirements", "cpu"]),
    ("nodes[2].name", ["nodes", (2,), "name"]),
    ("", None),
    (".tier", None),
    ("tier]", None),
    ('labels["open', None),
])
def test_parse_field_path(field, path):
    assert parse_field_path(field) == path


def test_invalid_argument_gives_one_diagnostic_per_violation_with_paths():
    err = invalid([("tier", "unknown tier 'moon'"), ('labels["bad key"]', "invalid label key 'bad key'")])
    out = diags(err, attributes=["tier", "labels"])
    assert [d.summary for d in out] == ["Invalid tier", 'Invalid labels["bad key"]']
    assert [d.path for d in out] == [["tier"], ["labels", ("bad key",)]]
    assert out[0].detail == "unknown tier 'moon'"
    # and the protobuf form Terraform receives points at the map key
    steps = out[1].to_pb().attribute.steps
    assert steps[0].attribute_name == "labels" and steps[1].element_key_string == "bad key"


def test_violation_outside_the_schema_keeps_no_path():
    d = violation_diagnostic("id_or_name", "give a node id or name", attributes=["id", "name"])
    assert d.path is None and d.summary == "Invalid id_or_name"


def test_invalid_argument_without_details_is_still_clean():
    out = diags(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad request"))
    assert len(out) == 1 and "bad request" in out[0].detail and out[0].path is None


@pytest.mark.parametrize("token_given,summary", [(True, "rejected the token"), (False, "No Stratum token configured")])
def test_unauthenticated_names_the_token_setting(token_given, summary):
    out = diags(FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "admin token rejected"), token_given=token_given)
    assert len(out) == 1 and summary in out[0].summary
    assert "STRATUM_TOKEN" in out[0].detail and "token" in out[0].detail


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_unreachable_names_the_endpoint(code):
    out = diags(FakeRpcError(code, "failed to connect to all addresses"))
    assert out[0].detail.startswith(f"cannot reach the Stratum control plane at {ENDPOINT}: failed to connect")


def test_tls_failure_points_at_ca_cert():
    out = diags(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Ssl handshake failed: CERTIFICATE_VERIFY_FAILED"))
    assert "ca_cert" in out[0].detail


@pytest.mark.parametrize("code,word", [
    (grpc.StatusCode.NOT_FOUND, "Not found"),
    (grpc.StatusCode.ALREADY_EXISTS, "Already exists"),
    (grpc.StatusCode.FAILED_PRECONDITION, "Cannot proceed"),
    (grpc.StatusCode.INTERNAL, "(INTERNAL)"),
])
def test_other_codes_are_one_clean_diagnostic(code, word):
    out = diags(FakeRpcError(code, "some detail"))
    assert len(out) == 1 and word in out[0].summary and 'creating join token "x"' in out[0].summary
    assert out[0].detail == "some detail"


def test_secrets_are_redacted_from_messages():
    errors.register_secret("s3cr3t-admin-token")
    out = diags(FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "token s3cr3t-admin-token rejected"))
    assert "s3cr3t-admin-token" not in out[0].detail and "<redacted>" in out[0].detail
    d = errors.internal_error(ValueError("boom s3cr3t-admin-token"), "PlanResourceChange")
    assert "s3cr3t" not in d.detail and "ValueError" in d.detail
