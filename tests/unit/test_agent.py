"""The scaling agent's decisions (control_plane/autoscale/agent.py): pure."""

from __future__ import annotations

import numpy as np

from control_plane.autoscale.agent import AgentConfig, Hold, demand_to_serve, replicas_for, vm_changes

CFG = AgentConfig(max_utilisation=0.8, cooldown_min=10, billing_min=60)


def test_provisions_for_the_forecast_upper_bound_over_the_lead_time():
    need, why = demand_to_serve(np.array([100, 250, 180, 900]), lead=3, live_rpm=90, capacity_rpm=300, cfg=CFG)
    assert need == 250 and "forecast upper bound over 3 min" in why  # the 4th minute is beyond the lead


def test_the_reactive_safety_net_covers_live_arrivals_the_forecast_missed():
    need, why = demand_to_serve(np.array([100, 110]), lead=2, live_rpm=280, capacity_rpm=300, cfg=CFG)
    assert need == 280 / 0.8 and why.endswith(": reactive") and "80%" in why
    need, why = demand_to_serve(np.array([100]), lead=1, live_rpm=50, capacity_rpm=300, cfg=CFG,
                                live_p95_ms=90, slo_ms=50)
    assert need == 100 and "forecast" in why  # slow, but the forecast already asks for more
    need, why = demand_to_serve(np.array([10]), lead=1, live_rpm=50, capacity_rpm=300, cfg=CFG, live_p95_ms=90, slo_ms=50)
    assert need == 50 / 0.8 and why.startswith("live p95 over the objective")
    assert demand_to_serve(np.array([]), lead=1, live_rpm=5, capacity_rpm=0, cfg=CFG)[0] == 5 / 0.8


def test_scale_out_at_once_scale_in_only_after_the_cooldown():
    h = Hold(10)
    assert h.add(0, 100) == 100
    assert h.add(1, 300) == 300  # out: at once
    assert h.add(5, 120) == 300  # in: not yet
    assert h.add(11, 120) == 120  # the 300 of minute 1 has aged out


def test_vms_stop_only_at_the_end_of_a_paid_period_newest_first():
    started = [0, 30, 45]
    assert vm_changes(started, 5, 50, CFG) == (2, [])
    assert vm_changes(started, 1, 50, CFG) == (0, [])  # nobody's hour ends at minute 50
    assert vm_changes(started, 1, 89, CFG) == (0, [1])  # the one started at 30: its hour ends
    assert vm_changes(started, 0, 119, CFG) == (0, [0])
    per_second = AgentConfig(billing_min=1)
    assert vm_changes(started, 1, 50, per_second) == (0, [2, 1])


def test_replicas_for():
    assert replicas_for(250, 100) == 3 and replicas_for(0, 100) == 0 and replicas_for(10, 0) == 0


def test_a_peak_bound_replaces_the_per_step_bounds():
    need, why = demand_to_serve(np.array([100, 250, 180]), lead=3, live_rpm=90, capacity_rpm=300, cfg=CFG, peak=270)
    assert need == 270 and "peak" in why
    assert demand_to_serve(np.array([100, 250]), lead=2, live_rpm=90, capacity_rpm=300, cfg=CFG,
                           peak=float("nan"))[0] == 250  # no peak yet: the per-step bounds


def test_the_safety_net_fires_on_a_forecast_miss_not_on_noise_the_forecast_bounded():
    # 280 of 300 is over 80 %, but the forecast had bounded this minute at 290: no reaction
    need, why = demand_to_serve(np.array([290, 295]), lead=2, live_rpm=280, capacity_rpm=300, cfg=CFG, expected_rpm=290)
    assert need == 295 and "forecast" in why
    # the forecast had said 250: a miss, react
    need, why = demand_to_serve(np.array([290, 295]), lead=2, live_rpm=280, capacity_rpm=300, cfg=CFG, expected_rpm=250)
    assert need == 280 / 0.8 and why.endswith(": reactive")


def test_vms_the_look_ahead_still_wants_are_renewed_at_the_end_of_their_hour():
    started = [0, 30, 45]
    assert vm_changes(started, 1, 89, CFG, keep=3) == (0, [])  # wanted again soon: renewed
    assert vm_changes(started, 1, 89, CFG, keep=2) == (0, [1])  # one surplus beyond the look-ahead
    assert vm_changes(started, 0, 119, CFG, keep=1) == (0, [0])  # the only one at its end, 2 others kept
    assert vm_changes(started, 5, 50, CFG, keep=1) == (2, [])  # keep never stops or starts on its own
    per_second = AgentConfig(billing_min=1)
    assert vm_changes(started, 0, 50, per_second, keep=2) == (0, [2])
