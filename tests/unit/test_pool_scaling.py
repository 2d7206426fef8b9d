"""Cloud pool decisions (control_plane/provision/scaling.py), user data and driver options: pure."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.provision.drivers import parse_options, size_info
from control_plane.provision.scaling import LIVE, PoolSize, Vm, desired, plan
from control_plane.provision.userdata import user_data

SIZE = PoolSize(min_nodes=1, max_nodes=4, idle_grace_s=60, join_timeout_s=600)


def vm(token, state="joined", at=0.0, idle=None):
    return Vm(token, state, at, node_id=f"n-{token}", idle_since=idle)


def test_starts_min_nodes_and_what_the_services_want_within_max():
    assert plan(SIZE, [], wanted=0, now=0).create == 1
    assert plan(SIZE, [], wanted=3, now=0).create == 3
    assert plan(SIZE, [], wanted=9, now=0).create == 4
    assert desired(SIZE, 9) == 4 and desired(SIZE, 0) == 1


def test_a_request_in_flight_is_not_doubled():
    vms = [vm("a", "requested"), vm("b", "booting")]
    assert plan(SIZE, vms, wanted=2, now=10).create == 0


def test_gives_back_not_joined_first_then_idle_joined_newest_first_never_below_target():
    vms = [vm("old", at=0, idle=0), vm("new", at=50, idle=0), vm("busy", at=60), vm("boot", "booting", at=70)]
    acts = plan(SIZE, vms, wanted=1, now=100)
    assert acts.create == 0 and acts.terminate == ["boot", "new", "old"]
    # within the grace period an idle VM stays
    assert plan(SIZE, vms, wanted=1, now=30).terminate == ["boot"]


def test_a_vm_that_never_joins_is_failed_and_replaced():
    acts = plan(SIZE, [vm("slow", "booting", at=0)], wanted=1, now=601)
    assert acts.fail == ["slow"] and acts.terminate == ["slow"] and acts.create == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["requested", "booting", "joined", "terminating", "failed"]),
                          st.floats(0, 1000), st.one_of(st.none(), st.floats(0, 1000))), max_size=12),
       st.integers(0, 10), st.integers(0, 6), st.integers(0, 6), st.floats(0, 2000))
def test_never_outside_min_and_max_and_never_gives_back_a_busy_vm(records, wanted, lo, extra, now):
    size = PoolSize(lo, lo + extra, idle_grace_s=60, join_timeout_s=600)
    vms = [Vm(f"t{i}", s, at, idle_since=idle) for i, (s, at, idle) in enumerate(records)]
    acts = plan(size, vms, wanted, now)
    live = [v for v in vms if v.state in LIVE]
    after = len(live) - len(acts.terminate) + acts.create
    assert after == desired(size, wanted) or (after > desired(size, wanted) and acts.create == 0)
    for t in acts.terminate:
        v = next(x for x in vms if x.token == t)
        assert v.state in LIVE
        if v.state == "joined" and t not in acts.fail:
            assert v.idle_since is not None and now - v.idle_since >= 60


def test_user_data_is_a_shell_script_that_quotes_its_values():
    text = user_data(pool="burst", node_name="burst-1a2b", server="10.0.0.1:7443", join_token="stj1.ab'cd.x.y")
    assert text.startswith("#!/bin/sh\n")
    assert "STRATUM_JOIN_TOKEN='stj1.ab'\"'\"'cd.x.y'" in text
    subprocess.run(["sh", "-n", "-c", text], check=True)  # it parses


@pytest.mark.parametrize("options, problems", [
    ({"host": "h", "port": "5000", "secure": "false"}, []),
    ({"port": "x"}, ['driver_options["port"]']),
    ({"secure": "maybe"}, ['driver_options["secure"]']),
    ({"zone": "a"}, ['driver_options["zone"]']),
])
def test_driver_options(options, problems):
    parsed, found = parse_options(options)
    assert [p for p, _ in found] == problems
    if not problems:
        assert parsed == {"host": "h", "port": 5000, "secure": False}


def test_size_info_reads_vcpu_and_takes_the_price_override():
    from libcloud.compute.base import NodeSize

    s = NodeSize("t3.large", "t3.large", 8192, 0, 0, 0.0832, driver=None, extra={"vcpu": "2"})
    assert size_info(s).cpu_cores == 2 and size_info(s).memory_mb == 8192 and size_info(s).price_per_hour == 0.0832
    assert size_info(s, 0.05).price_per_hour == 0.05
