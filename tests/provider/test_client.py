"""provider/client.py without a server: retries, metadata, errors (the stub is replaced)."""

import grpc
import pytest

from provider import client as client_mod
from provider.client import ApiError, Client
from stratum import pki
from tests.provider.test_errors import FakeRpcError, invalid


class Stub:
    def __init__(self, outcomes):
        self.outcomes, self.calls = list(outcomes), []

    def __getattr__(self, method):
        def call(request, timeout=None, metadata=None):
            self.calls.append((method, metadata, timeout))
            out = self.outcomes.pop(0)
            if isinstance(out, Exception):
                raise out
            return out

        return call


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(client_mod.time, "sleep", slept.append)
    return slept


def make(outcomes, token="tok-123456"):
    c = Client("127.0.0.1:7443", token, pki.make_ca()[1])
    c._stub = Stub(outcomes)
    return c


UNAVAILABLE = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")


def test_retries_unavailable_then_succeeds(no_sleep):
    c = make([UNAVAILABLE, UNAVAILABLE, "ok"])
    assert c.call("GetStatus", None, action="x") == "ok"
    assert len(c._stub.calls) == 3 and no_sleep == list(client_mod.RETRY_DELAYS[:2])


def test_gives_up_with_a_diagnostic_naming_the_endpoint():
    c = make([UNAVAILABLE] * (len(client_mod.RETRY_DELAYS) + 1))
    with pytest.raises(ApiError) as e:
        c.call("GetStatus", None, action="reading status")
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert "cannot reach the Stratum control plane at 127.0.0.1:7443" in e.value.diagnostics[0].detail


def test_tls_failure_is_not_retried():
    c = make([FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Ssl handshake failed")])
    with pytest.raises(ApiError):
        c.call("GetStatus", None, action="x")
    assert len(c._stub.calls) == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL])
def test_other_errors_are_not_retried(code):
    c = make([FakeRpcError(code, "nope")])
    with pytest.raises(ApiError) as e:
        c.call("GetJoinToken", None, action="x")
    assert e.value.code == code and len(c._stub.calls) == 1


def test_bearer_token_and_deadline_on_every_call():
    c = make(["ok"])
    c.call("GetStatus", None, action="x")
    _, metadata, timeout = c._stub.calls[0]
    assert metadata == [("authorization", "Bearer tok-123456")] and timeout == client_mod.DEFAULT_TIMEOUT_S


def test_no_token_sends_no_authorization_and_says_so():
    c = make([FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "missing admin token")], token="")
    with pytest.raises(ApiError) as e:
        c.call("GetStatus", None, action="x")
    assert c._stub.calls[0][1] is None and e.value.diagnostics[0].summary == "No Stratum token configured"


def test_invalid_argument_maps_onto_the_given_attributes():
    c = make([invalid([("tier", "unknown tier"), ("id_or_name", "give one")])])
    with pytest.raises(ApiError) as e:
        c.call("ValidateJoinToken", None, action="x", attributes=["tier"])
    assert [d.path for d in e.value.diagnostics] == [["tier"], None]


def test_timeout_setting(monkeypatch):
    monkeypatch.setenv("STRATUM_PROVIDER_TIMEOUT", "5")
    assert client_mod._default_timeout() == 5.0
    monkeypatch.setenv("STRATUM_PROVIDER_TIMEOUT", "soon")
    assert client_mod._default_timeout() == 30.0
