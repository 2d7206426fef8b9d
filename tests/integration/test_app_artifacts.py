"""App artifacts on a node, through the API with a real control plane and node daemon."""

from __future__ import annotations

import os

from stratum.v1 import apps_pb2 as a, models_pb2 as m
from tests.harness import wait_for
from tests.integration.test_apps import tar_of
from tests.lifecycle import upload


def test_instances_starting_together_on_one_node_fetch_a_shared_artifact_once(control_plane, start_node):
    """Several instances placed on one node at once, all of one artifact: each gets the whole tree
    (the fetches of one digest must not write the same partial file side by side)."""
    c = control_plane.client()
    node = start_node("edge-1", tier="edge")
    wait_for(lambda: c.nodes().get("edge-1") and c.nodes()["edge-1"].state == "ready", 30, what="node ready")
    # large enough (8 MiB, many chunks) that the fetches of the instances overlap
    art = tar_of({"run.py": "import time\ntime.sleep(600)\n", "blob.txt": os.urandom(6 << 20).hex()[: 8 << 20]})
    sha = upload(c, art)
    c.CreateApp(a.AppSpec(name="many", kind="service", command="python3", args=["run.py"], count=4,
                          placement=m.PlacementPreferences(pack=True),
                          artifact=a.Artifact(sha256=sha, size=len(art), name="many", directory=True)))
    seen = set()  # every instance state on the way: a start that found no whole artifact shows "failed"

    def all_running():
        app = c.GetApp(a.GetAppRequest(name="many"))
        seen.update((i.index, i.state, i.error) for i in app.instances)
        return app if app.state == "ready" else None

    app = wait_for(all_running, 90, interval=0.1, what="four instances running")
    assert [(i.state, i.restarts) for i in app.instances] == [("running", 0)] * 4, app.instances
    assert not [s for s in seen if s[1] == "failed"], seen
    root = os.path.join(node.data_dir, "apps")
    copies = [os.path.join(dirpath, "blob.txt") for dirpath, _, files in os.walk(root) if "blob.txt" in files]
    assert len(copies) == 4 and all(os.path.getsize(p) == 8 << 20 for p in copies), copies
    c.DeleteApp(a.DeleteAppRequest(name="many"))
    c.close()
