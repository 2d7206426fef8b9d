"""Nested attributes (provider/nested.py) through real Terraform: SINGLE, LIST, SET and MAP nesting."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from provider.install import target_platform
from tests.provider.tfharness import Step, Workspace, run_steps, terraform_available

pytestmark = pytest.mark.e2e

HEADER = '''
terraform {
  required_providers {
    nestedtest = { source = "stratum/nestedtest" }
  }
}
'''
ADDR = "nestedtest_thing.a"


@pytest.fixture
def ws(tmp_path):
    if not terraform_available():
        pytest.fail("terraform is not on PATH: the end-to-end tests need it (scripts/setup installs a fallback)")
    home = tmp_path / "home"
    launcher = home / ".terraform.d/plugins/registry.terraform.io/stratum/nestedtest/0.0.1" / target_platform() / "terraform-provider-nestedtest_v0.0.1"
    launcher.parent.mkdir(parents=True)
    script = Path(__file__).with_name("nested_test_provider.py")
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -P {shlex.quote(str(script))} \"$@\"\n")
    launcher.chmod(0o755)
    w = Workspace(tmp_path / "tf", home)
    w.write = lambda config: (w.dir / "main.tf").write_text(HEADER + config)
    return w


def test_nested_attributes_round_trip(ws):
    full = '''
resource "nestedtest_thing" "a" {
  name         = "a"
  requirements = { cpu = 0.5, tiers = ["edge", "fog"] }
  ports        = [{ port = 80 }, { port = 53, protocol = "udp" }]
  env          = { MODE = { value = "fast" } }
}
'''

    def created(ws):
        s = ws.resources()[ADDR]
        assert s["requirements"] == {"cpu": 0.5, "memory_mb": None, "arch": None, "tiers": ["edge", "fog"]}
        assert sorted(s["ports"], key=lambda p: p["port"]) == [{"port": 53, "protocol": "udp"}, {"port": 80, "protocol": None}]
        assert s["env"] == {"MODE": {"value": "fast"}}
        assert s["placements"] == [{"node": "node-edge", "cpu": 0.5}, {"node": "node-fog", "cpu": 0.5}]

    changed = full.replace("cpu = 0.5, tiers = [\"edge\", \"fog\"]", 'cpu = 2, arch = "aarch64"')

    def updated(ws):
        s = ws.resources()[ADDR]
        assert s["requirements"] == {"cpu": 2, "memory_mb": None, "arch": "aarch64", "tiers": None}
        assert s["placements"] == [{"node": "node-any", "cpu": 2}]

    removed = '''
resource "nestedtest_thing" "a" {
  name = "a"
}
'''

    def cleared(ws):
        s = ws.resources()[ADDR]
        assert s["requirements"] is None and s["ports"] is None and s["env"] is None
        assert s["placements"] == [{"node": "node-any", "cpu": None}]

    run_steps(ws, [Step(full, check=created), Step(changed, check=updated), Step(removed, check=cleared)])
    ws.destroy()


def test_nested_attribute_type_errors_come_from_terraform(ws):
    # (Terraform 1.11 drops attributes an object does not have, e.g. a typo, without an error.)
    run_steps(ws, [
        Step('resource "nestedtest_thing" "a" {\n  name = "a"\n  requirements = { cpu = "lots" }\n}\n', plan_only=True,
             expect_error=["a number is required"]),
        Step('resource "nestedtest_thing" "a" {\n  name = "a"\n  ports = [{ protocol = "tcp" }]\n}\n', plan_only=True,
             expect_error=['attribute "port" is']),
    ])
