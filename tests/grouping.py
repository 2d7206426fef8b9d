"""How the suite is spread over pytest-xdist workers (scripts/test: --dist loadgroup).

A hook of tests/conftest.py, kept in a module of its own so tests/test_grouping.py can run it on a
suite of its own and show the groups hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from xdist.scheduler import LoadGroupScheduling

# Tests that share an expensive fixture run on one xdist worker (scripts/test: --dist loadgroup), so
# it is set up once: session fixtures named here (bentos built with bentoml, a trained and served
# model) group by name; a test using a module-scoped fixture (a control plane, a trained model, a
# Vault for the whole module) stays with the rest of its module. Every other test goes wherever a
# worker is free.
SHARED_SESSION_FIXTURES = {"built": "bentos", "built_v2": "bentos", "store": "bentos", "congestion_model": "congestion-model"}


# How long each test takes (seconds of wall time on a 2-core machine under the full suite, setup and
# teardown included), as `./scripts/test --store-durations` measured it: tests/durations.json lists
# those of a second or more; any other counts as DEFAULT_S. Work is handed out longest first, a group
# as the sum of its tests: a long test started last keeps its worker busy after the others are done.
DURATIONS = Path(os.environ.get("STRATUM_TEST_DURATIONS", Path(__file__).with_name("durations.json")))
DEFAULT_S = 0.5
STORE_MIN_S = 1.0
LONG_S = 20.0  # a unit of work this long goes only to a worker with nothing long left to run
# The replay (a group of one, minutes of 3 s) starts once the first wave is under way rather than
# beside it: at full load from the start it is the test that flakes. It still ends before the others.
SECOND_WAVE = {"tests.integration.test_autoscaling"}


def _durations() -> dict[str, float]:
    try:
        return json.loads(DURATIONS.read_text())
    except FileNotFoundError:
        return {}


def _plain(nodeid: str) -> str:
    """A test's id without the `@group` xdist appends for --dist loadgroup."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") else nodeid


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

    durations = _durations()
    units: dict[str, float] = {}  # what xdist hands out whole: a group, or one test
    for item in items:
        units[_unit(item)] = units.get(_unit(item), 0.0) + durations.get(item.nodeid, DEFAULT_S)
    order = sorted(units, key=lambda u: -units[u])
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    for u in [u for u in order if u in SECOND_WAVE]:
        order.remove(u)
        order.insert(min(workers, len(order)), u)
    rank = {u: i for i, u in enumerate(order)}
    items.sort(key=lambda item: rank[_unit(item)])  # stable: a unit's tests keep their order


def _unit(item) -> str:
    mark = item.get_closest_marker("xdist_group")
    return mark.args[0] if mark and mark.args else item.nodeid


class LongestFirst(LoadGroupScheduling):
    """xdist's loadgroup, without handing a long unit to a worker that is still busy with one.

    xdist keeps two tests queued on each worker (a worker runs a test only once it knows the next),
    so it hands out the next unit while the last one still runs: a long unit went to a worker with
    minutes of work left while another sat idle. Here a worker still busy with a long unit gets short
    units ahead; a long one goes to a worker with nothing long left, or when nothing short is left."""

    def __init__(self, config, log=None):
        super().__init__(config, log)
        self._seconds = _durations()
        self._weights: dict[str, float] = {}  # scope -> seconds: a unit's tests do not change

    def _weight(self, scope: str, unit: dict[str, bool]) -> float:
        if scope not in self._weights:
            self._weights[scope] = sum(self._seconds.get(_plain(nodeid), DEFAULT_S) for nodeid in unit)
        return self._weights[scope]

    def _reschedule(self, node) -> None:
        if node.shutting_down or not self.workqueue or self._pending_of(self.assigned_work[node]) > 2:
            return super()._reschedule(node)  # shuts down a node when no work is left; or enough queued
        busy = any(not all(unit.values()) and self._weight(scope, unit) >= LONG_S
                   for scope, unit in self.assigned_work[node].items())
        if busy:
            short = next((s for s, unit in self.workqueue.items() if self._weight(s, unit) < LONG_S), None)
            if short is not None:
                self.workqueue.move_to_end(short, last=False)
        self._assign_work_unit(node)


def pytest_xdist_make_scheduler(config, log):
    return LongestFirst(config, log) if config.getoption("dist", None) == "loadgroup" else None


def pytest_addoption(parser):
    parser.addoption("--store-durations", action="store_true",
                     help=f"write each test's wall time (setup, call and teardown) to {DURATIONS}")


_measured: dict[str, float] = {}


def pytest_runtest_logreport(report):
    _measured[_plain(report.nodeid)] = _measured.get(_plain(report.nodeid), 0.0) + report.duration


def pytest_sessionfinish(session):
    if not session.config.getoption("store_durations") or hasattr(session.config, "workerinput"):
        return
    kept = {k: v for k, v in _durations().items() if k not in _measured}  # tests this run did not run
    kept.update({k: round(v, 1) for k, v in _measured.items() if v >= STORE_MIN_S})
    DURATIONS.write_text(json.dumps(dict(sorted(kept.items())), indent=0) + "\n")
