"""A throwaway PostgreSQL 15 cluster for tests: initdb + pg_ctl in a temp dir, 127.0.0.1 only.

PostgreSQL refuses to run as root, so as root the cluster runs as the
`postgres` system user (runuser); otherwise as the current user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import psycopg

from tests.harness import free_port


class PostgresCluster:
    def __init__(self):
        for tool in ("initdb", "pg_ctl"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is not on PATH: PostgreSQL 15 server binaries are required for these tests")
        self.dir = tempfile.mkdtemp(prefix="stratum-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *argv: str) -> None:
        res = subprocess.run([*self.as_user, *argv], capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed:\n{res.stdout}\n{res.stderr}")

    def start(self) -> "PostgresCluster":
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "stratum", "--no-sync")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://stratum@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server (fast: sessions are cut, as in a crash of the clients' view), stay down
        `down_s`, start it again on the same port."""
        import time

        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        time.sleep(down_s)
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
