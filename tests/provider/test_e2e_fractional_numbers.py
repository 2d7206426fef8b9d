"""A fractional number that no float64 holds exactly (requirements.cpu = 0.1) applies, and the
next plan is empty: Terraform sends such a number as text, the state holds it as a float."""

from __future__ import annotations

import pytest

from tests.harness import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

APP = '''
resource "stratum_app" "tenth" {
  name         = "tenth"
  kind         = "service"
  command      = "sleep"
  args         = ["600"]
  requirements = { cpu = 0.1, tiers = ["edge"] }
}
'''


def test_a_tenth_of_a_core_plans_no_change_after_apply(ws, admin, start_node):
    start_node("edge-1", tier="edge")
    wait_for(lambda: admin.nodes().get("edge-1") and admin.nodes()["edge-1"].state == "ready", 30, what="node ready")
    ws.write(ws.provider + APP)
    ws.apply()
    assert ws.resources()["stratum_app.tenth"]["requirements"]["cpu"] == 0.1
    res = ws.plan()
    assert res.rc == 0, res.output
    ws.destroy()
