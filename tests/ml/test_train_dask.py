"""Folds on dask workers (training.engine = "dask"): the same result as the local pool, bit for bit,
and only dask certificates from the CA get into the cluster. A real scheduler (as the training job
runs it) and a real worker program (as a node runs it), over mutual TLS on 127.0.0.1."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from distributed import Client
from distributed.comm import connect
from distributed.comm.core import CommClosedError

from control_plane.ml import dask_cluster
from control_plane.ml.dask_nodes import issue_cert
from control_plane.ml.train import train
from stratum import pki
from tests.harness import REPO, wait_for
from tests.ml import data

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def ca():
    key, cert = pki.make_ca()
    return key, cert


@pytest.fixture(scope="module")
def cluster(ca, tmp_path_factory):
    """A scheduler in this process and a worker program of two worker processes beside it."""
    ca_key, ca_cert = ca
    home = tmp_path_factory.mktemp("dask-node")
    (home / "tls").mkdir()
    worker_key, worker_cert = issue_cert(ca_key, ca_cert, "dask-worker-test")
    for name, pem in (("ca.pem", ca_cert), ("worker.pem", worker_cert), ("worker.key", worker_key)):
        pki.write_private(str(home / "tls" / name), pem)
    key, cert = issue_cert(ca_key, ca_cert, "dask-scheduler")
    with dask_cluster.JobScheduler("127.0.0.1", ca_cert.decode(), cert.decode(), key.decode()) as scheduler:
        with open(home / "worker.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "control_plane.ml.dask_cluster", "worker", "--scheduler",
                 f"tls://127.0.0.1:{scheduler.port}", "--name", "test", "--nworkers", "2", "--memory-mb", "2048",
                 "--tls-dir", str(home / "tls"), "--local-directory", str(home / "scratch")],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(scheduler.client.nthreads()) == 2, 60, what="two dask workers connected")
            yield scheduler, home
        finally:
            proc.terminate()
            proc.wait(30)


def spec(base: dict, **changes) -> dict:
    s = copy.deepcopy(base)
    s.update(changes)
    return s


CASES = {
    "classification": (data.classification, spec(data.CLASSIFICATION_SPEC, candidates=[
        "logistic_regression", {"algorithm": "decision_tree", "grid": {"max_depth": [2, 4]}},
        # fails on every fold (more neighbours than rows): a failed candidate is a result too
        {"algorithm": "knn", "grid": {"n_neighbors": 500}}])),
    "regression": (data.regression, {"task": "regression", "target": "load", "candidates": ["ridge", "decision_tree"],
                                      "preprocessing": [{"one_hot": ["zone"]}], "selection": {"metric": "rmse", "cv_folds": 3}}),
    "clustering": (data.clustering, {"task": "clustering", "candidates": [{"algorithm": "kmeans", "grid": {"n_clusters": [2, 3]}}],
                                      "selection": {"metric": "silhouette", "cv_folds": 3}}),
}


@pytest.mark.parametrize("task", list(CASES))
def test_dask_folds_give_the_local_result(cluster, task):
    scheduler, _ = cluster
    make, s = CASES[task]
    df = make()
    local = train(df, s, workers=2, seed=5)
    steps = []
    remote = train(df, s, seed=5, client=scheduler.client, progress=lambda *a: steps.append(a))
    assert [e.as_dict() for e in remote.leaderboard] == [e.as_dict() for e in local.leaderboard]
    assert remote.artifact_digest == local.artifact_digest and remote.files == local.files
    if task == "classification":
        assert local.leaderboard[-1].algorithm == "knn" and local.leaderboard[-1].error.startswith("ValueError")
    # progress: every fold counted once, then the refit
    folds = [a for a in steps if " fold " in a[2]]
    assert [a[0] for a in folds] == list(range(1, len(folds) + 1)) and steps[-1][0] == steps[-1][1] == len(folds) + 1


def _admitted(address: str, security) -> bool:
    """Whether a dask server answers an identity request over a connection with these credentials."""
    import asyncio

    async def ask():
        comm = await connect(address, timeout=10, **security.get_connection_args("client"))
        try:
            await comm.write({"op": "identity"})
            return bool(await comm.read())
        finally:
            comm.abort()

    try:
        return asyncio.run(ask())
    except (CommClosedError, OSError):
        return False


def test_only_dask_certificates_from_the_ca_get_in(cluster, ca):
    scheduler, _ = cluster
    ca_key, ca_cert = ca
    address = f"tls://127.0.0.1:{scheduler.port}"
    workers = scheduler.client.scheduler_info(n_workers=-1)["workers"]
    nanny, worker = next((w["nanny"], a) for a, w in workers.items())

    def creds(cn: str, key_cert=None, ca_pem=ca_cert):
        key, cert = key_cert or issue_cert(ca_key, ca_cert, cn)
        return dask_cluster.security(ca_pem.decode(), cert.decode(), key.decode())

    # A node's own certificate (same CA, client purpose only, common name = node id).
    node_key = pki.key_pem(pki.new_key())
    node_cert = pki.sign_client_cert(ca_key, ca_cert, pki.load_csr(pki.make_csr(node_key, "node-1")), "node-1")
    node = dask_cluster.security(ca_cert.decode(), node_cert.decode(), node_key.decode())
    # A dask certificate from another CA.
    other_key, other_ca = pki.make_ca()
    stranger = creds("dask-client", issue_cert(other_key, other_ca, "dask-client"), other_ca)
    # A certificate of this CA for both purposes, but not named as a dask one.
    plain_key, plain_cert = _named(ca_key, ca_cert, "stratum-x")
    plain = dask_cluster.security(ca_cert.decode(), plain_cert.decode(), plain_key.decode())

    for where in (address, nanny, worker):
        assert _admitted(where, creds("dask-client")), where
        for name, sec in (("node", node), ("stranger", stranger), ("plain", plain)):
            assert not _admitted(where, sec), (where, name)
    with pytest.raises(Exception):
        Client(address, security=node, timeout=5, set_as_default=False)


def _named(ca_key: bytes, ca_cert: bytes, cn: str) -> tuple[bytes, bytes]:
    """issue_cert's certificate under a name that is not a dask one (issue_cert itself refuses it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key_pem, cert_pem = issue_cert(ca_key, ca_cert, "dask-tmp")
    cert = pki.load_cert(cert_pem)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(cert.issuer).public_key(pki.load_key(key_pem).public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_after_utc))
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return key_pem, pki.cert_pem(builder.sign(pki.load_key(ca_key), hashes.SHA256()))


def test_issue_cert_names_dask_parties_only_for_both_purposes(ca):
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    with pytest.raises(ValueError, match="dask-"):
        issue_cert(*ca, "node-1")
    _, cert = issue_cert(*ca, "dask-worker-node-1")
    c = pki.load_cert(cert)
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dask-worker-node-1"
    assert set(c.extensions.get_extension_for_class(__import__("cryptography").x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    c.verify_directly_issued_by(pki.load_cert(ca[1]))
