"""The node daemon's Prometheus metrics: one registry, served on `stratum node --metrics-listen HOST:PORT`.

Most values are read from the live agent and service manager when scraped (see watch), so the
session and replica code pays nothing for them; only events are recorded as they happen:

    metrics.heartbeat_acked(rtt_s)    the agent, on each heartbeat ack
    metrics.app_restarted(app)        the app runner, each time it restarts an app's process
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, PlatformCollector, ProcessCollector
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from stratum.grpc_util import split_endpoint

REGISTRY = CollectorRegistry()
for _collector in (ProcessCollector, PlatformCollector, GCCollector):
    _collector(registry=REGISTRY)

# A LAN round trip is ~1 ms; a loaded control plane or a cellular edge link, up to seconds.
HEARTBEAT_RTT = Histogram("stratum_node_heartbeat_rtt_seconds", "Heartbeat round trip, from send to its ack",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                          registry=REGISTRY)
APP_RESTARTS = Counter("stratum_node_app_restarts", "Restarts of an app's process by the node", ["app"],
                       registry=REGISTRY)


def heartbeat_acked(rtt_s: float) -> None:
    HEARTBEAT_RTT.observe(rtt_s)


def app_restarted(app: str) -> None:
    APP_RESTARTS.labels(app).inc()


def serve(listen: str) -> None:
    """Serve /metrics on HOST:PORT from a thread of its own; OSError when the address cannot be bound."""
    host, port = split_endpoint(listen, listen=True)
    start_http_server(port, addr=host, registry=REGISTRY)


def watch(agent, services=None) -> None:
    """Export the agent's session state and the service manager's replicas and cache at scrape time."""
    REGISTRY.register(_Live(agent, services))


class _Live:
    """Runs in the HTTP server's thread while the event loop changes what it reads: it takes snapshots
    of dicts and lists (one C-level copy each, atomic under the GIL), plain attributes, and the cache's
    total under the cache's own (briefly held) lock."""

    def __init__(self, agent, services):
        self.agent, self.services = agent, services

    def collect(self):
        a = self.agent
        yield GaugeMetricFamily("stratum_node_session_connected", "1 while a session with the control plane is up",
                                value=1 if a.connected else 0)
        yield CounterMetricFamily("stratum_node_sessions_started", "Sessions with the control plane that got a Welcome",
                                  value=a.sessions)
        yield CounterMetricFamily("stratum_node_reconnect_attempts", "Reconnects to the control plane after a session "
                                  "ended or failed to start", value=a.reconnects)
        if self.services is None:
            return
        running = GaugeMetricFamily("stratum_node_replicas_running", "Replicas of a service that run and answer their "
                                    "health check", labels=["service"])
        for name, st in sorted(list(self.services.services.items())):
            backends = dict(st.service.router.backends)
            running.add_metric([name], sum(1 for r in list(st.service.replicas)
                                           if r.id in backends and backends[r.id].state == "ready"))
        yield running
        yield GaugeMetricFamily("stratum_node_bento_cache_bytes", "Bytes of bentos in the node's cache",
                                value=self.services.cache.total_bytes())
