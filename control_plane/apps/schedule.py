"""When periodic apps run: cron expressions in a time zone (croniter), and what to record for the
scheduled times that came. Pure; the clock is passed in.

Every scheduled time gets exactly one run record (the store's unique key is app + time), so a
control plane that restarts, or a leader that changes, neither doubles nor silently skips one:

    due("*/15 * * * *", "UTC", after=t0, now=t1)   -> the scheduled times in (t0, t1]
    decide(times, running=..., prohibit_overlap=...) -> [(time, "pending" | "skipped" | "missed", why)]
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from stratum.validation import shown

MAX_DUE = 1000  # scheduled times looked at in one step (a year of a 15-minute cron is 35,000)


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def zone_problem(name: str) -> str | None:
    if not name:
        return None
    if len(name) > 64 or name.startswith("/") or ".." in name:
        return f"unknown time zone {shown(name)}: give an IANA name such as \"Europe/Berlin\" or \"UTC\""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {shown(name)}: give an IANA name such as \"Europe/Berlin\" or \"UTC\""
    return None


def cron_problem(cron: str) -> str | None:
    fields = cron.split()
    if len(cron) > 256 or len(fields) != 5:
        return (f"{shown(cron)} is not a cron expression: give five fields, minute hour day-of-month month "
                "day-of-week, e.g. \"*/15 * * * *\"")
    # croniter takes numbers beyond a field's range in steps ("*/61" is minute 0): refuse them too
    beyond = any(int(n) > top for f, top in zip(fields, (59, 23, 31, 12, 7)) for n in re.findall(r"\d+", f))
    if beyond or not croniter.is_valid(cron):
        return f"{shown(cron)} is not a valid cron expression (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6)"
    try:  # valid syntax that never fires (30 February) is an error too
        next_after(cron, "", 0.0)
    except (ValueError, KeyError, OverflowError):
        return f"{shown(cron)} never fires"
    return None


def next_after(cron: str, tz: str, t: float) -> float:
    """The first scheduled time strictly after unix time t."""
    start = datetime.fromtimestamp(t, timezone.utc).astimezone(zone(tz))
    return croniter(cron, start).get_next(datetime).timestamp()


def due(cron: str, tz: str, after: float, now: float) -> list[float]:
    """Scheduled times in (after, now], oldest first, at most MAX_DUE (the most recent ones)."""
    out: list[float] = []
    it = croniter(cron, datetime.fromtimestamp(after, timezone.utc).astimezone(zone(tz)))
    while True:
        t = it.get_next(datetime).timestamp()
        if t > now:
            return out
        out.append(t)
        if len(out) > MAX_DUE:
            del out[0]


def decide(times: list[float], *, running: bool, prohibit_overlap: bool) -> list[tuple[float, str, str]]:
    """What each scheduled time that came becomes. The latest runs ("pending"), unless a run is still
    going and overlap is prohibited ("skipped"); earlier ones came while nothing was ticking (the
    control plane was down): they are recorded as "missed" rather than all run at once late."""
    out = []
    for i, t in enumerate(times):
        if i < len(times) - 1:
            out.append((t, "missed", "the control plane was not running at its scheduled time; a later run went instead"))
        elif running and prohibit_overlap:
            out.append((t, "skipped", "the previous run was still running (prohibit_overlap)"))
        else:
            out.append((t, "pending", ""))
    return out
