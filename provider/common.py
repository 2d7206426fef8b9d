"""Small helpers shared by the resources and data sources."""

from __future__ import annotations

from typing import Any, Optional

from google.protobuf.timestamp_pb2 import Timestamp
from tf.types import Unknown
from tf.utils import Diagnostics

from provider.client import Client


def client_of(provider, diags: Diagnostics) -> Optional[Client]:
    """The configured client, or None with an error saying why there is none."""
    client = getattr(provider, "client", None)
    if client is None:
        diags.add_error(
            "The Stratum provider is not configured",
            "Its endpoint, token or ca_cert is not known yet (it depends on values known only after apply) "
            "or was invalid. Give the provider values known at plan time.",
        )
    return client


def wholly_known(value: Any) -> bool:
    """False when an Unknown hides anywhere in value (e.g. a label from another resource)."""
    if value is Unknown:
        return False
    if isinstance(value, dict):
        return all(wholly_known(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(wholly_known(v) for v in value)
    return True


def rfc3339(ts: Timestamp) -> str:
    return ts.ToJsonString()


def as_configured(server_value: Any, prior: Any, zero: Any) -> Any:
    """The server's value in the form the configuration wrote it.

    The API has no null: an unset ttl is "", no labels is {}, unlimited uses is 0.
    Terraform compares state with configuration, so report the zero value as
    null unless the configuration (the prior state) spelled it out.
    """
    if server_value == zero:
        return zero if prior == zero else None
    return server_value


def node_summary(node) -> dict[str, Any]:
    """The fields of a stratum.v1.Node both node data sources export."""
    caps = node.capabilities
    return {
        "id": node.id,
        "name": node.name,
        "tier": node.tier,
        "labels": dict(node.labels),
        "state": node.state,
        "cpu_cores": caps.cpu_cores,
        "memory_mb": caps.memory_mb,
        "arch": caps.arch,
        "gpus": len(caps.gpus),
        "addresses": list(node.addresses),
    }
