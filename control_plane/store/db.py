"""The store: SQLite (embedded default, WAL) or PostgreSQL, one schema, one code path.

Only the connection and the parameter style differ by backend; every query is
written once with `?` placeholders. Methods are synchronous and thread-safe
(one connection behind a lock): the async API calls them in a worker thread.
State is written here before anything acts on it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from control_plane.store.schema import MIGRATIONS


class Conflict(Exception):
    """A unique key is taken (maps to ALREADY_EXISTS)."""


@dataclass
class JoinTokenRow:
    id: str
    name: str
    secret: str
    tier: str
    labels: dict[str, str]
    ttl: str
    max_uses: int
    uses: int
    description: str
    created_at: float
    expires_at: float | None


@dataclass
class NodeRow:
    id: str
    name: str
    tier: str
    labels: dict[str, str]
    state: str
    capabilities: str  # protobuf JSON of types_pb2.Capabilities
    utilisation: str  # protobuf JSON of types_pb2.Utilisation
    public_key_sha256: str
    join_token: str
    created_at: float
    last_heartbeat: float | None = None
    drain: bool = False  # DrainNode: nothing new is placed here
    extra: dict = field(default_factory=dict)


@dataclass
class DatasetRow:
    name: str
    spec: str  # protobuf JSON of datasets_pb2.DatasetSpec
    digest: str  # "sha256:<hex>" of the content (see control_plane/ml/datasets.py)
    data_sha256: str  # artifact-store blob holding exactly the rows described (file bytes or a snapshot)
    data_format: str  # format of that blob: csv, parquet or excel
    columns: list[list[str]]  # [name, type] pairs
    row_count: int
    version: int
    created_at: float
    updated_at: float


_TOKEN_COLS = "id, name, secret, tier, labels, ttl, max_uses, uses, description, created_at, expires_at"
_NODE_COLS = "id, name, tier, labels, state, capabilities, utilisation, public_key_sha256, join_token, created_at, last_heartbeat, drain"


_DATASET_COLS = "name, spec, digest, data_sha256, data_format, columns, row_count, version, created_at, updated_at"


def _dataset(row) -> DatasetRow:
    r = list(row)
    r[5] = json.loads(r[5])
    return DatasetRow(*r)


def _token(row) -> JoinTokenRow:
    r = list(row)
    r[4] = json.loads(r[4])
    return JoinTokenRow(*r)


def _node(row) -> NodeRow:
    r = list(row)
    r[3] = json.loads(r[3])
    r[11] = bool(r[11])
    return NodeRow(*r)


class Store:
    def __init__(self, url: str | None, data_dir: str):
        self._lock = threading.RLock()
        if url and url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgresql"
            self._conn = psycopg.connect(url, autocommit=False)
            self._unique_error = psycopg.errors.UniqueViolation
        elif url and not url.startswith("sqlite:"):
            raise ValueError(f"unsupported store {url!r}: use postgresql://... or leave it out for SQLite")
        else:
            self.kind = "sqlite"
            path = url[len("sqlite:///"):] if url else os.path.join(data_dir, "stratum.db")
            fresh = not os.path.exists(path)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if fresh:
                os.chmod(path, 0o600)  # it holds join-token secrets
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoint, safe on crash
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._unique_error = sqlite3.IntegrityError
        self.migrate()

    # -- plumbing -------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    @contextmanager
    def tx(self):
        """A transaction; yields `q(sql, *params) -> cursor`. Commits on success, rolls back on error."""
        with self._lock:
            cur = self._conn.cursor()
            if self.kind == "sqlite":
                cur.execute("BEGIN IMMEDIATE")

            def q(sql, *params):
                cur.execute(self._sql(sql), params)
                return cur

            try:
                yield q
            except self._unique_error as e:
                self._conn.rollback()
                raise Conflict(str(e)) from e
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._conn.commit()

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        with self._lock:
            cur = self._conn.cursor()
            if self.kind == "sqlite":
                cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(self._sql(sql), rows)
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()

    def migrate(self) -> list[int]:
        """Apply pending migrations in order, each in its own transaction; returns those applied."""
        with self.tx() as q:
            q("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        applied = []
        for version, name, statements in MIGRATIONS:
            with self.tx() as q:
                if q("SELECT 1 FROM schema_migrations WHERE version = ?", version).fetchone():
                    continue
                for stmt in statements:
                    q(stmt)
                q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", version, name, time.time())
                applied.append(version)
        return applied

    def schema_version(self) -> int:
        with self.tx() as q:
            return q("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- join tokens ----------------------------------------------------

    def insert_join_token(self, t: JoinTokenRow) -> None:
        with self.tx() as q:
            q(f"INSERT INTO join_tokens ({_TOKEN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
              t.id, t.name, t.secret, t.tier, json.dumps(t.labels, sort_keys=True), t.ttl, t.max_uses, t.uses,
              t.description, t.created_at, t.expires_at)

    def update_join_token(self, t: JoinTokenRow) -> None:
        with self.tx() as q:
            q("UPDATE join_tokens SET tier=?, labels=?, ttl=?, max_uses=?, description=?, expires_at=? WHERE id=?",
              t.tier, json.dumps(t.labels, sort_keys=True), t.ttl, t.max_uses, t.description, t.expires_at, t.id)

    def get_join_token(self, name: str | None = None, token_id: str | None = None) -> JoinTokenRow | None:
        with self.tx() as q:
            if token_id is not None:
                row = q(f"SELECT {_TOKEN_COLS} FROM join_tokens WHERE id = ?", token_id).fetchone()
            else:
                row = q(f"SELECT {_TOKEN_COLS} FROM join_tokens WHERE name = ?", name).fetchone()
        return _token(row) if row else None

    def list_join_tokens(self) -> list[JoinTokenRow]:
        with self.tx() as q:
            return [_token(r) for r in q(f"SELECT {_TOKEN_COLS} FROM join_tokens ORDER BY name").fetchall()]

    def delete_join_token(self, name: str) -> bool:
        with self.tx() as q:
            return q("DELETE FROM join_tokens WHERE name = ?", name).rowcount > 0

    # -- nodes ----------------------------------------------------------

    def enroll_node(self, node: NodeRow, token_id: str, max_uses: int) -> None:
        """Insert the node and count one use of its token, atomically.

        The use is counted with a guarded UPDATE so two concurrent enrollments
        can never both take a token's last use.
        """
        with self.tx() as q:
            cur = q("UPDATE join_tokens SET uses = uses + 1 WHERE id = ? AND (max_uses = 0 OR uses < ?)", token_id, max_uses)
            if cur.rowcount != 1:
                raise Conflict("join token used up")
            q(f"INSERT INTO nodes ({_NODE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
              node.id, node.name, node.tier, json.dumps(node.labels, sort_keys=True), node.state, node.capabilities,
              node.utilisation, node.public_key_sha256, node.join_token, node.created_at, node.last_heartbeat,
              int(node.drain))

    def get_node(self, node_id: str | None = None, name: str | None = None) -> NodeRow | None:
        with self.tx() as q:
            if node_id is not None:
                row = q(f"SELECT {_NODE_COLS} FROM nodes WHERE id = ?", node_id).fetchone()
            else:
                row = q(f"SELECT {_NODE_COLS} FROM nodes WHERE name = ?", name).fetchone()
        return _node(row) if row else None

    def list_nodes(self) -> list[NodeRow]:
        with self.tx() as q:
            return [_node(r) for r in q(f"SELECT {_NODE_COLS} FROM nodes ORDER BY name").fetchall()]

    def update_node_session(self, node_id: str, capabilities: str, labels: dict[str, str], state: str, now: float) -> None:
        with self.tx() as q:
            q("UPDATE nodes SET capabilities=?, labels=?, state=?, last_heartbeat=? WHERE id=?",
              capabilities, json.dumps(labels, sort_keys=True), state, now, node_id)

    def set_node_drain(self, node_id: str, drain: bool) -> bool:
        with self.tx() as q:
            return q("UPDATE nodes SET drain=? WHERE id=?", int(drain), node_id).rowcount > 0

    def delete_node(self, node_id: str) -> bool:
        with self.tx() as q:
            return q("DELETE FROM nodes WHERE id = ?", node_id).rowcount > 0

    def set_node_states(self, changes: list[tuple[str, str]]) -> None:
        self.executemany("UPDATE nodes SET state=? WHERE id=?", [(state, node_id) for node_id, state in changes])

    def record_heartbeats(self, rows: list[tuple[str, float, str]]) -> None:
        """Batch of (node id, time, utilisation JSON): one transaction for many heartbeats."""
        self.executemany("UPDATE nodes SET last_heartbeat=?, utilisation=? WHERE id=?", [(t, u, i) for i, t, u in rows])

    # -- datasets -------------------------------------------------------

    def insert_dataset(self, d: DatasetRow) -> None:
        with self.tx() as q:
            q(f"INSERT INTO datasets ({_DATASET_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
              d.name, d.spec, d.digest, d.data_sha256, d.data_format, json.dumps(d.columns), d.row_count, d.version,
              d.created_at, d.updated_at)

    def update_dataset(self, d: DatasetRow) -> None:
        with self.tx() as q:
            q("UPDATE datasets SET spec=?, digest=?, data_sha256=?, data_format=?, columns=?, row_count=?, version=?, updated_at=? "
              "WHERE name=?", d.spec, d.digest, d.data_sha256, d.data_format, json.dumps(d.columns), d.row_count, d.version,
              d.updated_at, d.name)

    def get_dataset(self, name: str) -> DatasetRow | None:
        with self.tx() as q:
            row = q(f"SELECT {_DATASET_COLS} FROM datasets WHERE name = ?", name).fetchone()
        return _dataset(row) if row else None

    def delete_dataset(self, name: str) -> bool:
        with self.tx() as q:
            return q("DELETE FROM datasets WHERE name = ?", name).rowcount > 0

    # -- documents: models, model versions, operations, services, pools, pool VMs ----
    # One JSON document per key. Callers own the document's shape (control_plane/models.py,
    # services.py); the store only keeps it durable and atomic.

    _DOC_TABLES = {"models": "name", "operations": "id", "services": "name", "pools": "name", "pool_vms": "id",
                   "apps": "name"}

    def put_doc(self, table: str, key: str, doc: dict) -> None:
        col = self._DOC_TABLES[table]
        body, now = json.dumps(doc, sort_keys=True), time.time()
        with self.tx() as q:
            if q(f"UPDATE {table} SET doc=?, updated_at=? WHERE {col}=?", body, now, key).rowcount == 0:
                q(f"INSERT INTO {table} ({col}, doc, updated_at) VALUES (?,?,?)", key, body, now)

    def get_doc(self, table: str, key: str) -> dict | None:
        col = self._DOC_TABLES[table]
        with self.tx() as q:
            row = q(f"SELECT doc FROM {table} WHERE {col}=?", key).fetchone()
        return json.loads(row[0]) if row else None

    def list_docs(self, table: str) -> list[dict]:
        col = self._DOC_TABLES[table]
        with self.tx() as q:
            rows = q(f"SELECT doc FROM {table} ORDER BY {col}").fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete_doc(self, table: str, key: str) -> bool:
        col = self._DOC_TABLES[table]
        with self.tx() as q:
            return q(f"DELETE FROM {table} WHERE {col}=?", key).rowcount > 0

    def put_model_version(self, model: str, version: str, doc: dict) -> None:
        """Idempotent: the same version (same artifact digest) is recorded once."""
        with self.tx() as q:
            if not q("SELECT 1 FROM model_versions WHERE model=? AND version=?", model, version).fetchone():
                q("INSERT INTO model_versions (model, version, doc, created_at) VALUES (?,?,?,?)", model, version,
                  json.dumps(doc, sort_keys=True), time.time())

    def model_versions(self, model: str) -> list[dict]:
        """Oldest first."""
        with self.tx() as q:
            rows = q("SELECT doc FROM model_versions WHERE model=? ORDER BY created_at, version", model).fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete_model(self, name: str) -> None:
        with self.tx() as q:
            q("DELETE FROM model_versions WHERE model=?", name)
            q("DELETE FROM models WHERE name=?", name)

    # -- access tokens (control_plane/access_tokens.py) ------------------

    def insert_access_token(self, token_id: str, name: str, doc: dict, secret_sha256: str, created_at: float,
                            expires_at: float | None) -> None:
        """Conflict when the name is taken."""
        with self.tx() as q:
            q("INSERT INTO access_tokens (id, name, doc, secret_sha256, created_at, expires_at) VALUES (?,?,?,?,?,?)",
              token_id, name, json.dumps(doc, sort_keys=True), secret_sha256, created_at, expires_at)

    def access_token(self, token_id: str) -> tuple[dict, str] | None:
        """(doc, secret_sha256) of a token by id."""
        with self.tx() as q:
            row = q("SELECT doc, secret_sha256 FROM access_tokens WHERE id=?", token_id).fetchone()
        return (json.loads(row[0]), row[1]) if row else None

    def list_access_tokens(self) -> list[dict]:
        with self.tx() as q:
            return [json.loads(r[0]) for r in q("SELECT doc FROM access_tokens ORDER BY name").fetchall()]

    def delete_access_token(self, name: str) -> bool:
        with self.tx() as q:
            return q("DELETE FROM access_tokens WHERE name=?", name).rowcount > 0

    # -- history (control_plane/history.py) -------------------------------

    def add_history(self, rows: list[tuple[str, str, float, dict]]) -> None:
        """(series, key, time, doc) rows in one transaction; a row at the same time replaces the old."""
        if rows:
            self.executemany("INSERT INTO history (series, hkey, at, doc) VALUES (?,?,?,?) "
                             "ON CONFLICT (series, hkey, at) DO UPDATE SET doc = excluded.doc",
                             [(s, k, at, json.dumps(d, sort_keys=True, allow_nan=False)) for s, k, at, d in rows])

    def history(self, series: str, key: str, since: float, limit: int) -> list[tuple[float, dict]]:
        """The newest `limit` points at or after `since`, oldest first."""
        with self.tx() as q:
            rows = q("SELECT at, doc FROM history WHERE series=? AND hkey=? AND at>=? ORDER BY at DESC LIMIT ?",
                     series, key, since, limit).fetchall()
        return [(at, json.loads(doc)) for at, doc in reversed(rows)]

    def prune_history(self, before: float) -> int:
        with self.tx() as q:
            return q("DELETE FROM history WHERE at<?", before).rowcount

    def delete_history(self, series: str, key: str) -> None:
        with self.tx() as q:
            q("DELETE FROM history WHERE series=? AND hkey=?", series, key)

    # -- app runs: one row per run, keyed by id, unique per (app, number) and (app, scheduled time) --

    def insert_run(self, run: dict) -> dict | None:
        """Record a new run, numbering it next for its app; None when a run for the same scheduled
        time is recorded already (the step that scheduled it ran before). Conflict when another
        writer took the number at the same moment (PostgreSQL): try again."""
        with self.tx() as q:
            if run.get("scheduled_for") is not None and q(
                    "SELECT 1 FROM app_runs WHERE app=? AND scheduled_for=?", run["app"], run["scheduled_for"]).fetchone():
                return None
            number = int(q("SELECT COALESCE(MAX(number), 0) FROM app_runs WHERE app=?", run["app"]).fetchone()[0]) + 1
            run = {**run, "number": number}
            q("INSERT INTO app_runs (id, app, number, scheduled_for, state, doc, updated_at) VALUES (?,?,?,?,?,?,?)",
              run["id"], run["app"], number, run.get("scheduled_for"), run["state"], json.dumps(run, sort_keys=True),
              time.time())
        return run

    def update_run(self, run: dict) -> None:
        with self.tx() as q:
            q("UPDATE app_runs SET state=?, doc=?, updated_at=? WHERE id=?", run["state"],
              json.dumps(run, sort_keys=True), time.time(), run["id"])

    def get_run(self, run_id: str) -> dict | None:
        with self.tx() as q:
            row = q("SELECT doc FROM app_runs WHERE id=?", run_id).fetchone()
        return json.loads(row[0]) if row else None

    def run_by_number(self, app: str, number: int) -> dict | None:
        with self.tx() as q:
            row = q("SELECT doc FROM app_runs WHERE app=? AND number=?", app, number).fetchone()
        return json.loads(row[0]) if row else None

    def list_runs(self, app: str, limit: int = 20) -> list[dict]:
        """Newest first."""
        with self.tx() as q:
            rows = q("SELECT doc FROM app_runs WHERE app=? ORDER BY number DESC LIMIT ?", app, limit).fetchall()
        return [json.loads(r[0]) for r in rows]

    def runs_in(self, states: tuple[str, ...]) -> list[dict]:
        """Runs in any of these states, every app, oldest first."""
        marks = ",".join("?" * len(states))
        with self.tx() as q:
            rows = q(f"SELECT doc FROM app_runs WHERE state IN ({marks}) ORDER BY app, number", *states).fetchall()
        return [json.loads(r[0]) for r in rows]

    def last_run_number(self, app: str) -> int:
        with self.tx() as q:
            return int(q("SELECT COALESCE(MAX(number), 0) FROM app_runs WHERE app=?", app).fetchone()[0])

    def delete_runs(self, app: str) -> None:
        with self.tx() as q:
            q("DELETE FROM app_runs WHERE app=?", app)
