"""Fixtures for the provider's end-to-end tests (real terraform, real control plane)."""

from __future__ import annotations

import pytest

from tests.provider.tfharness import Workspace, install_provider, terraform_available


@pytest.fixture(scope="session")
def provider_home(tmp_path_factory):
    """A HOME whose implied local mirror holds terraform-provider-stratum, installed as a user would."""
    if not terraform_available():
        pytest.fail("terraform is not on PATH: the end-to-end tests need it (scripts/setup installs a fallback)")
    home = tmp_path_factory.mktemp("tf-home")
    p = install_provider(home)
    assert p.returncode == 0, p.stdout + p.stderr
    return home


def provider_hcl(endpoint: str, ca_cert: str) -> str:
    return f'provider "stratum" {{\n  endpoint = "{endpoint}"\n  ca_cert  = "{ca_cert}"\n}}\n'


@pytest.fixture
def make_workspace(tmp_path, provider_home):
    """make_workspace(name="tf", **env) -> an initialised-on-first-use Workspace in its own directory."""

    def make(name: str = "tf", **env: str) -> Workspace:
        return Workspace(tmp_path / name, provider_home, env)

    return make


@pytest.fixture
def ws(make_workspace, control_plane):
    """A workspace whose provider talks to the test's control plane (token from STRATUM_TOKEN)."""
    w = make_workspace(STRATUM_TOKEN=control_plane.admin_token)
    w.provider = provider_hcl(control_plane.endpoint, control_plane.ca_pem_path)
    return w


@pytest.fixture
def admin(control_plane):
    client = control_plane.client()
    yield client
    client.close()
