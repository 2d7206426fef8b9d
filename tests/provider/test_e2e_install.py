"""The installed provider as Terraform sees it: offline init, schema, lock file after a reinstall."""

from __future__ import annotations

import json
import shutil

import pytest

from provider.install import lock_command
from tests.provider.tfharness import Workspace, install_provider

pytestmark = [pytest.mark.e2e]

CFG = 'provider "stratum" {}\n'


def test_plain_offline_init_finds_the_provider(make_workspace):
    ws = make_workspace()
    ws.write(CFG)
    out = ws.init().stdout
    assert "Installed stratum/stratum v" in out
    assert 'provider "registry.terraform.io/stratum/stratum"' in (ws.dir / ".terraform.lock.hcl").read_text()


def test_schema_needs_no_control_plane(make_workspace):
    ws = make_workspace()
    ws.write(CFG)
    schema = json.loads(ws.tf("providers", "schema", "-json").stdout)["provider_schemas"]["registry.terraform.io/stratum/stratum"]
    provider = schema["provider"]["block"]["attributes"]
    assert set(provider) == {"endpoint", "endpoints", "token", "ca_cert"} and provider["token"]["sensitive"]
    assert provider["endpoints"]["type"] == ["list", "string"] and provider["endpoints"]["optional"]
    nodes = schema["data_source_schemas"]["stratum_nodes"]["block"]["attributes"]["nodes"]
    assert nodes["computed"] and nodes["nested_type"]["nesting_mode"] == "list"
    assert nodes["nested_type"]["attributes"]["addresses"]["type"] == ["list", "string"]
    token = schema["resource_schemas"]["stratum_join_token"]["block"]["attributes"]
    assert token["token"]["sensitive"] and token["name"]["required"]
    assert set(schema["data_source_schemas"]) == {"stratum_nodes", "stratum_node", "stratum_placement"}


def test_validate_needs_no_control_plane(make_workspace):
    ws = make_workspace()
    good = CFG + 'resource "stratum_join_token" "x" {\n  name = "x"\n  tier = "edge"\n}\ndata "stratum_node" "n" {\n  name = "a"\n}\n'
    ws.write(good)
    assert "The configuration is valid" in ws.tf("validate", "-no-color").stdout
    ws.write(good.replace('tier = "edge"', 'tier = "edge"\n  token = "mine"').replace('name = "a"', 'name = "a"\n  id = "node-1"'))
    res = ws.tf("validate", "-no-color", check=False)
    assert res.rc == 1 and "token" in res.output and "Conflicting node id and name" in res.output


def test_changed_launcher_breaks_the_lock_and_the_printed_command_repairs_it(tmp_path):
    home = tmp_path / "home"
    assert install_provider(home).returncode == 0
    ws = Workspace(tmp_path / "tf", home)
    ws.write(CFG)
    ws.init()
    # What an install from another virtualenv does: a launcher with other bytes, same version.
    launcher = next((home / ".terraform.d" / "plugins").rglob("terraform-provider-stratum_v*"))
    launcher.write_text(launcher.read_text().replace("#!/bin/sh\n", "#!/bin/sh\n# elsewhere\n"))
    shutil.rmtree(ws.dir / ".terraform")
    res = ws.tf("init", "-no-color", "-input=false", check=False)
    assert res.rc == 1 and "checksums" in res.output
    ws.tf(*lock_command(home / ".terraform.d" / "plugins").split()[1:])
    ws.tf("init", "-no-color", "-input=false")
    assert ws.tf("providers", "schema", "-json").rc == 0
