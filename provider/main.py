"""Entry point of terraform-provider-stratum (Terraform starts it as a plugin)."""

from __future__ import annotations

import logging
import os
import sys
import threading


def _quiet_late_calls(args: threading.ExceptHookArgs) -> None:
    """tf's runner stops its gRPC server from inside the Shutdown call; a call Terraform sends at that
    moment finds the server's thread pool shut and grpc's serving thread dies with a traceback in
    Terraform's logs. The same once Python itself is exiting (concurrent.futures then says "after
    interpreter shutdown"). It is the end of the plugin either way: one line, not a traceback."""
    message = str(args.exc_value)
    if isinstance(args.exc_value, RuntimeError) and ("after shutdown" in message
                                                     or "after interpreter shutdown" in message):
        logging.getLogger("stratum.provider").debug("a call arrived while the plugin was shutting down")
        return
    threading.__excepthook__(args)


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
    import tf.runner
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
    # Nor for its certificate: ours reads the cached one without parsing it (provider/plugin_cert.py).
    if hasattr(tf.runner, "_self_signed_cert") and hasattr(tf.runner, "_get_cert_cache_path"):
        from provider import plugin_cert

        tf.runner._self_signed_cert = plugin_cert.cached(tf.runner._self_signed_cert, tf.runner._get_cert_cache_path())
    threading.excepthook = _quiet_late_calls
    run_provider(StratumProvider(), argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
