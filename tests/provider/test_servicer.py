"""The provider in-process, through its gRPC servicer, without Terraform or a control plane."""

import msgpack
import pytest
from tf.gen import tfplugin_pb2 as pb
from tf.utils import to_dynamic_value

from provider.provider import StratumProvider
from provider.resource_join_token import JoinTokenResource, _state
from provider.servicer import StratumServicer
from stratum.v1 import control_plane_pb2

TYPE = "stratum_join_token"
CONFIG = {"id": None, "name": "edge-north", "tier": "edge", "labels": None, "ttl": None, "max_uses": None,
          "description": None, "token": None, "uses": None, "expires_at": None}


@pytest.fixture
def servicer(monkeypatch):
    for var in ("STRATUM_ENDPOINT", "STRATUM_TOKEN", "STRATUM_CA_CERT"):
        monkeypatch.delenv(var, raising=False)
    return StratumServicer(StratumProvider())


def errors_of(resp):
    return [(d.summary, d.detail, [s.attribute_name for s in d.attribute.steps]) for d in resp.diagnostics if d.severity == pb.Diagnostic.ERROR]


def configure(servicer, **config):
    full = {"endpoint": None, "token": None, "ca_cert": None, **config}
    return servicer.ConfigureProvider(pb.ConfigureProvider.Request(config=to_dynamic_value(full)), None)


def test_schema_has_nested_nodes_and_sensitive_token(servicer):
    resp = servicer.GetProviderSchema(pb.GetProviderSchema.Request(), None)
    assert not resp.diagnostics
    nodes = {a.name: a for a in resp.data_source_schemas["stratum_nodes"].block.attributes}["nodes"]
    assert nodes.computed and nodes.nested_type.nesting == pb.Schema.Object.NestingMode.LIST
    assert {a.name for a in nodes.nested_type.attributes} == {"id", "name", "tier", "labels", "state", "cpu_cores", "memory_mb", "arch", "gpus", "addresses"}
    token = {a.name: a for a in resp.resource_schemas[TYPE].block.attributes}["token"]
    assert token.sensitive and token.computed
    assert {a.name: a for a in resp.provider.block.attributes}["token"].sensitive


def test_missing_ca_file_is_a_diagnostic_naming_the_path(servicer, tmp_path):
    missing = tmp_path / "nope" / "ca.pem"
    errs = errors_of(configure(servicer, ca_cert=str(missing), token="t"))
    assert len(errs) == 1 and str(missing) in errs[0][1] and errs[0][2] == ["ca_cert"]


def test_no_ca_cert_at_all_says_how_to_set_it(servicer):
    errs = errors_of(configure(servicer, token="t"))
    assert "STRATUM_CA_CERT" in errs[0][1]


def test_ca_cert_that_is_not_pem(servicer, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("hello")
    assert "no PEM certificate" in errors_of(configure(servicer, ca_cert=str(bad)))[0][1]


def test_environment_supplies_defaults(servicer, monkeypatch, tmp_path):
    from stratum import pki

    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.make_ca()[1])
    monkeypatch.setenv("STRATUM_CA_CERT", str(ca))
    monkeypatch.setenv("STRATUM_TOKEN", "env-token")
    monkeypatch.setenv("STRATUM_ENDPOINT", "127.0.0.1:1")
    assert errors_of(configure(servicer)) == []
    assert servicer.app.client.endpoint == "127.0.0.1:1"


def test_bad_endpoint(servicer):
    errs = errors_of(configure(servicer, endpoint="no-port", ca_cert="/x"))
    assert errs[0][2] == ["endpoint"] and "host:port" in errs[0][1]


def test_unknown_provider_config_defers(servicer):
    from tf.types import Unknown

    assert errors_of(configure(servicer, endpoint=Unknown)) == []
    assert servicer.app.client is None


def plan(servicer, prior, proposed):
    req = pb.PlanResourceChange.Request(
        type_name=TYPE,
        prior_state=to_dynamic_value(prior),
        proposed_new_state=to_dynamic_value(proposed),
        config=to_dynamic_value(proposed),
    )
    return servicer.PlanResourceChange(req, None)


def test_create_plan_knows_the_id(servicer):
    resp = plan(servicer, None, CONFIG)  # no client: the server check is skipped
    assert not resp.diagnostics
    planned = msgpack.unpackb(resp.planned_state.msgpack, ext_hook=lambda c, d: "UNKNOWN")
    assert planned["id"] == "edge-north"
    assert planned["token"] == "UNKNOWN" and planned["labels"] is None


def test_destroy_plan_is_null(servicer):
    resp = plan(servicer, {**CONFIG, "id": "edge-north", "token": "t", "uses": 0}, None)
    assert not resp.diagnostics and not resp.planned_state.msgpack


def test_ttl_change_makes_expiry_unknown(servicer):
    prior = {**CONFIG, "id": "edge-north", "ttl": "1h", "token": "t", "uses": 0, "expires_at": "2030-01-01T00:00:00Z"}
    resp = plan(servicer, prior, {**prior, "ttl": "2h"})
    planned = msgpack.unpackb(resp.planned_state.msgpack, ext_hook=lambda c, d: "UNKNOWN")
    assert planned["expires_at"] == "UNKNOWN" and planned["token"] == "t"
    assert not resp.requires_replace


def test_rename_requires_replace(servicer):
    prior = {**CONFIG, "id": "edge-north", "token": "t", "uses": 0}
    resp = plan(servicer, prior, {**prior, "name": "edge-south"})
    assert [s.attribute_name for p in resp.requires_replace for s in p.steps] == ["name"]


def test_exception_becomes_a_diagnostic_not_a_crash(servicer, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("kaput")

    monkeypatch.setattr(JoinTokenResource, "plan", boom)
    resp = plan(servicer, None, CONFIG)
    errs = errors_of(resp)
    assert len(errs) == 1 and "Internal error" in errs[0][0] and "RuntimeError: kaput" in errs[0][1]


def token(**spec):
    t = control_plane_pb2.JoinToken(spec=control_plane_pb2.JoinTokenSpec(name="a", tier="edge", **spec), id="jt-1", token="secret", uses=2)
    return t


def test_state_reports_api_zero_values_as_null_unless_configured():
    s = _state(token(), None)  # import: nothing configured
    assert (s["labels"], s["ttl"], s["max_uses"], s["description"], s["expires_at"]) == (None, None, None, None, None)
    s = _state(token(), {"labels": {}, "ttl": None, "max_uses": 0, "description": ""})
    assert (s["labels"], s["max_uses"], s["description"]) == ({}, 0, "")
    assert (s["id"], s["token"], s["uses"]) == ("a", "secret", 2)


def test_state_keeps_the_ttl_as_written():
    t = token(ttl="24h")
    t.expires_at.FromSeconds(1_900_000_000)
    s = _state(t, {"ttl": "1d"})
    assert s["ttl"] == "1d" and s["expires_at"] == "2030-03-17T17:46:40Z"
    assert _state(t, {"ttl": "2d"})["ttl"] == "24h"  # really changed outside Terraform: show it
