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
    c.fake = c._stubs[0] = Stub(outcomes)
    return c


UNAVAILABLE = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")


def test_retries_unavailable_then_succeeds(no_sleep):
    c = make([UNAVAILABLE, UNAVAILABLE, "ok"])
    assert c.call("GetStatus", None, action="x") == "ok"
    assert len(c.fake.calls) == 3 and no_sleep == list(client_mod.RETRY_DELAYS[:2])


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
    assert len(c.fake.calls) == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL])
def test_other_errors_are_not_retried(code):
    c = make([FakeRpcError(code, "nope")])
    with pytest.raises(ApiError) as e:
        c.call("GetJoinToken", None, action="x")
    assert e.value.code == code and len(c.fake.calls) == 1


def test_bearer_token_and_deadline_on_every_call():
    c = make(["ok"])
    c.call("GetStatus", None, action="x")
    _, metadata, timeout = c.fake.calls[0]
    assert metadata == [("authorization", "Bearer tok-123456")] and timeout == client_mod.DEFAULT_TIMEOUT_S


def test_no_token_sends_no_authorization_and_says_so():
    c = make([FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "missing admin token")], token="")
    with pytest.raises(ApiError) as e:
        c.call("GetStatus", None, action="x")
    assert c.fake.calls[0][1] is None and e.value.diagnostics[0].summary == "No Stratum token configured"


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


class FakeChannel:
    def __init__(self, target):
        self.target, self.closed = target, False

    def close(self):
        self.closed = True


def test_a_failover_under_concurrent_calls_closes_no_channel_in_use():
    """Terraform calls the provider from several threads: one call failing over to the next control
    plane must neither cancel another's call on the old channel nor skip a control plane."""
    import threading
    c = Client(["a:1", "b:1", "c:1"], "tok-123456", pki.make_ca()[1])
    channels = c._channels = [FakeChannel("a:1"), FakeChannel("b:1")]
    release, started = threading.Event(), threading.Event()

    class Slow(Stub):
        def __getattr__(self, method):
            def call(request, timeout=None, metadata=None):
                if request == "slow":
                    started.set()
                    assert release.wait(10)
                    assert not channels[0].closed, "the channel under this call was closed"
                    return "slow ok"
                raise UNAVAILABLE
            return call

    c._stubs[0] = Slow([])
    c._stubs[1] = Stub(["b ok", "b ok"])
    out = []
    t = threading.Thread(target=lambda: out.append(c.call("GetStatus", "slow", action="x")))
    t.start()
    assert started.wait(10)
    assert c.call("GetStatus", "fast", action="x") == "b ok" and c.endpoint == "b:1"
    c._move_on(0)  # a late failure seen on a:1 does not move past b:1
    assert c.endpoint == "b:1"
    release.set()
    t.join(10)
    assert out == ["slow ok"] and not any(ch.closed for ch in channels)
    c.close()
    assert all(ch.closed for ch in channels)
