"""Pure logic: first-fit placement, retraining triggers, and the model spec translation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from control_plane.ml import drift
from control_plane.models import ml_spec, validate_spec
from control_plane.placement.first_fit import Demand, NodeView, Used, place, why_not
from control_plane.retraining import due
from stratum.v1 import models_pb2 as m

EDGE = NodeView("n1", "edge-1", "edge", {"zone": "a"}, "x86_64", cpu=4, memory_mb=1000)
FOG = NodeView("n2", "fog-1", "fog", {"zone": "b"}, "aarch64", cpu=8, memory_mb=4000)


def test_first_fit_packs_on_the_first_node_then_spills_over():
    placement, reasons = place([FOG, EDGE], Demand(cpu=1, memory_mb=400), 3, {})
    assert placement == {"n1": 2, "n2": 1} and reasons == []  # edge-1 sorts first; 2 x 400 MiB fit in 1000


def test_first_fit_counts_what_other_services_hold_and_explains_a_miss():
    placement, reasons = place([EDGE], Demand(memory_mb=400), 2, {"n1": Used(memory_mb=500)})
    assert placement == {"n1": 1}
    assert reasons == ["edge-1 has 100 MiB free, needs 400"]


def test_filters_name_the_reason():
    assert why_not(EDGE, Demand(tiers=("fog", "cloud"))) == "edge-1 is edge, not fog or cloud"
    assert why_not(EDGE, Demand(labels=(("zone", "b"),))) == "edge-1 lacks label zone=b"
    assert why_not(EDGE, Demand(arch="aarch64")) == "edge-1 is x86_64, not aarch64"
    assert why_not(EDGE, Demand(cpu=5)) == "edge-1 has 4 of 4 cores free, needs 5"
    assert why_not(NodeView("n3", "x", "edge", ready=False), Demand()) == "x is down"
    assert why_not(FOG, Demand(cpu=2, memory_mb=100, tiers=("fog",), labels=(("zone", "b"),), arch="aarch64")) is None


def _reference(seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"speed": rng.normal(50, 5, 2000), "road": rng.choice(["a", "b"], 2000)})
    return drift.reference_profile(frame, [{"name": "speed", "type": "float"}, {"name": "road", "type": "string"}])


def test_retraining_is_due_on_age_counted_from_the_last_training():
    serving = {"version": "v1", "created_at": 1000.0}
    assert due({"max_age": "1h"}, serving, 1000 + 3599, [], None, training=False) == (None, None)
    reason, _ = due({"max_age": "1h"}, serving, 1000 + 3600, [], None, training=False)
    assert reason.startswith("max_age: version v1 is 3600s old")
    # a retraining that kept v1 (same data) restarts the clock
    assert due({"max_age": "1h"}, serving, 1000 + 3600, [], None, training=False, last_trained=1000 + 1800) == (None, None)
    assert due({"max_age": "1h"}, serving, 10**9, [], None, training=True) == (None, None)  # one at a time
    assert due({"max_age": "1h"}, None, 10**9, [], None, training=False) == (None, None)  # nothing trained yet


def test_retraining_is_due_on_drift_only_with_enough_samples():
    ref, rng = _reference(), np.random.default_rng(1)
    same = [{"speed": float(x), "road": str(r)} for x, r in zip(rng.normal(50, 5, 300), rng.choice(["a", "b"], 300))]
    shifted = [{"speed": float(x), "road": "a"} for x in rng.normal(65, 5, 300)]
    serving = {"version": "v1", "created_at": 0.0}
    assert due({"on_drift": True}, serving, 1.0, same, ref, training=False)[0] is None
    reason, report = due({"on_drift": True}, serving, 1.0, shifted, ref, training=False)
    assert reason.startswith("drift: drift in speed") and report.drifted
    reason, report = due({"on_drift": True, "min_samples": 500}, serving, 1.0, shifted, ref, training=False)
    assert reason is None and not report.enough


def test_model_spec_translation_and_attribute_paths():
    spec = m.ModelSpec(name="c", dataset="t", task="classification", candidates=["random_forest", "knn"],
                       preprocessing=m.Preprocessing(impute="median", one_hot=["road"]), selection=m.Selection(metric="f1"))
    spec.grids["random_forest"].update({"n_estimators": [50, 100]})
    out, renames = ml_spec(spec, "congested")
    assert out == {"task": "classification", "target": "congested", "selection": {"metric": "f1"},
                   "candidates": [{"algorithm": "random_forest", "grid": {"n_estimators": [50, 100]}}, "knn"],
                   "preprocessing": [{"impute": {"strategy": "median"}}, {"one_hot": ["road"]}]}
    assert renames == {"preprocessing[0].impute": "preprocessing.impute", "preprocessing[1].one_hot": "preprocessing.one_hot",
                       "candidates[0].grid": 'grids["random_forest"]'}
    bad = m.ModelSpec(name="c", dataset="t", task="regression", candidates=["kmeans"], selection=m.Selection(metric="f1"))
    bad.grids["svm"].update({"C": [1]})
    bad.retrain.max_age = "soon"
    fields = {f for f, _ in validate_spec(bad)}
    assert {'grids["svm"]', "retrain.max_age", "candidates[0]", "selection.metric"} <= fields
