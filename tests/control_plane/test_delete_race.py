"""Two deletes in a row: the second marked while a pass of finish_deletes reads the documents (from
before it was marked) must still finish. It once did not: the pass replaced the set of names being
deleted with what it had read, the second was never looked at again, and its app stayed "deleting"."""

from __future__ import annotations

import threading

from tests.control_plane.test_app_scheduler import control_plane
from stratum.v1 import apps_pb2 as a
from control_plane.apps.resource import spec_json


def put(store, name):
    spec = a.AppSpec(name=name, kind="batch", command="true")
    store.put_doc("apps", name, {"name": name, "spec": spec_json(spec), "spec_version": 1, "placement": {"node-x": 1},
                                 "instances": {"0": "node-x"}, "deleting": False, "created_at": 0.0})


def test_a_delete_marked_during_a_pass_is_finished_by_the_next(tmp_path):
    store, apps = control_plane(tmp_path)
    reconciler = apps.reconciler
    put(store, "web")
    put(store, "job")
    reconciler.finish_deletes()  # nothing deleting: later passes skip the reads until a delete is marked
    apps.delete("web")

    main, read = threading.current_thread(), store.list_docs
    other = threading.Thread(target=apps.delete, args=("job",))

    def list_docs(table):
        docs = read(table)
        if table == "apps" and threading.current_thread() is main and not other.is_alive() and other.ident is None:
            other.start()  # the second delete, after this pass read the documents
            other.join(1.0)  # (with the fix it waits for the pass to end)
        return docs

    store.list_docs = list_docs
    reconciler.finish_deletes()
    other.join(10)
    store.list_docs = read
    assert store.get_doc("apps", "web") is None and store.get_doc("apps", "job")["deleting"]
    reconciler.finish_deletes()  # no node runs it: the next pass finishes it
    assert store.get_doc("apps", "job") is None
