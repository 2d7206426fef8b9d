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


# -- every other table, the same on both backends ---------------------------------------------------
def test_datasets_round_trip_update_and_delete(store):
    from control_plane.store import DatasetRow

    row = DatasetRow("traffic", '{"name": "traffic"}', "sha256:" + "a" * 64, "b" * 64, "csv",
                     [["hour", "int64"], ["congestion", "string"]], 2000, 1, 1.0, 1.0)
    store.insert_dataset(row)
    with pytest.raises(Conflict):
        store.insert_dataset(row)
    got = store.get_dataset("traffic")
    assert (got.columns, got.row_count, got.version, got.data_format) == ([["hour", "int64"], ["congestion", "string"]], 2000, 1, "csv")
    row.version, row.row_count, row.digest = 2, 2100, "sha256:" + "c" * 64
    store.update_dataset(row)
    assert (store.get_dataset("traffic").version, store.get_dataset("traffic").row_count) == (2, 2100)
    assert store.delete_dataset("traffic") and store.get_dataset("traffic") is None and not store.delete_dataset("traffic")


@pytest.mark.parametrize("table", ["models", "operations", "services", "pools", "pool_vms", "apps"])
def test_documents_put_get_list_delete(store, table):
    store.put_doc(table, "b", {"name": "b", "n": 1, "nested": {"x": [1, 2]}})
    store.put_doc(table, "a", {"name": "a", "n": 2})
    store.put_doc(table, "b", {"name": "b", "n": 3})  # a second put replaces
    assert store.get_doc(table, "b") == {"name": "b", "n": 3} and store.get_doc(table, "zz") is None
    assert [d["name"] for d in store.list_docs(table)] == ["a", "b"]  # ordered by key
    assert store.delete_doc(table, "a") and not store.delete_doc(table, "a")
    assert [d["name"] for d in store.list_docs(table)] == ["b"]


def test_model_versions_recorded_once_oldest_first_and_deleted_with_the_model(store):
    store.put_doc("models", "m", {"name": "m"})
    store.put_model_version("m", "v1", {"version": "v1", "score": 0.8})
    store.put_model_version("m", "v1", {"version": "v1", "score": 0.1})  # the same version: kept as first written
    store.put_model_version("m", "v2", {"version": "v2", "score": 0.9})
    assert [(v["version"], v["score"]) for v in store.model_versions("m")] == [("v1", 0.8), ("v2", 0.9)]
    store.delete_model("m")
    assert store.model_versions("m") == [] and store.get_doc("models", "m") is None


def test_app_runs_numbered_never_doubled_and_found_by_state(store):
    r1 = store.insert_run({"id": "run-1", "app": "agg", "scheduled_for": 60.0, "state": "pending"})
    assert r1["number"] == 1
    assert store.insert_run({"id": "run-1b", "app": "agg", "scheduled_for": 60.0, "state": "pending"}) is None  # same time
    r2 = store.insert_run({"id": "run-2", "app": "agg", "scheduled_for": 120.0, "state": "pending"})
    r3 = store.insert_run({"id": "run-3", "app": "agg", "scheduled_for": None, "state": "pending"})  # run now
    other = store.insert_run({"id": "run-x", "app": "other", "scheduled_for": 60.0, "state": "running"})
    assert (r2["number"], r3["number"], other["number"]) == (2, 3, 1)
    r2.update(state="succeeded", exit_code=0)
    store.update_run(r2)
    assert store.get_run("run-2")["exit_code"] == 0 and store.run_by_number("agg", 2)["id"] == "run-2"
    assert [r["number"] for r in store.list_runs("agg")] == [3, 2, 1] and [r["number"] for r in store.list_runs("agg", 1)] == [3]
    assert sorted(r["id"] for r in store.runs_in(("pending", "running"))) == ["run-1", "run-3", "run-x"]
    assert store.last_run_number("agg") == 3 and store.last_run_number("none") == 0
    store.delete_runs("agg")
    assert store.list_runs("agg") == [] and store.list_runs("other")


def test_node_reports_blobs_and_cluster_values(store):
    store.put_node_report("node-a", {"report": "AAA="})
    store.put_node_report("node-a", {"report": "BBB="})
    store.put_node_report("node-b", {"report": ""})
    assert store.node_reports() == {"node-a": {"report": "BBB="}, "node-b": {"report": ""}}
    store.delete_node_report("node-b")
    assert list(store.node_reports()) == ["node-a"]

    data = bytes(range(256)) * 5000  # 1.2 MB in chunks
    chunks = [data[i:i + 100_000] for i in range(0, len(data), 100_000)]
    store.put_blob("d1", iter(chunks), {"tag": "x"}, batch=3)
    assert store.blob_size("d1") == len(data) and b"".join(store.blob_chunks("d1")) == data
    store.put_blob("d1", iter([b"other"]))  # stored once: a digest names its bytes
    assert b"".join(store.blob_chunks("d1")) == data and store.blob_metadata("d1") == {"tag": "x"}
    store.put_blob_metadata("d1", {"tag": "y"})
    assert store.blob_metadata("d1") == {"tag": "y"} and store.blob_size("nope") is None
    store.delete_blob("d1")
    assert store.blob_size("d1") is None and list(store.blob_chunks("d1")) == []

    assert store.cluster_value("ca_cert") is None
    assert store.cluster_value("ca_cert", "first") == "first"
    assert store.cluster_value("ca_cert", "second") == "first"  # the first to store it decides


def test_the_lease_one_holder_at_a_time_and_a_new_epoch_per_term(store):
    epoch, holder, _, left = store.claim_lease("a", '{"api": "a:1"}', 0.6)
    assert (epoch, holder) == (1, "a") and 0 < left <= 0.6
    assert store.claim_lease("b", '{"api": "b:1"}', 0.6)[:2] == (None, "a")  # a holds it
    assert store.claim_lease("a", '{"api": "a:1"}', 0.6)[0] == 1  # renewed: the same term
    time.sleep(0.7)
    epoch, holder, address, _ = store.claim_lease("b", '{"api": "b:1"}', 5)
    assert (epoch, holder, address) == (2, "b", '{"api": "b:1"}')  # expired: b's term, the next epoch
    assert store.leader()[:3] == ("b", '{"api": "b:1"}', 2)
    assert store.release_lease("b") and store.claim_lease("a", "{}", 5)[0] == 3  # released: a at once


def test_a_write_fenced_by_an_ended_term_is_refused_and_leaves_nothing_and_members_lapse(store):
    from control_plane.store.db import Fenced

    store.announce("a", '{"node": "a:2"}', 5)
    store.announce("b", '{"node": "b:2"}', 0.2)
    time.sleep(0.3)
    assert store.members() == [("a", '{"node": "a:2"}')]  # b's announcement lapsed
    if store.kind == "sqlite":
        return  # one control plane per SQLite file (in its locked data dir): nothing to fence
    epoch, *_ = store.claim_lease("a", "{}", 0.5)
    with store.fenced("a", epoch):
        store.put_doc("services", "s", {"name": "s", "by": "a"})  # a leads: written
    time.sleep(0.6)
    epoch_b, *_ = store.claim_lease("b", "{}", 5)
    with store.fenced("a", epoch):  # a, paused past its lease, wakes up and writes
        with pytest.raises(Fenced):
            store.put_doc("services", "s", {"name": "s", "by": "a again"})
        with pytest.raises(Fenced):
            store.executemany("UPDATE nodes SET state=? WHERE id=?", [("down", "node-x")])
    assert store.get_doc("services", "s") == {"name": "s", "by": "a"}
    with store.fenced("b", epoch_b):
        store.put_doc("services", "s", {"name": "s", "by": "b"})
    assert store.get_doc("services", "s")["by"] == "b"
