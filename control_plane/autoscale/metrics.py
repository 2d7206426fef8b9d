"""Per-minute series of every service, added up over the nodes that run it, with retention; and
their Prometheus export.

    series = ServiceSeries(retention_min=7 * 1440)
    series.add("congestion", samples)        # MinuteSample messages of one node's report
    series.points("congestion", 60)          # the last 60 minutes with requests, oldest first
    series.arrivals("congestion")            # (minute, requests) for the forecaster

Held in memory: a restarted control plane starts new series (nodes send each minute once).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from stratum.runtime.latency import BUCKETS_MS, percentile_ms
from stratum.clock import minute_of


class ServiceSeries:
    def __init__(self, retention_min: int = 7 * 1440):
        self.retention = retention_min
        self._s: dict[str, OrderedDict] = {}  # service -> minute -> [requests, failures, in_flight, buckets]
        self.totals: dict[str, list] = {}  # service -> [requests, failures, buckets, latency sum s]: only grow
        self._reported: dict[str, dict[str, float]] = {}  # service -> node id -> unix time of its last report
        self._lock = threading.Lock()

    def reported(self, service: str, node_id: str, at: float) -> None:
        """A node reported on the service at `at`: every minute that had ended by then is in."""
        with self._lock:
            self._reported.setdefault(service, {})[node_id] = at

    def complete_to(self, service: str, node_ids) -> int | None:
        """The last minute every one of these nodes (those that have reported) has sent: a minute
        missing from the series up to it had no requests; later ones may still be on their way."""
        with self._lock:
            times = [t for n, t in self._reported.get(service, {}).items() if n in node_ids]
        return minute_of(min(times)) - 1 if times else None

    def add(self, service: str, samples) -> None:
        with self._lock:
            series = self._s.setdefault(service, OrderedDict())
            tot = self.totals.setdefault(service, [0, 0, [0] * (len(BUCKETS_MS) + 1), 0.0])
            out_of_order = False
            for s in samples:
                buckets = list(s.latency_buckets)
                if len(buckets) != len(BUCKETS_MS) + 1:
                    continue  # another build's buckets: cannot be added up
                row = series.get(s.minute)
                if row is None:
                    out_of_order |= bool(series) and s.minute < next(reversed(series))
                    row = series[s.minute] = [0, 0, 0, [0] * len(buckets)]
                row[0] += s.requests
                row[1] += s.failures
                row[2] += s.max_in_flight
                row[3] = [a + b for a, b in zip(row[3], buckets)]
                tot[0] += s.requests
                tot[1] += s.failures
                tot[2] = [a + b for a, b in zip(tot[2], buckets)]
                tot[3] += s.latency_sum_ms / 1000
            if out_of_order:  # a late node's minute: keep the series sorted (rare, so sort only then)
                series = self._s[service] = OrderedDict(sorted(series.items()))
            if series:  # sorted: the expired minutes are at the front
                oldest_kept = next(reversed(series)) - self.retention
                while next(iter(series)) <= oldest_kept:
                    series.popitem(last=False)

    def forget(self, service: str) -> None:
        with self._lock:
            self._s.pop(service, None)
            self.totals.pop(service, None)
            self._reported.pop(service, None)

    def points(self, service: str, minutes: int = 60) -> list[dict]:
        with self._lock:
            series = list(self._s.get(service, {}).items())[-minutes:]
        return [{"minute": m, "requests": r, "failures": f, "max_in_flight": q, "p50_ms": percentile_ms(b, 0.5),
                 "p95_ms": percentile_ms(b, 0.95), "p99_ms": percentile_ms(b, 0.99)} for m, (r, f, q, b) in series]

    def arrivals(self, service: str) -> list[tuple[int, int]]:
        with self._lock:
            return [(m, row[0]) for m, row in self._s.get(service, {}).items()]

    def services(self) -> list[str]:
        with self._lock:
            return sorted(self.totals)


class PrometheusCollector:
    """prometheus_client collector over a ServiceSeries (registered by the control plane)."""

    def __init__(self, series: ServiceSeries):
        self.series = series

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        req = CounterMetricFamily("stratum_service_requests", "Requests answered by a service's endpoints",
                                  labels=["service"])
        fail = CounterMetricFamily("stratum_service_failures", "Requests answered with a 5xx", labels=["service"])
        hist = HistogramMetricFamily("stratum_service_request_duration_seconds",
                                     "Latency of a service's requests at its endpoints", labels=["service"])
        with self.series._lock:
            totals = {k: (v[0], v[1], list(v[2]), v[3]) for k, v in self.series.totals.items()}
        for service, (n, f, buckets, total_s) in sorted(totals.items()):
            req.add_metric([service], n)
            fail.add_metric([service], f)
            cum, acc = [], 0
            for bound, count in zip([*(b / 1000 for b in BUCKETS_MS), float("inf")], buckets):
                acc += count
                cum.append((str(bound) if bound != float("inf") else "+Inf", acc))
            hist.add_metric([service], cum, sum_value=total_s)
        yield req
        yield fail
        yield hist
