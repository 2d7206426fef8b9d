"""The `stratum` provider: configuration (endpoint, token, ca_cert) and the list of resources."""

from __future__ import annotations

import os
from typing import Optional, Type

from tf.iface import Config, DataSource, Provider, Resource
from tf.schema import Attribute, Schema
from tf.types import List, String, Unknown
from tf.utils import Diagnostics

from provider.client import Client
from stratum.grpc_util import split_endpoint

DEFAULT_ENDPOINT = "127.0.0.1:7443"
ADDRESS = "registry.terraform.io/stratum/stratum"


def provider_schema() -> Schema:
    return Schema(
        version=0,
        attributes=[
            Attribute(
                "endpoint",
                String(),
                description=f"host:port of the control plane's API. Default: `STRATUM_ENDPOINT`, else `{DEFAULT_ENDPOINT}`.",
                optional=True,
            ),
            Attribute(
                "endpoints",
                List(String()),
                description="Several control planes on one database (high availability): their host:port, tried in "
                            "turn when one is unreachable. Instead of `endpoint`; `STRATUM_ENDPOINT` may also list "
                            "them, comma-separated.",
                optional=True,
            ),
            Attribute(
                "token",
                String(),
                description="Admin token (`admin.token` in the control plane's data dir). Default: `STRATUM_TOKEN`.",
                optional=True,
                sensitive=True,
            ),
            Attribute(
                "ca_cert",
                String(),
                description="Path to the control plane's CA certificate (`ca.pem` in its data dir). Default: `STRATUM_CA_CERT`.",
                optional=True,
            ),
        ],
    )


def _setting(config: Config, name: str, env: str, default: Optional[str] = None):
    """Config value, else environment, else default. Unknown stays Unknown."""
    value = config.get(name)
    if value is Unknown:
        return Unknown
    if value not in (None, ""):
        return value
    return os.environ.get(env) or default


class StratumProvider(Provider):
    def __init__(self):
        # Set by configure_provider; None while the configuration is unknown (values
        # that come from other resources during the first plan) or invalid.
        self.client: Optional[Client] = None

    def get_model_prefix(self) -> str:
        return "stratum_"

    def full_name(self) -> str:
        return ADDRESS

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return provider_schema()

    def validate_config(self, diags: Diagnostics, config: Config):
        endpoint = config.get("endpoint")
        if isinstance(endpoint, str) and endpoint:
            try:
                split_endpoint(endpoint)
            except ValueError as e:
                diags.add_error("Invalid endpoint", str(e), path=["endpoint"])
        endpoints = config.get("endpoints")
        if isinstance(endpoints, list):
            if isinstance(endpoint, str) and endpoint:
                diags.add_error("Conflicting endpoints", "set endpoint or endpoints, not both", path=["endpoints"])
            for i, e in enumerate(endpoints):
                if isinstance(e, str):
                    try:
                        split_endpoint(e)
                    except ValueError as err:
                        diags.add_error("Invalid endpoint", str(err), path=["endpoints", i])

    def configure_provider(self, diags: Diagnostics, config: Config):
        listed = config.get("endpoints")
        if listed is Unknown or (isinstance(listed, list) and Unknown in listed):
            return
        if listed:
            endpoints = [e for e in listed if e]
        else:
            endpoint = _setting(config, "endpoint", "STRATUM_ENDPOINT", DEFAULT_ENDPOINT)
            if endpoint is Unknown:
                return
            endpoints = [e.strip() for e in endpoint.split(",") if e.strip()]
        token = _setting(config, "token", "STRATUM_TOKEN", "")
        ca_path = _setting(config, "ca_cert", "STRATUM_CA_CERT")
        if Unknown in (token, ca_path):
            # Terraform plans with an unknown provider configuration; operations that need
            # the control plane report it, plan-time checks are skipped.
            return

        for i, endpoint in enumerate(endpoints):
            try:
                split_endpoint(endpoint)
            except ValueError as e:
                diags.add_error("Invalid endpoint", str(e), path=["endpoints", i] if listed else ["endpoint"])
                return
        if not endpoints:
            diags.add_error("No endpoint", "endpoints is empty: give the control planes' host:port", path=["endpoints"])
            return

        if not ca_path:
            diags.add_error(
                "No CA certificate for the Stratum control plane",
                "Set ca_cert in the provider block, or STRATUM_CA_CERT, to the path of the control plane's ca.pem "
                "(written to its data dir on first start). The provider only talks TLS to a control plane it can verify.",
                path=["ca_cert"],
            )
            return
        ca_file = os.path.expanduser(ca_path)
        try:
            with open(ca_file, "rb") as f:
                ca_pem = f.read()
        except OSError as e:
            diags.add_error(
                "Cannot read the CA certificate",
                f"cannot read ca_cert {ca_file!r}: {e.strerror or e}. Set ca_cert or STRATUM_CA_CERT to the control plane's ca.pem.",
                path=["ca_cert"],
            )
            return
        if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
            diags.add_error("Invalid CA certificate", f"ca_cert {ca_file!r} holds no PEM certificate.", path=["ca_cert"])
            return

        self.client = Client(endpoints, token, ca_pem)

    def get_data_sources(self) -> list[Type[DataSource]]:
        from provider.data_source_node import NodeDataSource
        from provider.data_source_nodes import NodesDataSource
        from provider.data_source_placement import PlacementDataSource

        return [NodesDataSource, NodeDataSource, PlacementDataSource]

    def get_resources(self) -> list[Type[Resource]]:
        from provider.resource_app import AppResource
        from provider.resource_dataset import DatasetResource
        from provider.resource_join_token import JoinTokenResource
        from provider.resource_model import ModelResource
        from provider.resource_cloud_pool import CloudPoolResource
        from provider.resource_service import ServiceResource

        return [JoinTokenResource, DatasetResource, ModelResource, ServiceResource, CloudPoolResource, AppResource]
