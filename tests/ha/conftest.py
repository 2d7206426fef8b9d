"""The failover e2e test applies the smart-traffic module with terraform: the provider installed as
the end-to-end tests install it."""

from tests.provider.conftest import provider_home  # noqa: F401 - a fixture, shared
