"""The suite's groups hold under pytest-xdist: tests sharing a module-scoped fixture, or a session
fixture named in tests/grouping.py, run on one worker, so the fixture is set up once. Nothing fails
when grouping breaks, the suite only gets slower (each worker sets the fixture up again), so this
runs a small suite of its own on two workers, as scripts/test runs the real one, and looks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RECORD = """
import json, os, time
import pytest

def record(name):
    time.sleep(0.2)  # long enough that both workers are busy while the tests are handed out
    with open(os.environ["GROUPING_OUT"], "a") as f:
        f.write(json.dumps([__name__, name, os.environ["PYTEST_XDIST_WORKER"]]) + "\\n")
"""

MODULE_FIXTURE = RECORD + """
@pytest.fixture(scope="module")
def shared():
    return object()

@pytest.mark.parametrize("i", range(6))
def test_uses_it(shared, i):
    record(f"uses {i}")
"""

SESSION_FIXTURE = RECORD + """
@pytest.mark.parametrize("i", range(3))
def test_uses_the_built_bentos(built, i):
    record(f"built {i}")
"""

NO_FIXTURE = RECORD + """
@pytest.mark.parametrize("i", range(6))
def test_free(i):
    record(f"free {i}")
"""


def test_tests_sharing_a_fixture_run_on_one_worker(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(
        "import pytest\nfrom tests.grouping import pytest_collection_modifyitems  # noqa: F401\n\n"
        "@pytest.fixture(scope='session')\ndef built():\n    return object()\n")
    (suite / "test_module_a.py").write_text(MODULE_FIXTURE)
    (suite / "test_module_b.py").write_text(MODULE_FIXTURE)
    (suite / "test_session_a.py").write_text(SESSION_FIXTURE)
    (suite / "test_session_b.py").write_text(SESSION_FIXTURE)
    (suite / "test_free.py").write_text(NO_FIXTURE)
    out = tmp_path / "ran.jsonl"
    env = {**os.environ, "GROUPING_OUT": str(out), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2", "--dist", "loadgroup",
                        "--rootdir", str(suite), str(suite)], cwd=suite, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ran = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(ran) == 6 + 6 + 3 + 3 + 6
    workers = defaultdict(set)
    for module, _, worker in ran:
        workers["built" if module.startswith("test_session") else module].add(worker)
    assert len(workers["test_module_a"]) == 1, workers  # one module-scoped fixture: one worker
    assert len(workers["test_module_b"]) == 1, workers
    assert len(workers["built"]) == 1, workers  # a named session fixture: one worker for both modules


TIMED = """
import json, os, time
import pytest

def run(name, seconds):
    start = time.time()
    time.sleep(seconds)
    with open(os.environ["GROUPING_OUT"], "a") as f:
        f.write(json.dumps([name, os.environ["PYTEST_XDIST_WORKER"], start, time.time()]) + "\\n")

def test_long_1():
    run("long-1", 4.0)

def test_long_2():
    run("long-2", 1.0)

def test_long_3():
    run("long-3", 1.0)

@pytest.mark.parametrize("i", range(8))
def test_short(i):
    run(f"short-{i}", 0.05)
"""


def test_a_long_test_waits_for_a_worker_with_nothing_long_left(tmp_path):
    """Two workers, three long tests (the first the longest): the third goes to the worker that
    finished the second, not behind the first, where xdist's own read-ahead would queue it."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(
        "from tests.grouping import pytest_collection_modifyitems, pytest_xdist_make_scheduler  # noqa: F401\n")
    (suite / "test_timed.py").write_text(TIMED)
    durations = tmp_path / "durations.json"  # what the scheduler believes, in seconds
    durations.write_text(json.dumps({"test_timed.py::test_long_1": 400, "test_timed.py::test_long_2": 100,
                                     "test_timed.py::test_long_3": 100}))
    out = tmp_path / "ran.jsonl"
    env = {**os.environ, "GROUPING_OUT": str(out), "PYTHONPATH": str(ROOT), "STRATUM_TEST_DURATIONS": str(durations)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2",
                        "--dist", "loadgroup", "--no-loadscope-reorder", "--rootdir", str(suite), str(suite)],
                       cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ran = {name: (worker, start, end) for name, worker, start, end in
           (json.loads(line) for line in out.read_text().splitlines())}
    assert len(ran) == 3 + 8
    assert ran["long-1"][0] != ran["long-2"][0]  # the two longest start at once, one on each worker
    assert ran["long-3"][0] == ran["long-2"][0], ran
    assert ran["long-3"][1] < ran["long-1"][2], ran  # started while the longest still ran
