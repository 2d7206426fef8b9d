"""Durations as the house writes them: "500ms", "30s", "5m", "24h", "7d", or "1h30m"."""

import re

# The longest duration anything accepts (ttl, max_age, grace periods, timeouts): 10 years. Longer
# ones are typos, and one of 99999999999h overflows a protobuf Timestamp when added to now.
MAX_SECONDS = 3650 * 86400.0
MAX_LENGTH = 64  # characters; "3649d23h59m59s999ms" is 19

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with the expected form when it is not a duration or is longer
    than MAX_SECONDS (10 years)."""
    s = text.strip()
    pos, total = 0, 0.0
    # Anchored matches, each at the end of the last, on a bounded text: scanning 16 KB of digits
    # for a unit anywhere (finditer) took seconds.
    while len(s) <= MAX_LENGTH and (m := _PART.match(s, pos)):
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"invalid duration {_shown(text)}: expected a number and unit such as \"30s\", \"5m\", \"24h\" or \"1h30m\"")
    if not total <= MAX_SECONDS:  # also catches inf: float("9" * 400) is inf
        raise ValueError(f"duration {_shown(text)} is longer than {format_duration(MAX_SECONDS)} (10 years)")
    return total


def _shown(text: str) -> str:
    from stratum.validation import shown  # here, not at the top: validation imports this module

    return shown(text)


def format_duration(seconds: float) -> str:
    """The shortest exact form, to the millisecond: 90 -> "1m30s", 0.5 -> "500ms", 1.5 -> "1s500ms"."""
    total_ms = int(round(seconds * 1000))
    rest, ms = divmod(total_ms, 1000)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    if ms or not out:
        out += f"{ms}ms"
    return out if total_ms else "0s"
