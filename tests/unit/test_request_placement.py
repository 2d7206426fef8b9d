"""Request placement (StraightLine): each rule with its exact reason, thresholds that follow the
profiles, fallback routing, the stream tracker (decay, size percentile, LRU bound, determinism),
and properties: decide always answers with an available form, never raises, is deterministic."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratum.request_placement import (
    FORMS, Decision, FormProfile, Profiles, Route, Stats, StreamStats, break_even_rps, decide, route)

FAST = settings(max_examples=200, deadline=None)

EDGE = FormProfile("edge", p95_ms=5, max_input_bytes=65536, capacity_rps=50)
FOG = FormProfile("always_on", p95_ms=20, max_input_bytes=0, capacity_rps=500)
LAMBDA = FormProfile("on_demand", p95_ms=25, cold_start_s=0, max_input_bytes=1 << 24)
ALL = Profiles((EDGE, FOG, LAMBDA), idle_stop_s=120)


def stats(rate=5.0, size=1023, ood=0.0, requests=100):
    return Stats(rate, size, ood, requests)


# --- the rule, one case each, with the exact reason ---

def test_rule1_input_too_large_for_edge_goes_always_on():
    d = decide(stats(size=(1 << 20) - 1), ALL, slo_p95_ms=50)
    assert d == Decision("always_on", "input p95 1048575 B > edge max 65536 B: always_on", ("on_demand",))


def test_rule1_without_always_on_goes_on_demand():
    d = decide(stats(size=(1 << 20) - 1), Profiles((EDGE, LAMBDA)), 50)
    assert (d.form, d.reason) == ("on_demand", "input p95 1048575 B > edge max 65536 B: on_demand")


def test_input_larger_than_every_form_goes_to_the_largest():
    d = decide(stats(size=(1 << 30) - 1), Profiles((EDGE, LAMBDA)), 50)
    assert d == Decision("on_demand", "input p95 1073741823 B > every form's max: on_demand (largest, max 16777216 B)")


def test_rule2_out_of_distribution_goes_to_the_full_model():
    d = decide(stats(ood=0.5), ALL, 50)
    assert d == Decision("always_on", "ood share 0.5 > 0.25: always_on (full model)", ("on_demand", "edge"))
    # without an always-on form the rule does not apply
    assert decide(stats(ood=0.5), Profiles((EDGE, LAMBDA)), 50).form == "edge"


def test_rule3_rare_stream_goes_on_demand():
    d = decide(stats(rate=0.002), ALL, 50)
    assert d == Decision(
        "on_demand", "rate 0.002 req/s < break-even 0.008333 req/s (idle stop 120 s, cold start 0 s): on_demand",
        ("edge", "always_on"))


def test_rule3_not_when_the_cold_start_misses_the_slo():
    slow = FormProfile("on_demand", p95_ms=25, cold_start_s=2)
    d = decide(stats(rate=0.002), Profiles((EDGE, FOG, slow), idle_stop_s=120), 50)
    assert d.form == "edge"
    assert d.reason == ("edge p95 5 ms <= slo 50 ms, capacity 50 req/s >= rate 0.002 req/s: edge; "
                        "not on_demand: cold start 2000 ms + p95 25 ms > slo 50 ms")
    # no objective: the cold start is acceptable
    assert decide(stats(rate=0.002), Profiles((EDGE, FOG, slow), idle_stop_s=120), 0).form == "on_demand"


def test_rule3_weighs_prices_when_both_forms_have_one():
    fog = FormProfile("always_on", 20, cost_per_hour=0.2)
    lam = FormProfile("on_demand", 25, cold_start_s=0, cost_per_hour=0.8)
    d = decide(stats(rate=0.001), Profiles((fog, lam), idle_stop_s=100), 0)
    assert d.reason == ("rate 0.001 req/s < break-even 0.0025 req/s "
                        "(idle stop 100 s, cold start 0 s, price ratio 0.25): on_demand")
    assert decide(stats(rate=0.003), Profiles((fog, lam), idle_stop_s=100), 0).form == "always_on"


def test_rule4_edge_when_it_meets_the_slo_and_covers_the_rate():
    d = decide(stats(rate=5), ALL, 50)
    assert d == Decision("edge", "edge p95 5 ms <= slo 50 ms, capacity 50 req/s >= rate 5 req/s: edge",
                         ("always_on", "on_demand"))
    assert decide(stats(), ALL).reason == "edge serves it, capacity 50 req/s >= rate 5 req/s: edge"


def test_rule4_always_on_when_edge_misses_the_slo_or_the_rate():
    assert decide(stats(), ALL, 4).reason == "edge p95 5 ms > slo 4 ms: always_on"
    assert decide(stats(rate=80), ALL, 50).reason == "rate 80 req/s > edge capacity 50 req/s: always_on"


def test_rule4_without_always_on():
    assert decide(stats(rate=80), Profiles((EDGE, LAMBDA)), 50).reason == \
        "rate 80 req/s > edge capacity 50 req/s, no always_on form takes it: on_demand"
    assert decide(stats(rate=80), Profiles((EDGE,)), 50).reason == \
        "rate 80 req/s > edge capacity 50 req/s, but no other form takes it: edge"
    assert decide(stats(rate=80), Profiles((LAMBDA,)), 50).reason == \
        "no edge form, no always_on form takes it: on_demand"


# --- thresholds follow the profiles ---

def test_break_even_moves_with_idle_stop_and_cold_start():
    s = stats(rate=0.005)
    assert decide(s, Profiles((EDGE, FOG, LAMBDA), idle_stop_s=120), 50).form == "on_demand"  # 0.005 < 1/120
    assert decide(s, Profiles((EDGE, FOG, LAMBDA), idle_stop_s=600), 50).form == "edge"  # 0.005 > 1/600
    cold = FormProfile("on_demand", 25, cold_start_s=0.02)
    assert break_even_rps(EDGE, cold, 120) == pytest.approx(1 / 120.02)
    assert decide(s, Profiles((EDGE, FOG, cold), idle_stop_s=120), 50).form == "on_demand"  # 20 ms + 25 fits


def test_edge_limits_move_with_its_profile():
    big_edge = FormProfile("edge", 5, max_input_bytes=1 << 21, capacity_rps=100)
    s = stats(rate=80, size=(1 << 20) - 1)
    assert decide(s, ALL, 50).form == "always_on"
    assert decide(s, Profiles((big_edge, FOG, LAMBDA), idle_stop_s=120), 50).form == "edge"


def test_ood_threshold_moves_with_the_profiles():
    assert decide(stats(ood=0.3), ALL, 50).form == "always_on"
    assert decide(stats(ood=0.3), Profiles(ALL.forms, idle_stop_s=120, ood_share_max=0.4), 50).form == "edge"


def test_profiles_are_validated():
    with pytest.raises(ValueError):
        Profiles(())
    with pytest.raises(ValueError):
        Profiles((EDGE, EDGE))
    with pytest.raises(ValueError):
        FormProfile("vm", 1)
    with pytest.raises(ValueError):
        FormProfile("edge", -1)
    with pytest.raises(ValueError):
        Profiles((EDGE,), idle_stop_s=0)


# --- route ---

def test_route_takes_the_decided_form_then_falls_back():
    d = decide(stats(), ALL, 50)  # edge; fallback always_on, on_demand
    ready = [("always_on", "fog-1"), ("edge", "r1"), ("edge", "r2")]
    assert route(d, ready) == Route("edge", ("r1", "r2"))
    assert route(d, ready[:1]) == Route("always_on", ("fog-1",))
    assert route(d, []) == Route("on_demand", (), start=True)
    assert route(d, [], can_start=False) is None


def test_route_on_demand_starts_one_rather_than_use_a_warm_form():
    d = decide(stats(rate=0.002), ALL, 50)
    assert route(d, [("edge", "r1"), ("on_demand", "od-1")]) == Route("on_demand", ("od-1",))
    assert route(d, [("edge", "r1")]) == Route("on_demand", (), start=True)
    assert route(d, [("edge", "r1")], can_start=False) == Route("edge", ("r1",))


def test_route_never_sends_big_inputs_to_the_edge():
    d = decide(stats(size=(1 << 20) - 1), ALL, 50)
    assert route(d, [("edge", "r1")], can_start=False) is None


# --- StreamStats ---

def test_rate_halves_after_one_half_life_without_requests():
    s = StreamStats(half_life_s=60)
    for t in range(100):
        s.observe("a", float(t), 100)
    r = s.snapshot("a", 99.0).rate_rps
    assert s.snapshot("a", 159.0).rate_rps == pytest.approx(r / 2)
    assert s.snapshot("a", 219.0).rate_rps == pytest.approx(r / 4)


def test_rate_tracks_a_steady_rate():
    s = StreamStats(half_life_s=30)
    for i in range(2000):  # 4 req/s for 500 s
        s.observe("a", i * 0.25, 100)
    assert s.snapshot("a", 499.75).rate_rps == pytest.approx(4.0, rel=0.02)


def test_long_runs_rescale_without_drift():
    s = StreamStats(half_life_s=1)
    for t in range(500):  # 500 half-lives: weights rescale many times
        s.observe("a", float(t), 100, ood=t % 4 == 0)
    snap = s.snapshot("a", 499.0)
    assert snap.rate_rps == pytest.approx(math.log(2) / (1 - 0.5), rel=1e-9)
    assert math.isfinite(snap.ood_share) and 0 <= snap.ood_share <= 1 and snap.requests == 500


def test_size_p95_is_the_upper_edge_of_its_log2_bucket():
    s = StreamStats()
    for i in range(100):
        s.observe("a", 0.0, 10_000 if i < 5 else 100)
    assert s.snapshot("a", 0.0).size_p95_bytes == 127  # 95 % at <= 127 B
    s.observe("a", 0.0, 10_000)
    assert s.snapshot("a", 0.0).size_p95_bytes == 16383  # 6 of 101 are large
    s2 = StreamStats()
    s2.observe("z", 0.0, 0)
    assert s2.snapshot("z", 0.0).size_p95_bytes == 0


def test_ood_share_and_unknown_stream():
    s = StreamStats()
    for i in range(10):
        s.observe("a", 1.0, 100, ood=i < 3)
    assert s.snapshot("a", 1.0).ood_share == pytest.approx(0.3)
    assert s.snapshot("nobody", 1.0) == Stats(0.0, 0, 0.0, 0)


def test_time_going_back_counts_as_the_last_time():
    s = StreamStats(half_life_s=10)
    s.observe("a", 100.0, 1)
    s.observe("a", 50.0, 1)
    assert s.snapshot("a", 0.0).rate_rps == pytest.approx(2 * math.log(2) / 10)


def test_lru_bound_drops_the_least_recently_observed():
    s = StreamStats(max_streams=3)
    for k in "abc":
        s.observe(k, 0.0, 1)
    s.observe("a", 1.0, 1)  # a is now the most recent
    s.snapshot("b", 1.0)  # reading does not count as use
    s.observe("d", 2.0, 1)
    assert len(s) == 3 and "b" not in s and all(k in s for k in "acd")


observations = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.floats(0, 1e4),
                                  st.integers(0, 1 << 30), st.booleans()), max_size=60)


@FAST
@given(observations, st.floats(0, 2e4))
def test_stream_stats_deterministic_bounded_and_sane(obs, now):
    def run():
        s = StreamStats(half_life_s=7, max_streams=3)
        for key, t, size, ood in obs:
            s.observe(key, t, size, ood)
        return s, [s.snapshot(k, now) for k in "abcde"]
    (s1, snaps1), (_, snaps2) = run(), run()
    assert snaps1 == snaps2 and len(s1) <= 3
    for snap in snaps1:
        assert snap.rate_rps >= 0 and 0 <= snap.ood_share <= 1 and snap.size_p95_bytes >= 0


# --- decide: properties ---

@st.composite
def profiles(draw):
    forms = draw(st.lists(st.sampled_from(FORMS), min_size=1, max_size=3, unique=True))
    num = st.floats(0, 1e4, allow_nan=False)
    out = tuple(FormProfile(f, draw(num), draw(num) if f == "on_demand" else 0.0,
                            draw(st.sampled_from([0, 1024, 65536, 1 << 24])), draw(num),
                            draw(st.sampled_from([0.0, 0.1, 2.5]))) for f in forms)
    return Profiles(out, idle_stop_s=draw(st.floats(0.01, 1e5)), ood_share_max=draw(st.floats(0, 1)))


stats_st = st.builds(Stats, st.floats(0, 1e6, allow_nan=False), st.integers(0, 1 << 40),
                     st.floats(0, 1), st.integers(0, 10**9))


@FAST
@given(stats_st, profiles(), st.floats(-1, 1e5, allow_nan=False))
def test_decide_always_picks_an_available_form_deterministically(s, p, slo):
    d = decide(s, p, slo)
    available = {f.form for f in p.forms}
    assert d.form in available and f": {d.form}" in d.reason and d == decide(s, p, slo)
    assert set(d.fallback) <= available - {d.form}
    assert all(p.get(f).fits(s.size_p95_bytes) for f in d.fallback)
    r = route(d, [(f, f + "-1") for f in available])
    assert r is not None and r.form == d.form and not r.start


# --- the router's side: Placer, InputCheck, ood_bounds ---

from stratum.request_placement import InputCheck, Placer, ood_bounds  # noqa: E402


def test_placer_orders_forms_by_the_rule_and_skips_forms_too_small_for_one_body():
    p = Placer(ALL, slo_p95_ms=50)
    for i in range(200):  # a busy stream of small bodies: edge
        order = p.forms("s", i * 0.01, 100)
    assert order == ("edge", "always_on", "on_demand")
    # one body bigger than the edge form's max, in the same stream: edge is skipped for it alone
    assert p.forms("s", 2.0, 100_000) == ("always_on", "on_demand")
    assert p.forms("s", 2.01, 100) == ("edge", "always_on", "on_demand")
    # larger than the on-demand form's 16 MiB: only always_on (no limit) is left
    assert p.forms("s", 2.02, 1 << 30) == ("always_on",)
    # a body no form takes keeps the full order (rule 0 of decide handles streams like that)
    small_only = Placer(Profiles((EDGE, LAMBDA)))
    assert small_only.forms("s", 0, 1 << 30) == ("on_demand",)  # the largest form


def test_placer_reworks_a_decision_only_after_refresh_s():
    p = Placer(ALL, slo_p95_ms=50, refresh_s=10, half_life_s=1)
    first = p.forms("s", 0.0, 100)
    for i in range(1, 50):  # the stream turns into large bodies within the refresh window
        assert p.forms("s", i * 0.01, 1 << 18) == ("always_on", "on_demand")  # per-body skip still applies
    assert p.decisions()["s"].form == first[0]
    assert p.forms("s", 11.0, 1 << 18)[0] == "always_on"
    assert p.decisions()["s"].reason.startswith("input p95")


def test_placer_force_sends_everything_to_one_form_and_rejects_unknown_ones():
    p = Placer(ALL, force="on_demand")
    assert p.forms("s", 0, 1 << 30) == ("on_demand",)
    with pytest.raises(ValueError, match="unknown form 'lambda'"):
        Placer(ALL, force="lambda")


def test_placer_keeps_at_most_max_streams_decisions():
    p = Placer(ALL, max_streams=3)
    for i in range(10):
        p.forms(f"s{i}", float(i), 10)
    assert sorted(p.decisions()) == ["s7", "s8", "s9"] and len(p.stats) == 3


REFERENCE = {"format": 1, "rows": 10, "features": {
    "hour": {"type": "integer", "values": [0, 3, 7, 23], "edges": [3, 7], "bins": [0.3, 0.3, 0.4]},
    "weekday": {"type": "string", "frequencies": {"mon": 0.5, "tue": 0.5}},
    "city": {"type": "string", "frequencies": {"a": 0.9, "__other__": 0.1}},
    "empty": {"type": "float", "values": [], "edges": [], "bins": []}}}


def test_ood_bounds_take_the_sampled_range_and_known_categories():
    assert ood_bounds(REFERENCE) == {"num": {"hour": [0.0, 23.0]}, "cat": {"weekday": ["mon", "tue"]}}


@pytest.mark.parametrize("row, ood", [
    ({"hour": 5, "weekday": "mon", "city": "zzz"}, False),  # city had more categories than kept: not checked
    ({"hour": 24, "weekday": "mon"}, False),  # within the 5 % margin of the range (23 * 0.05 = 1.15)
    ({"hour": 25, "weekday": "mon"}, True),
    ({"hour": -2, "weekday": "tue"}, True),
    ({"hour": 5, "weekday": "sun"}, True),
    ({"weekday": None}, False),  # missing values are not out of distribution
    ({"hour": "5"}, False),  # text is the model's problem, not the router's
])
def test_input_check_flags_rows_outside_the_training_inputs(row, ood):
    check = InputCheck(ood_bounds(REFERENCE))
    assert check.row_is_ood(row) is ood
    body = json.dumps({"instances": [{"hour": 1, "weekday": "mon"}, row]}).encode()
    assert check.is_ood(body) is ood


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"instances": 3}', b"\xff\xfe"])
def test_input_check_does_not_flag_bodies_it_cannot_read(body):
    assert InputCheck(ood_bounds(REFERENCE)).is_ood(body) is False
