"""The store: SQLite (embedded default, WAL) or PostgreSQL, one schema, one code path.

Only the connection and the parameter style differ by backend; every query is
written once with `?` placeholders. Methods are synchronous and thread-safe
(one connection behind a lock): the async API calls them in a worker thread.
State is written here before anything acts on it.
"""

from __future__ import annotations

import contextvars
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from control_plane.errors import Unavailable
from control_plane.store.schema import MIGRATIONS


class Conflict(Exception):
    """A unique key is taken (maps to ALREADY_EXISTS)."""


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


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


# The fence of the calling context: (holder, epoch) of the leadership the writes belong to, or None.
# Set by the leader's loops (Store.fenced); every transaction opened under it first checks, on the
# database's clock, that this holder still leads with this epoch, and locks the lease row against a
# takeover until it commits (PostgreSQL: FOR SHARE; SQLite has one writer at a time anyway).
_FENCE: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("stratum_store_fence", default=None)
MIGRATION_LOCK = 7_230_001  # pg_advisory_lock key: control planes starting together migrate one at a time


class Fenced(Unavailable):
    """This control plane's leadership (the epoch its loop wrote under) has ended: nothing was
    written; the API answers UNAVAILABLE (retry: the new leader will do it)."""


class Store:
    def __init__(self, url: str | None, data_dir: str):
        self._lock = threading.RLock()
        self.url = url
        if url and url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgresql"
            self._psycopg = psycopg
            self._conn = self._connect_pg()
            self._unique_error = psycopg.errors.UniqueViolation
            self._lost = (psycopg.OperationalError, psycopg.InterfaceError)
            self.now_sql = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
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
            self._lost = ()
            self.now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
        self.migrate()

    # -- plumbing -------------------------------------------------------

    def _connect_pg(self):
        # keepalives: a database gone without a FIN (a cut link) is noticed in seconds, not hours
        return self._psycopg.connect(self.url, autocommit=False, connect_timeout=5, keepalives=1, keepalives_idle=5,
                                     keepalives_interval=2, keepalives_count=3)

    def _usable_connection(self):
        """The connection, opened again when PostgreSQL dropped it (a restart, a cut link)."""
        if self.kind == "postgresql" and (self._conn.closed or self._conn.broken):
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is gone already
                pass
            try:
                self._conn = self._connect_pg()
            except self._lost as e:
                raise Unavailable(f"the store (PostgreSQL) is unreachable: {_first_line(e)}") from None
        return self._conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    @contextmanager
    def fenced(self, holder: str, epoch: int):
        """Writes in this context (and in threads started with its context copied, as asyncio.to_thread
        does) commit only while `holder` leads with `epoch`; otherwise they raise Fenced."""
        token = _FENCE.set((holder, epoch))
        try:
            yield
        finally:
            _FENCE.reset(token)

    @contextmanager
    def tx(self):
        """A transaction; yields `q(sql, *params) -> cursor`. Commits on success, rolls back on error.
        A dropped PostgreSQL connection is Unavailable (the caller may retry; the next one reconnects)."""
        with self._lock:
            conn = self._usable_connection()
            try:
                cur = conn.cursor()
                if self.kind == "sqlite":
                    cur.execute("BEGIN IMMEDIATE")

                def q(sql, *params):
                    cur.execute(self._sql(sql), params)
                    return cur

                fence = _FENCE.get() if self.kind == "postgresql" else None  # SQLite: one control plane only
                if fence is not None:
                    lock = " FOR SHARE" if self.kind == "postgresql" else ""
                    row = q(f"SELECT epoch FROM leases WHERE name = 'leader' AND holder = ? AND epoch = ? "
                            f"AND expires_at > {self.now_sql}{lock}", *fence).fetchone()
                    if row is None:
                        raise Fenced(f"not the leader with epoch {fence[1]} any more: a write of the old "
                                     "leadership was refused")
                yield q
            except self._unique_error as e:
                self._rollback(conn)
                raise Conflict(str(e)) from e
            except self._lost as e:
                self._rollback(conn)
                raise Unavailable(f"the store (PostgreSQL) connection was lost: {_first_line(e)}") from None
            except BaseException:
                self._rollback(conn)
                raise
            else:
                try:
                    conn.commit()
                except self._lost as e:
                    raise Unavailable(f"the store (PostgreSQL) connection was lost at commit: {_first_line(e)}") from None

    def _rollback(self, conn) -> None:
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001 - a lost connection cannot roll back; it is reopened next time
            pass

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        with self.tx() as q:
            cur = q("SELECT 1")  # the fence (if any) is checked by tx(); the rows go in the same transaction
            cur.executemany(self._sql(sql), rows)

    def notify(self, q, channel: str, payload: str) -> None:
        """Within a transaction: tell the other control planes (PostgreSQL LISTEN) once it commits."""
        if self.kind == "postgresql":
            q("SELECT pg_notify(?, ?)", channel, payload)

    def migrate(self) -> list[int]:
        """Apply pending migrations in order, each in its own transaction; returns those applied.
        On PostgreSQL an advisory lock makes control planes started together take turns."""
        locked = self.kind == "postgresql"
        if locked:
            with self._lock:
                self._usable_connection().execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
                self._conn.commit()
        try:
            with self.tx() as q:
                q("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
            applied = []
            binary = "BYTEA" if self.kind == "postgresql" else "BLOB"
            for version, name, statements in MIGRATIONS:
                with self.tx() as q:
                    if q("SELECT 1 FROM schema_migrations WHERE version = ?", version).fetchone():
                        continue
                    for stmt in statements:
                        q(stmt.replace("{BYTES}", binary))
                    q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", version, name, time.time())
                    applied.append(version)
            return applied
        finally:
            if locked:
                with self._lock:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
                    self._conn.commit()

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

    # -- leadership (control_plane/leadership.py), on the database's clock --------------------

    def claim_lease(self, holder: str, address: str, ttl_s: float) -> tuple[int | None, str, str, float]:
        """Take or renew the leader lease for `ttl_s` from now (the database's now): it is ours to
        take when we hold it or it has expired. A new term (ours after another's, or ours again
        after it lapsed) gets the next epoch. Returns (our epoch or None, the holder, its address,
        seconds left on the lease)."""
        with self.tx() as q:
            row = q(f"UPDATE leases SET epoch = CASE WHEN holder = ? AND expires_at > {self.now_sql} THEN epoch "
                    f"ELSE epoch + 1 END, holder = ?, address = ?, expires_at = {self.now_sql} + ? "
                    f"WHERE name = 'leader' AND (holder = ? OR expires_at <= {self.now_sql}) RETURNING epoch",
                    holder, holder, address, float(ttl_s), holder).fetchone()
            cur = q(f"SELECT holder, address, expires_at - {self.now_sql} FROM leases WHERE name = 'leader'").fetchone()
        return (int(row[0]) if row else None), cur[0], cur[1], float(cur[2])

    def leader(self) -> tuple[str, str, int, float]:
        """(holder, address, epoch, seconds left on the lease; negative: expired)."""
        with self.tx() as q:
            row = q(f"SELECT holder, address, epoch, expires_at - {self.now_sql} FROM leases WHERE name = 'leader'").fetchone()
        return row[0], row[1], int(row[2]), float(row[3])

    def announce(self, holder: str, address: str, ttl_s: float) -> None:
        """This control plane is up, at `address`, for `ttl_s` (members())."""
        name = f"member:{holder}"
        with self.tx() as q:
            if q(f"UPDATE leases SET address = ?, expires_at = {self.now_sql} + ? WHERE name = ?",
                 address, float(ttl_s), name).rowcount == 0:
                q(f"INSERT INTO leases (name, holder, address, epoch, expires_at) VALUES (?, ?, ?, 0, {self.now_sql} + ?)",
                  name, holder, address, float(ttl_s))

    def members(self) -> list[tuple[str, str]]:
        """(holder, address) of every control plane that announced itself and has not lapsed."""
        with self.tx() as q:
            return [(h, a) for h, a in q(f"SELECT holder, address FROM leases WHERE name LIKE ? "
                                         f"AND expires_at > {self.now_sql} ORDER BY holder", "member:%").fetchall()]

    def release_lease(self, holder: str) -> bool:
        """Give the lease up at once (a clean stop), so a follower need not wait for it to expire."""
        with self.tx() as q:
            q("DELETE FROM leases WHERE name = ?", f"member:{holder}")
            return q("UPDATE leases SET expires_at = 0 WHERE name = 'leader' AND holder = ?", holder).rowcount > 0

    # -- node reports (what each node last said it runs) -------------------------------------

    def put_node_report(self, node_id: str, doc: dict) -> None:
        body = json.dumps(doc, sort_keys=True)
        with self.tx() as q:
            if q("UPDATE node_reports SET doc = ?, updated_at = ? WHERE node_id = ?", body, time.time(), node_id).rowcount == 0:
                q("INSERT INTO node_reports (node_id, doc, updated_at) VALUES (?, ?, ?)", node_id, body, time.time())

    def node_reports(self) -> dict[str, dict]:
        with self.tx() as q:
            return {n: json.loads(d) for n, d in q("SELECT node_id, doc FROM node_reports").fetchall()}

    def delete_node_report(self, node_id: str) -> None:
        with self.tx() as q:
            q("DELETE FROM node_reports WHERE node_id = ?", node_id)

    # -- blobs: every control plane's copy of the artifact store --------------------------------

    def put_blob(self, digest: str, chunks, metadata: dict | None = None, batch: int = 8) -> None:
        """Store a blob's chunks (an iterable of bytes) once; a digest already stored is left alone.
        A few chunks a transaction (a large blob must not hold the store for the whole copy), the
        blob_meta row last: a reader sees a blob once all of it is in. Chunks of a copy cut short are
        written over by the next."""
        if self.blob_size(digest) is not None:
            return
        size, seq, pending = 0, 0, []

        def flush():
            with self.tx() as q:
                for n, data in pending:
                    q("INSERT INTO blobs (digest, seq, data) VALUES (?, ?, ?) ON CONFLICT (digest, seq) "
                      "DO UPDATE SET data = excluded.data", digest, n, data)
            pending.clear()

        for chunk in chunks:
            pending.append((seq, chunk))
            size += len(chunk)
            seq += 1
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        try:
            with self.tx() as q:
                q("DELETE FROM blobs WHERE digest = ? AND seq >= ?", digest, seq)  # a longer, older try's tail
                if not q("SELECT 1 FROM blob_meta WHERE digest = ?", digest).fetchone():
                    q("INSERT INTO blob_meta (digest, size, metadata) VALUES (?, ?, ?)", digest, size,
                      json.dumps(metadata or {}, sort_keys=True))
        except Conflict:
            pass  # another control plane stored the same bytes at the same time

    def blob_size(self, digest: str) -> int | None:
        with self.tx() as q:
            row = q("SELECT size FROM blob_meta WHERE digest = ?", digest).fetchone()
        return int(row[0]) if row else None

    def blob_chunks(self, digest: str):
        """The chunks of a stored blob, in order, read a few at a time."""
        seq = 0
        while True:
            with self.tx() as q:
                rows = q("SELECT seq, data FROM blobs WHERE digest = ? AND seq >= ? ORDER BY seq LIMIT 8", digest, seq).fetchall()
            if not rows:
                return
            for n, data in rows:
                yield bytes(data)
                seq = n + 1

    def put_blob_metadata(self, digest: str, metadata: dict) -> None:
        with self.tx() as q:
            q("UPDATE blob_meta SET metadata = ? WHERE digest = ?", json.dumps(metadata, sort_keys=True), digest)

    def blob_metadata(self, digest: str) -> dict | None:
        with self.tx() as q:
            row = q("SELECT metadata FROM blob_meta WHERE digest = ?", digest).fetchone()
        return json.loads(row[0]) if row else None

    def delete_blob(self, digest: str) -> None:
        with self.tx() as q:
            q("DELETE FROM blob_meta WHERE digest = ?", digest)
            q("DELETE FROM blobs WHERE digest = ?", digest)

    # -- the cluster's shared secrets ----------------------------------------------------------

    def cluster_value(self, name: str, default: str | None = None) -> str | None:
        """The stored value of `name`; with `default`, store it first if none is (the first control
        plane to start decides, the others read what it stored)."""
        try:
            with self.tx() as q:
                row = q("SELECT value FROM cluster WHERE name = ?", name).fetchone()
                if row is None and default is not None:
                    q("INSERT INTO cluster (name, value) VALUES (?, ?)", name, default)
                    return default
        except Conflict:  # another control plane stored it first: theirs it is
            return self.cluster_value(name)
        return row[0] if row else None

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
