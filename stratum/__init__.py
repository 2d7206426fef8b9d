"""Stratum: ML services across cloud, fog and edge, described in HCL.

This package holds what the control plane, the node daemon and the provider
share: the generated gRPC stubs (`stratum.v1`), PKI helpers, join-token
format, durations and input validation, and the `stratum` CLI.
"""

__version__ = "0.1.0"
