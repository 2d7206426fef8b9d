"""Entry point of terraform-provider-stratum (Terraform starts it as a plugin)."""

from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = argv or sys.argv
    # Like every go-plugin binary: Terraform sets this variable; a person running us directly gets a hint, not a hang.
    if "--dev" not in argv and not os.environ.get("TF_PLUGIN_MAGIC_COOKIE"):
        print(
            "terraform-provider-stratum is a Terraform plugin: Terraform starts it. Run `stratum provider install`, then "
            'use source = "stratum/stratum" and terraform init. (--dev runs it standalone for debugging.)',
            file=sys.stderr,
        )
        return 1

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
    run_provider(StratumProvider(), argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
