"""The store behaves the same on SQLite and on a real PostgreSQL 15."""

from __future__ import annotations

import threading
import time

import pytest

from control_plane.store import Conflict, JoinTokenRow, NodeRow, Store
from control_plane.store.schema import MIGRATIONS


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = Store(None, str(tmp_path))
    else:
        s = Store(request.getfixturevalue("postgres_url"), str(tmp_path))
    yield s
    s.close()


def token(name="t1", max_uses=0, tid="jt-000000000001"):
    return JoinTokenRow(tid, name, "s3cret", "edge", {"zone": "n"}, "", max_uses, 0, "", time.time(), None)


def node(name, nid=None):
    return NodeRow(nid or f"node-{name}", name, "edge", {"a": "b"}, "down", "{}", "{}", "fp-" + name, "t1", time.time())


def test_migrations_apply_once(store):
    assert store.schema_version() == MIGRATIONS[-1][0]
    assert store.migrate() == []  # a second start applies nothing


def test_join_token_round_trip_and_unique_name(store):
    store.insert_join_token(token())
    got = store.get_join_token(name="t1")
    assert (got.id, got.labels, got.max_uses, got.uses) == ("jt-000000000001", {"zone": "n"}, 0, 0)
    assert store.get_join_token(token_id="jt-000000000001").name == "t1"
    with pytest.raises(Conflict):
        store.insert_join_token(token(tid="jt-000000000002"))
    assert [t.name for t in store.list_join_tokens()] == ["t1"]
    assert store.delete_join_token("t1") and not store.delete_join_token("t1")


def test_enroll_counts_uses_atomically(store):
    store.insert_join_token(token(max_uses=3))
    results = []

    def attempt(i):
        try:
            store.enroll_node(node(f"n{i}"), "jt-000000000001", 3)
            results.append("ok")
        except Conflict:
            results.append("used up")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == ["ok"] * 3 + ["used up"] * 5
    assert store.get_join_token(name="t1").uses == 3
    assert len(store.list_nodes()) == 3


def test_failed_enrollment_leaves_nothing(store):
    store.insert_join_token(token())
    store.enroll_node(node("dup"), "jt-000000000001", 0)
    with pytest.raises(Conflict):
        store.enroll_node(node("dup", nid="node-other"), "jt-000000000001", 0)
    assert store.get_join_token(name="t1").uses == 1  # the failed insert rolled back the use
    assert [n.id for n in store.list_nodes()] == ["node-dup"]


def test_heartbeats_and_states(store):
    store.insert_join_token(token())
    store.enroll_node(node("a"), "jt-000000000001", 0)
    store.update_node_session("node-a", '{"cpuCores": 2}', {"a": "c"}, "ready", 100.0)
    store.record_heartbeats([("node-a", 105.0, '{"cpuPercent": 3.0}')])
    store.set_node_states([("node-a", "down")])
    n = store.get_node(name="a")
    assert (n.state, n.labels, n.last_heartbeat, n.utilisation, n.capabilities) == (
        "down", {"a": "c"}, 105.0, '{"cpuPercent": 3.0}', '{"cpuCores": 2}')


def test_unsupported_store_url_is_named(tmp_path):
    with pytest.raises(ValueError, match="unsupported store 'mysql://x'"):
        Store("mysql://x", str(tmp_path))


def test_history_upserts_reads_newest_and_prunes(store):
    store.add_history([("node", "edge-1", 60.0, {"values": {"cpu_percent": 10.0}}),
                       ("node", "edge-1", 120.0, {"values": {"cpu_percent": 20.0}}),
                       ("node", "edge-2", 120.0, {"values": {"cpu_percent": 99.0}}),
                       ("service", "edge-1", 120.0, {"values": {"requests": 5}})])
    store.add_history([("node", "edge-1", 120.0, {"values": {"cpu_percent": 25.0}})])  # same time: replaced
    assert store.history("node", "edge-1", 0.0, 10) == [(60.0, {"values": {"cpu_percent": 10.0}}),
                                                       (120.0, {"values": {"cpu_percent": 25.0}})]
    assert store.history("node", "edge-1", 0.0, 1) == [(120.0, {"values": {"cpu_percent": 25.0}})]  # the newest
    assert store.history("node", "edge-1", 61.0, 10) == [(120.0, {"values": {"cpu_percent": 25.0}})]
    assert store.prune_history(100.0) == 1
    assert [at for at, _ in store.history("node", "edge-1", 0.0, 10)] == [120.0]
    store.delete_history("node", "edge-1")
    assert store.history("node", "edge-1", 0.0, 10) == [] and store.history("node", "edge-2", 0.0, 10)
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is written
        store.add_history([("node", "x", 1.0, {"values": {"cpu_percent": float("nan")}})])
    assert store.history("node", "x", 0.0, 10) == []


def test_access_tokens_unique_names_and_secret_digest_only(store):
    store.insert_access_token("at-000000000001", "viewer", {"id": "at-000000000001", "name": "viewer"}, "ab" * 32, 1.0, None)
    with pytest.raises(Conflict):
        store.insert_access_token("at-000000000002", "viewer", {"id": "at-000000000002", "name": "viewer"}, "cd" * 32, 1.0, None)
    assert store.access_token("at-000000000001") == ({"id": "at-000000000001", "name": "viewer"}, "ab" * 32)
    assert store.access_token("at-000000000002") is None
    assert [d["name"] for d in store.list_access_tokens()] == ["viewer"]
    assert store.delete_access_token("viewer") and not store.delete_access_token("viewer")


def test_node_drain_is_stored(store):
    store.insert_join_token(token())
    store.enroll_node(node("d1"), "jt-000000000001", 0)
    assert store.get_node(name="d1").drain is False
    assert store.set_node_drain("node-d1", True) and store.get_node(node_id="node-d1").drain is True
    assert [n.drain for n in store.list_nodes()] == [True]
    assert not store.set_node_drain("node-missing", True)
