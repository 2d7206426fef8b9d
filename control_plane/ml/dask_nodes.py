"""Which nodes run dask workers for the trainings in progress (`training.engine = "dask"`).

    dask = DaskNodes(data_dir, nodes, push=reconciler.push, listen_host="10.0.0.1")
    build = dask.with_workers(build)        # a node's assignments get its DaskWorker entries
    dask.check(spec.training)               # plan time: [(field path, problem)] when no node matches
    req["dask"] = dask.job_config()         # the training job's scheduler: host and certificate
    dask.serving(op_id, workers, port)      # its scheduler listens: matching nodes start workers
    dask.serving(op_id, None, 0)            # it closed: they stop
    issue_cert(ca_key_pem, ca_cert_pem, "dask-…")   # a dask party's certificate (dask_cluster.py)

It lives in the process that runs the training (the job is its child): the scheduler's port and
the trainings in progress are in memory, like the job itself. A node that joins or comes back
while a training runs gets its worker with its next assignments; a node that goes down loses
its worker, whose folds the scheduler runs elsewhere.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stratum import pki
from stratum.v1 import control_plane_pb2 as cp, models_pb2 as m, node_agent_pb2 as na

Build = Callable[[list[str]], dict[str, na.Assignments]]

CN_PREFIX = "dask-"  # dask parties admit only certificates named so (dask_cluster.py)
CERT_DAYS = 30
REISSUE_S = 7 * 86400.0  # a node's worker certificate is renewed this long after it was issued
WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def issue_cert(ca_key_pem: bytes, ca_cert_pem: bytes, cn: str, days: int = CERT_DAYS) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for one dask party: server and client purposes, common name `cn`
    (which must start with "dask-" to be let in)."""
    if not cn.startswith(CN_PREFIX):
        raise ValueError(f"dask certificates are named {CN_PREFIX}…, not {cn!r}")
    key = pki.new_key()
    ca_key, ca_cert = pki.load_key(ca_key_pem), pki.load_cert(ca_cert_pem)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stratum"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return pki.key_pem(key), pki.cert_pem(cert)


def why_not(node, workers: m.TrainingWorkers) -> str:
    """Why a node may not run a training's workers ("" when it may)."""
    if node.state != "ready":
        return node.state or "not connected"
    if node.drain:
        return "drained"
    if workers.tiers and node.tier not in workers.tiers:
        return f"tier {node.tier}"
    for k, v in sorted(workers.labels.items()):
        if node.labels.get(k) != v:
            return f"label {k}={node.labels[k]}" if k in node.labels else f"no label {k}"
    return ""


def _selector(workers: m.TrainingWorkers) -> str:
    parts = []
    if workers.tiers:
        parts.append("tiers = [" + ", ".join(f'"{t}"' for t in workers.tiers) + "]")
    if workers.labels:
        parts.append("labels = { " + ", ".join(f'{k} = "{v}"' for k, v in sorted(workers.labels.items())) + " }")
    return " and ".join(parts) or "(any node)"


class DaskNodes:
    def __init__(self, data_dir, nodes, push: Callable[[], None], listen_host: str):
        self.data_dir, self.nodes, self.push = data_dir, nodes, push
        self.listen_host = listen_host.strip("[]")
        self._trainings: dict[str, tuple[m.TrainingWorkers, int]] = {}  # operation id -> (workers, port)
        self._certs: dict[str, tuple[float, str, str]] = {}  # node id -> (issued at, key PEM, cert PEM)
        self._lock = threading.Lock()

    # -- plan time ---------------------------------------------------------------------------------
    def check(self, training: m.Training) -> list[tuple[str, str]]:
        """A dask training needs a ready node to run its workers; name the closest ones if none."""
        if training.engine != "dask":
            return []
        nodes = self.nodes.list(cp.ListNodesRequest())
        reasons = [(n.name, why_not(n, training.workers)) for n in nodes]
        if any(not why for _, why in reasons):
            return []
        if not reasons:
            return [("training.workers", "no node is enrolled to run dask workers; join one first (stratum node)")]
        shown_nodes = "; ".join(f"{name}: {why}" for name, why in sorted(reasons)[:5])
        more = f"; and {len(reasons) - 5} more" if len(reasons) > 5 else ""
        return [("training.workers", f"no ready node matches {_selector(training.workers)} to run dask workers "
                                     f"({shown_nodes}{more})")]

    # -- the training job --------------------------------------------------------------------------
    def job_config(self) -> dict:
        """What the job needs for its scheduler: where to listen, the CA, a certificate of its own."""
        key, cert = issue_cert(self.data_dir.ca_key_pem, self.data_dir.ca_cert_pem, "dask-scheduler")
        return {"host": self.listen_host, "ca_pem": self.data_dir.ca_cert_pem.decode(), "cert_pem": cert.decode(),
                "key_pem": key.decode()}

    def serving(self, op_id: str, workers: m.TrainingWorkers | None, port: int) -> None:
        """The training's scheduler listens on `port` (0: it closed); tell the nodes."""
        with self._lock:
            if port:
                self._trainings[op_id] = (workers or m.TrainingWorkers(), port)
            elif self._trainings.pop(op_id, None) is None:
                return
        self.push()

    @property
    def trainings(self) -> list[str]:
        return sorted(self._trainings)

    # -- what nodes are told -----------------------------------------------------------------------
    def with_workers(self, build: Build) -> Build:
        def build_with_workers(node_ids: list[str]) -> dict[str, na.Assignments]:
            out = build(node_ids)
            with self._lock:
                trainings = sorted(self._trainings.items())
            if not trainings:
                return out
            by_id = {n.id: n for n in self.nodes.list(cp.ListNodesRequest())}
            host = "" if self.listen_host in WILDCARDS else self.listen_host
            for node_id in node_ids:
                node = by_id.get(node_id)
                if node is None:
                    continue
                for op_id, (workers, port) in trainings:
                    if not why_not(node, workers):
                        key, cert = self._cert(node_id)
                        out[node_id].dask_workers.append(na.DaskWorker(
                            training=op_id, scheduler_host=host, scheduler_port=port, tls_cert_pem=cert, tls_key_pem=key))
            return out

        return build_with_workers

    def _cert(self, node_id: str) -> tuple[str, str]:
        """(key PEM, certificate PEM) of the node's workers: the same while fresh (an unchanged
        assignment is not sent again, and a changed one would restart the node's workers)."""
        with self._lock:
            hit = self._certs.get(node_id)
            if hit is None or time.time() - hit[0] > REISSUE_S:
                key, cert = issue_cert(self.data_dir.ca_key_pem, self.data_dir.ca_cert_pem, f"dask-worker-{node_id}")
                hit = self._certs[node_id] = (time.time(), key.decode(), cert.decode())
            return hit[1], hit[2]
