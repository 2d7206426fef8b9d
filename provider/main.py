"""Entry point of terraform-provider-stratum (Terraform starts it as a plugin)."""

from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str] | None = None) -> None:
    import tf.provider
    from tf.runner import run_provider

    from provider.provider import StratumProvider
    from provider.servicer import StratumServicer
    from stratum import logs

    # Terraform shows plugin stderr only in its own logs (TF_LOG / TF_LOG_PROVIDER).
    logs.setup("provider", os.environ.get("STRATUM_PROVIDER_LOG_LEVEL", "WARNING"))
    logging.getLogger("grpc").setLevel(logging.ERROR)

    # run_provider instantiates tf.provider.ProviderServicer; point it at our subclass
    # (tf has no other hook for it).
    tf.provider.ProviderServicer = StratumServicer
    run_provider(StratumProvider(), argv or sys.argv)


if __name__ == "__main__":
    main()
