"""Per-minute request metrics of one service endpoint, for autoscaling (control_plane/autoscale).

    m = MinuteMetrics()
    m.record(now, latency_s, failed=False, in_flight=3)    # O(1) per answered request
    m.take(now)          # the minutes that ended, oldest first; each is handed out once

A minute is the wall-clock minute (unix time // 60; stratum/clock.py), so the control plane can add up the minutes of
every node running the service. Latencies go into fixed buckets (upper bounds in ms, BUCKETS_MS),
from which the control plane reads percentiles; queue depth is the most requests in flight seen.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from stratum.clock import minute_of

# The state of a node's status for a service it no longer runs: it carries only the minutes the
# service's endpoint counted before it left (MinuteMetrics.drain), for the control plane to add up.
REMOVED = "removed"

BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)  # and one for slower


@dataclass
class Minute:
    minute: int
    requests: int = 0
    failures: int = 0
    max_in_flight: int = 0
    latency_sum_ms: float = 0.0
    buckets: list = field(default_factory=lambda: [0] * (len(BUCKETS_MS) + 1))

    def as_dict(self) -> dict:
        return {"minute": self.minute, "requests": self.requests, "failures": self.failures,
                "max_in_flight": self.max_in_flight, "buckets": list(self.buckets), "latency_sum_ms": self.latency_sum_ms}


class MinuteMetrics:
    def __init__(self, keep: int = 60):
        self.keep = keep  # minutes held when nobody takes them (the control plane away)
        self._cur: Minute | None = None
        self._done: list[Minute] = []

    def _minute(self, now: float) -> Minute:
        m = minute_of(now)
        cur = self._cur
        if cur is None or cur.minute != m:
            if cur is not None and m > cur.minute:
                self._done.append(cur)
                del self._done[:-self.keep]
            if cur is None or m > cur.minute:
                cur = self._cur = Minute(m)
        return cur

    def record(self, now: float, latency_s: float, *, failed: bool = False, in_flight: int = 0) -> None:
        cur = self._minute(now)
        cur.requests += 1
        cur.failures += failed
        if in_flight > cur.max_in_flight:
            cur.max_in_flight = in_flight
        cur.buckets[bisect_left(BUCKETS_MS, latency_s * 1000)] += 1
        cur.latency_sum_ms += latency_s * 1000

    def take(self, now: float) -> list[dict]:
        """Minutes that have ended by `now`."""
        if self._cur is not None and minute_of(now) > self._cur.minute:
            self._done.append(self._cur)
            self._cur = None
            del self._done[:-self.keep]
        out, self._done = [m.as_dict() for m in self._done], []
        return out

    def drain(self) -> list[dict]:
        """Every minute held, the current one too: for an endpoint that counts no more (its service
        left the node), whose minutes would otherwise be lost with it."""
        if self._cur is not None:
            self._done.append(self._cur)
            self._cur = None
        out, self._done = [m.as_dict() for m in self._done[-self.keep:]], []
        return out


def percentile_ms(buckets: list[int], q: float) -> float:
    """The upper bound of the bucket holding the q-th share of requests (0 when there are none);
    the slowest bucket reports twice the last bound."""
    total = sum(buckets)
    if not total:
        return 0.0
    need, seen = q * total, 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= need:
            return float(BUCKETS_MS[i]) if i < len(BUCKETS_MS) else 2.0 * BUCKETS_MS[-1]
    return 2.0 * BUCKETS_MS[-1]
