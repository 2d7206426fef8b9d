"""Pure logic: durations, validation, join-token format, liveness, node filters."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from control_plane.liveness import transitions
from control_plane.nodes import addresses, matches
from stratum import tokens
from stratum.durations import format_duration, parse_duration
from stratum.validation import check_labels, check_name, check_tier, parse_label_flags
from stratum.v1 import control_plane_pb2 as cp, types_pb2 as t


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("24h", 86400), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "h", "5 m", "1x", "-5s", "1h 30m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**7))
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=10**10))
def test_format_duration_keeps_milliseconds(ms):
    # 1.5 s is "1s500ms", never rounded to "2s": a configured grace period comes back as written
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000, abs=1e-9)


def test_format_duration_examples():
    assert [format_duration(s) for s in (0, 0.25, 1.5, 90, 3600.001)] == ["0s", "250ms", "1s500ms", "1m30s", "1h1ms"]


def test_tier_and_name_checks():
    assert check_tier("fog") == [] and check_tier("", allow_empty=True) == []
    assert check_tier("mars") == [("tier", "unknown tier 'mars': expected one of edge, fog, cloud")]
    assert check_name("jetson-03") == []
    assert [f for f, _ in check_name("Jetson_03")] == ["name"]


def test_label_checks_name_each_bad_key():
    problems = dict(check_labels({"zone": "north", "example.com/rack": "r-1", "bad key": "x", "ok": "bad value!", "": "v"}))
    assert set(problems) == {'labels["bad key"]', 'labels["ok"]', 'labels[""]'}
    assert "invalid label value 'bad value!'" in problems['labels["ok"]']


def test_label_flags():
    assert parse_label_flags(["zone=north", "empty="]) == {"zone": "north", "empty": ""}
    with pytest.raises(ValueError, match="malformed label 'zone': expected key=value"):
        parse_label_flags(["zone"])
    with pytest.raises(ValueError, match='--label\\["-x"\\]'):
        parse_label_flags(["-x=1"])


def test_join_token_format_round_trip_and_errors():
    fp = "ab" * 32
    text = tokens.format_join_token(fp, "jt-0123456789ab", "s3cr3t")
    assert tokens.parse_join_token(text) == tokens.JoinTokenParts(fp, "jt-0123456789ab", "s3cr3t")
    for bad, msg in [("nonsense", "expected stj1"), (f"stj1.{fp[:10]}.jt-0123456789ab.x", "64 hex"),
                     (f"stj1.{fp}.bad.x", "bad token id"), (f"stj1.{fp}.jt-0123456789ab.", "empty secret")]:
        with pytest.raises(ValueError, match=msg) as e:
            tokens.parse_join_token(bad)
        assert "s3cr3t" not in str(e.value)


@given(st.dictionaries(st.sampled_from([f"n{i}" for i in range(20)]), st.floats(0, 100)),
       st.dictionaries(st.sampled_from([f"n{i}" for i in range(20)]), st.sampled_from(["ready", "down"])),
       st.floats(0, 200), st.floats(0.1, 50))
def test_liveness_transitions_are_exactly_the_wrong_states(last_seen, states, now, timeout):
    changes = dict(transitions(last_seen, states, now, timeout))
    for node_id, state in states.items():
        alive = node_id in last_seen and now - last_seen[node_id] < timeout
        want = "ready" if alive else "down"
        assert changes.get(node_id, state) == want  # every node ends in the right state
        assert (node_id in changes) == (state != want)  # and only wrong ones change


def node(tier="edge", labels=None, cpu=4, mem=2048, gpus=0, state="ready"):
    caps = t.Capabilities(cpu_cores=cpu, memory_mb=mem, gpus=[t.Gpu(index=i) for i in range(gpus)])
    return t.Node(tier=tier, labels=labels or {}, capabilities=caps, state=state)


@pytest.mark.parametrize("req, expected", [
    (cp.ListNodesRequest(), True),
    (cp.ListNodesRequest(tier="fog"), False),
    (cp.ListNodesRequest(labels={"zone": "north"}), True),
    (cp.ListNodesRequest(labels={"zone": "south"}), False),
    (cp.ListNodesRequest(min_cpu=4, min_memory_mb=2048), True),
    (cp.ListNodesRequest(min_cpu=4.5), False),
    (cp.ListNodesRequest(min_memory_mb=2049), False),
    (cp.ListNodesRequest(gpu=True), False),
    (cp.ListNodesRequest(gpu=False), True),
    (cp.ListNodesRequest(state="down"), False),
])
def test_node_filters(req, expected):
    assert matches(node(labels={"zone": "north", "rack": "1"}), req) is expected


def test_gpu_filter_true_keeps_gpu_nodes():
    assert matches(node(gpus=2), cp.ListNodesRequest(gpu=True))


def test_addresses_skip_loopback_and_link_local():
    caps = t.Capabilities(interfaces=[t.NetworkInterface(name="lo", addresses=["127.0.0.1/8", "::1/128"]),
                                      t.NetworkInterface(name="eth0", addresses=["10.0.0.5/24", "fe80::1/64", "2001:db8::5/64"])])
    assert addresses(caps) == ["10.0.0.5", "2001:db8::5"]


def test_utilisation_json_parses_back_to_the_same_message():
    from google.protobuf import json_format
    from control_plane.nodes import utilisation_json
    u = t.Utilisation(cpu_percent=12.5, memory_used_mb=300, load1=0.25, net_rx_bytes=2**40, gpu_percent=[10.0, 90.5])
    back = json_format.Parse(utilisation_json(u), t.Utilisation())
    assert back == u
    assert json_format.Parse(utilisation_json(t.Utilisation()), t.Utilisation()) == t.Utilisation()
