"""The `stratum` command line (console script `stratum`, or `python -m cli`)."""
