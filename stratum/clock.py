"""The metrics minute: the unit of the per-minute series, the forecaster and the autoscaler's holds.

60 seconds. `STRATUM_MINUTE_S` shortens it, for tests only: a live autoscaling test then runs its
minutes in seconds instead of waiting out wall-clock minutes. Node daemons and the control plane
must agree on it (they number minutes as unix time // MINUTE_S).
"""

from __future__ import annotations

import os


def _minute_s() -> float:
    raw = os.environ.get("STRATUM_MINUTE_S", "60")
    try:
        v = float(raw)
    except ValueError:
        raise SystemExit(f"STRATUM_MINUTE_S={raw!r}: give seconds, e.g. 60") from None
    if not 1 <= v <= 3600:
        raise SystemExit(f"STRATUM_MINUTE_S={raw!r}: give 1 to 3600 seconds")
    return v


MINUTE_S = _minute_s()


def minute_of(unix_s: float) -> int:
    return int(unix_s // MINUTE_S)
