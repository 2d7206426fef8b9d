"""How the suite is spread over pytest-xdist workers (scripts/test: --dist loadgroup).

A hook of tests/conftest.py, kept in a module of its own so tests/test_grouping.py can run it on a
suite of its own and show the groups hold."""

from __future__ import annotations

import pytest

# Tests that share an expensive fixture run on one xdist worker (scripts/test: --dist loadgroup), so
# it is set up once: session fixtures named here (bentos built with bentoml, a trained and served
# model) group by name; a test using a module-scoped fixture (a control plane, a trained model, a
# Vault for the whole module) stays with the rest of its module. Every other test goes wherever a
# worker is free.
SHARED_SESSION_FIXTURES = {"built": "bentos", "built_v2": "bentos", "store": "bentos", "congestion_model": "congestion-model"}


# What takes long (seconds, roughly, as --durations lists them on a 2-core machine): test files, and
# groups by name. They are handed out first (scripts/test keeps xdist from reordering the work by
# number of tests): a long test or group started last would keep its worker busy after the others
# are done (longest-first keeps the suite's wall time near the work divided by the workers).
LONG = {
    "tests/integration/test_autoscaling.py": 600, "tests/integration/test_pipeline_faults.py": 380,
    "tests/ha/test_ha.py": 300, "tests/ui/test_dashboard.py": 260, "tests/integration/test_model_lifecycle.py": 250,
    "tests/provider/test_e2e_model_service.py": 200, "tests/integration/test_demo.py": 160,
    "tests/provider/test_e2e_pipeline.py": 150, "tests/integration/test_dask_training.py": 150,
    # The replay (a group of one): not in the first wave, beside the heaviest set-ups. At full load
    # from the start it is the test that flakes (its 3-second minutes); a little later, it still ends early.
    "tests.integration.test_autoscaling": 150,
    "bentos": 140, "tests.provider.test_e2e_join_token": 100, "tests.provider.test_e2e_app_errors": 80,
    "tests.integration.test_cloud_pools": 80, "tests.unit.test_bench_autoscale": 70,
    "tests/provider/test_e2e_model_dask.py": 70, "tests/ha/test_e2e_ha_apply.py": 60,
    "tests/integration/test_failover.py": 55, "tests.provider.test_e2e_cloud_pool": 55,
    "tests/integration/test_request_placement.py": 45, "tests.ml.test_train_dask": 45,
    "tests/integration/test_service_metrics.py": 40, "tests/provider/test_e2e_app.py": 40,
}


@pytest.hookimpl(tryfirst=True)  # before xdist's, which turns the groups into what its scheduler reads
def pytest_collection_modifyitems(config, items):
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group"):
            continue
        names = info.names_closure
        group = next((g for n, g in SHARED_SESSION_FIXTURES.items() if n in names), None)
        if group is None and any(d.scope in ("module", "package", "class")
                                 for n in names for d in info.name2fixturedefs.get(n, ())):
            group = item.module.__name__
        if group:
            item.add_marker(pytest.mark.xdist_group(group))

    def weight(item) -> int:
        mark = item.get_closest_marker("xdist_group")
        group = mark.args[0] if mark and mark.args else None
        return LONG[group] if group in LONG else LONG.get(item.nodeid.split("::")[0], 0)

    items.sort(key=lambda item: -weight(item))  # stable: the rest keep their order
