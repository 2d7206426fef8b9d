"""The dask.distributed side of `training.engine = "dask"`: mutual TLS, the training's scheduler,
and the worker program nodes run.

    with JobScheduler(host, ca_pem, cert, key) as s:          # in the training job
        s.port; train(df, spec, client=s.client)
    python -m control_plane.ml.dask_cluster worker --scheduler tls://H:P --name N --tls-dir D …   # on a node

Every connection is mutual TLS with certificates from the control plane's CA (dask_nodes.issue_cert,
where the CA's key is; nodes get theirs in their assignments). That CA also signs the nodes' own
certificates (client only) and the control plane's (server only), and dask needs both purposes on
every certificate (each party listens and dials), so dask gets certificates of its own, common
name "dask-…". The scheduler, nannies and workers refuse any peer whose certificate is not one of
those: a node's certificate must not let it submit code to other nodes' workers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
import threading

import dask
from distributed import Client, Nanny, Scheduler, Worker
from distributed.security import Security
from distributed.utils import NoOpAwaitable

from control_plane.ml.dask_nodes import CN_PREFIX

log = logging.getLogger("stratum.dask")

# Dask's settings for every party: no dashboards (no bokeh, no extra ports); a worker silent for a
# minute is gone and its tasks run elsewhere (a cut link never closes the connection by itself).
CONFIG = {
    "distributed.scheduler.worker-ttl": "60s",
    "distributed.comm.timeouts.connect": "30s",
    "distributed.admin.system-monitor.gil.enabled": False,
}


def _configure(level: int) -> None:
    import dask

    dask.config.set(CONFIG)
    logging.getLogger("distributed").setLevel(level)


def security(ca_pem: str, cert_pem: str, key_pem: str) -> Security:
    """Mutual TLS for any role, from PEM text (dask writes in-memory keys to a private temp dir)."""
    kw = {f"tls_{role}_{part}": value for role in ("scheduler", "worker", "client")
          for part, value in (("cert", cert_pem), ("key", key_pem))}
    return Security(tls_ca_file=ca_pem, require_encryption=True, tls_min_version=ssl.TLSVersion.TLSv1_2, **kw)


def peer_name(comm) -> str:
    """The common name of a connection's verified peer certificate ("" for none)."""
    cert = (getattr(comm, "extra_info", None) or {}).get("peercert") or {}
    return next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), "")


def _admit(comm) -> bool:
    name = peer_name(comm)
    if name.startswith(CN_PREFIX):
        return True
    log.warning("refused a dask connection from %s: certificate %r is not a dask one", comm.peer_address, name)
    comm.abort()
    return False


class StratumScheduler(Scheduler):
    def handle_comm(self, comm):
        return super().handle_comm(comm) if _admit(comm) else NoOpAwaitable()


class StratumNanny(Nanny):
    def handle_comm(self, comm):
        return super().handle_comm(comm) if _admit(comm) else NoOpAwaitable()


class StratumWorker(Worker):
    def handle_comm(self, comm):
        return super().handle_comm(comm) if _admit(comm) else NoOpAwaitable()


# ---------------------------------------------------------------- the training job's scheduler


class JobScheduler:
    """A scheduler in a thread of the training job (it lives and dies with the training), and a
    Client of it for the job's own thread. `port` is where nodes' workers connect."""

    def __init__(self, host: str, ca_pem: str, cert_pem: str, key_pem: str):
        _configure(logging.WARNING)  # dask logs every connection at INFO; the job's stderr is read only at its end
        self.host = host or "0.0.0.0"
        self.security = security(ca_pem, cert_pem, key_pem)
        self.port = 0
        self.client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dask-scheduler", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - raised by __enter__
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with StratumScheduler(host=self.host, port=0, protocol="tls", security=self.security, dashboard=False,
                                    dashboard_address=None) as s:
            self.port = int(s.address.rpartition(":")[2])
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> "JobScheduler":
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None or not self.port:
            raise RuntimeError(f"the dask scheduler did not start on {self.host}: {self._error!r}")
        dial = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        dial = f"[{dial}]" if ":" in dial else dial
        self.client = Client(f"tls://{dial}:{self.port}", security=self.security, timeout=30,
                             set_as_default=False)
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close(timeout=10)
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


# ---------------------------------------------------------------- the workers a node runs


def worker_files(tls_dir: str) -> tuple[str, str, str]:
    """The CA, certificate and key a node writes for its workers (node_daemon/dask_workers.py)."""
    return os.path.join(tls_dir, "ca.pem"), os.path.join(tls_dir, "worker.pem"), os.path.join(tls_dir, "worker.key")


async def _run_workers(args) -> int:
    _configure(logging.INFO)  # to the node's log file of the worker: connections, registrations, losses
    ca, cert, key = (open(p).read() for p in worker_files(args.tls_dir))
    sec = security(ca, cert, key)
    share = max(1, args.memory_mb // args.nworkers)  # MiB per worker process, the resource the scheduler sees
    # Worker processes forked from a forkserver that has imported dask and the training module once,
    # rather than spawned, each importing scikit-learn and dask on its own (seconds of CPU each).
    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    from distributed.utils import get_mp_context

    get_mp_context().set_forkserver_preload(["distributed", "control_plane.ml.train"])
    # The nanny's limit is the node's memory, not the share: dask pauses a worker at 80 % of its limit,
    # and a share on a small node (1 GiB, 4 cores) is less than a worker needs to hold the table at all.
    nannies = [StratumNanny(args.scheduler, nthreads=1, name=f"{args.name}-{i}", resources={"cpu": 1, "memory": share},
                            memory_limit=args.memory_mb * 2**20, security=sec, worker_class=StratumWorker, dashboard=False,
                            local_directory=args.local_directory, host=args.host or None, silence_logs=False)
               for i in range(args.nworkers)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*nannies)
    finished = asyncio.ensure_future(asyncio.gather(*(n.finished() for n in nannies)))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([finished, stopping], return_when=asyncio.FIRST_COMPLETED)
    if stopping.done():
        await asyncio.gather(*(n.close(timeout=10, reason="stopped by the node") for n in nannies),
                             return_exceptions=True)
        return 0
    return 1  # the nannies ended by themselves (the scheduler went away): the node starts them again


def worker_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m control_plane.ml.dask_cluster worker")
    ap.add_argument("--scheduler", required=True, help="tls://HOST:PORT")
    ap.add_argument("--name", required=True, help="worker names are NAME-0, NAME-1, …")
    ap.add_argument("--nworkers", type=int, default=1, help="worker processes, one thread each")
    ap.add_argument("--memory-mb", type=int, required=True, help="memory of all of them together, MiB")
    ap.add_argument("--tls-dir", required=True, help="holds ca.pem, worker.pem, worker.key")
    ap.add_argument("--local-directory", required=True)
    ap.add_argument("--host", default="", help="address to listen on; default: the one that reaches the scheduler")
    args = ap.parse_args(argv)
    from stratum.runtime.process import die_with_parent

    die_with_parent(signal.SIGTERM)  # the node daemon gone (killed): its workers go too
    return asyncio.run(_run_workers(args))


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"]:
        sys.exit("usage: python -m control_plane.ml.dask_cluster worker --scheduler tls://HOST:PORT …")
    sys.exit(worker_main(sys.argv[2:]))
