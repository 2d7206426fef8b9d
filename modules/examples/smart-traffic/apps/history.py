"""The history store: what the processor saw and decided, read by the dashboard and the batch job.

    store = open_store(os.environ["HISTORY_STORE"])   # "postgresql://..." or "sqlite:///abs/path.db"
    new = store.add_observations(rows)                # idempotent on (intersection, seq)
    store.add_decisions(rows)
    store.state()                                     # the dashboard's view
    hi = store.committed_max_id(); rows = store.observations_after(lo, hi)   # the batch job

Schema (the same on SQLite and PostgreSQL):

  observations  id (increasing), intersection, seq, ts (sensor send time, unix s), slot, hour,
                weekday, weather, temperature_c (NULL: dead sensor), vehicles_per_min,
                pedestrians_per_min, queue_length, stored_at;  UNIQUE (intersection, seq)
  decisions     id, intersection, window_start, window_end, observations, vehicles_per_min,
                pedestrians_per_min, queue_length, prediction (NULL: no model answer), source
                ("model" | "fallback"), green_s, sensor_ts (latest reading used), decided_at
  watermarks    name (PRIMARY KEY), last_id (observations.id already aggregated), updated_at

One Store object per thread: SQLite connections and psycopg connections are not shared.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from urllib.parse import urlsplit, urlunsplit

OBSERVATION_FIELDS = ("intersection", "seq", "ts", "slot", "hour", "weekday", "weather", "temperature_c",
                      "vehicles_per_min", "pedestrians_per_min", "queue_length")
DECISION_FIELDS = ("intersection", "window_start", "window_end", "observations", "vehicles_per_min",
                   "pedestrians_per_min", "queue_length", "prediction", "source", "green_s", "sensor_ts", "decided_at")
# Writers of observations hold this advisory lock shared, the batch job takes it exclusively for an
# instant: then every id up to max(id) is committed (see committed_max_id).
OBSERVATIONS_LOCK = 0x57A7_0B5  # arbitrary, fixed

_ID = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"}
_REAL = "DOUBLE PRECISION"  # SQLite reads it as REAL


def _schema(kind: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS observations (
              id {_ID[kind]},
              intersection TEXT NOT NULL, seq BIGINT NOT NULL, ts {_REAL} NOT NULL, slot BIGINT,
              hour INTEGER NOT NULL, weekday INTEGER NOT NULL, weather TEXT NOT NULL, temperature_c {_REAL},
              vehicles_per_min {_REAL} NOT NULL, pedestrians_per_min {_REAL} NOT NULL,
              queue_length {_REAL} NOT NULL, stored_at {_REAL} NOT NULL,
              UNIQUE (intersection, seq))""",
        "CREATE INDEX IF NOT EXISTS observations_latest ON observations (intersection, id)",
        f"""CREATE TABLE IF NOT EXISTS decisions (
              id {_ID[kind]},
              intersection TEXT NOT NULL, window_start {_REAL}, window_end {_REAL} NOT NULL,
              observations INTEGER NOT NULL, vehicles_per_min {_REAL}, pedestrians_per_min {_REAL},
              queue_length {_REAL}, prediction TEXT, source TEXT NOT NULL, green_s {_REAL} NOT NULL,
              sensor_ts {_REAL}, decided_at {_REAL} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS decisions_latest ON decisions (intersection, id)",
        f"CREATE TABLE IF NOT EXISTS watermarks (name TEXT PRIMARY KEY, last_id BIGINT NOT NULL, updated_at {_REAL} NOT NULL)",
    ]


class StoreConfigError(ValueError):
    """HISTORY_STORE cannot be used; the message names what is wrong (and never the password)."""


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for logs and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unparsable URL>"


def parse_url(url: str) -> tuple[str, str]:
    """("sqlite", path) or ("postgresql", conninfo URL); StoreConfigError for anything else."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):]
        if path.startswith("//"):  # sqlite:////abs/path.db (SQLAlchemy's spelling) is the same file
            path = path[1:]
        if not path.startswith("/") or path == "/":
            raise StoreConfigError(f"HISTORY_STORE={url!r}: give an absolute path, sqlite:///abs/path.db")
        return "sqlite", path
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg.conninfo

            psycopg.conninfo.conninfo_to_dict(url)
            urlsplit(url).port  # libpq only finds a bad port at connect time  # noqa: B018
        except ImportError:
            raise StoreConfigError("HISTORY_STORE is a PostgreSQL URL but psycopg is not installed "
                                   "(pip install 'psycopg[binary]')") from None
        except Exception:  # noqa: BLE001 - psycopg's message may echo the URL, password included
            raise StoreConfigError(f"HISTORY_STORE={redact(url)!r} is not a valid PostgreSQL URL") from None
        return "postgresql", url
    raise StoreConfigError(f"HISTORY_STORE={redact(url)!r}: use postgresql://user:password@host:port/db "
                           "or sqlite:///abs/path.db")


def open_store(url: str) -> "Store":
    """A Store for HISTORY_STORE; the schema is created on first use."""
    kind, target = parse_url(url)
    return Store(kind, target, redact(url))


class Store:
    def __init__(self, kind: str, target: str, display: str):
        self.kind, self._target, self.display = kind, target, display
        self._conn = None
        self._lock = threading.Lock()  # the dashboard's request threads share one Store

    # -- connection ---------------------------------------------------------------------------
    def _connect(self):
        if self.kind == "sqlite":
            directory = os.path.dirname(self._target)
            if not os.path.isdir(directory):
                raise StoreConfigError(f"HISTORY_STORE: directory {directory} does not exist")
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below).
            conn = sqlite3.connect(self._target, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")  # readers (dashboard, batch job) never block the writer
            conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the processor acks
        else:
            import psycopg
            from psycopg.rows import dict_row

            try:
                conn = psycopg.connect(self._target, autocommit=True, row_factory=dict_row, connect_timeout=10)
            except psycopg.OperationalError as exc:
                # psycopg's text names host and port, never the password; keep the first line only.
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConnectionError(f"cannot connect to {self.display}: {first}") from None
        self._conn = conn
        self._create_schema()
        return conn

    def connect(self) -> None:
        """Connect now (creating the schema): StoreConfigError or ConnectionError say why not."""
        with self._lock:
            if self._conn is None:
                self._connect()

    def _create_schema(self) -> None:
        with self._tx() as cur:
            if self.kind == "postgresql":  # concurrent CREATE ... IF NOT EXISTS can collide in PostgreSQL
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (OBSERVATIONS_LOCK + 1,))
            for stmt in _schema(self.kind):
                cur.execute(stmt)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    class _Tx:
        def __init__(self, store: "Store"):
            self.store = store

        def __enter__(self):
            s = self.store
            conn = s._conn or s._connect()
            if s.kind == "sqlite":
                self.cur = conn.cursor()
                self.cur.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock later
            else:
                self.tx = conn.transaction()
                self.tx.__enter__()
                self.cur = conn.cursor()
            return self.cur

        def __exit__(self, exc_type, exc, tb):
            s = self.store
            try:
                if s.kind == "sqlite":
                    self.cur.execute("COMMIT" if exc_type is None else "ROLLBACK")
                else:
                    self.tx.__exit__(exc_type, exc, tb)
            except Exception:
                s.close()  # a broken connection: the next call reconnects
                raise
            if exc_type is not None and s.kind == "postgresql" and (s._conn.broken or s._conn.closed):
                s.close()
            return False

    def _tx(self) -> "Store._Tx":
        return Store._Tx(self)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def _rows(self, sql: str, args=()) -> list[dict]:
        with self._lock:
            try:
                conn = self._conn or self._connect()
                cur = conn.execute(self._sql(sql), args)
                return [dict(r) for r in cur.fetchall()]
            except Exception:
                self.close()
                raise

    # -- writes -------------------------------------------------------------------------------
    def add_observations(self, rows: list[dict]) -> list[dict]:
        """Insert readings in one transaction; those already stored (same intersection and seq) are
        skipped. Returns the rows that were new, in the order given."""
        if not rows:
            return []
        now = time.time()
        values = [tuple(r.get(f) for f in OBSERVATION_FIELDS) + (now,) for r in rows]
        sql = self._sql(f"INSERT INTO observations ({', '.join(OBSERVATION_FIELDS)}, stored_at) "
                        f"VALUES ({', '.join('?' * (len(OBSERVATION_FIELDS) + 1))}) "
                        "ON CONFLICT (intersection, seq) DO NOTHING")
        new: list[dict] = []
        with self._lock, self._tx() as cur:
            if self.kind == "sqlite":
                for row, v in zip(rows, values):
                    cur.execute(sql, v)
                    if cur.rowcount == 1:
                        new.append(row)
            else:
                cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (OBSERVATIONS_LOCK,))
                cur.executemany(sql + " RETURNING intersection, seq", values, returning=True)
                inserted = set()
                while True:
                    hit = cur.fetchone()
                    if hit:
                        inserted.add((hit["intersection"], hit["seq"]))
                    if not cur.nextset():
                        break
                # Two copies of one reading in the same batch: only the first counts as new.
                for row in rows:
                    key = (row["intersection"], row["seq"])
                    if key in inserted:
                        inserted.discard(key)
                        new.append(row)
        return new

    def add_decisions(self, rows: list[dict]) -> None:
        if not rows:
            return
        sql = self._sql(f"INSERT INTO decisions ({', '.join(DECISION_FIELDS)}) "
                        f"VALUES ({', '.join('?' * len(DECISION_FIELDS))})")
        with self._lock, self._tx() as cur:
            cur.executemany(sql, [tuple(r.get(f) for f in DECISION_FIELDS) for r in rows])

    # -- the batch job ------------------------------------------------------------------------
    def committed_max_id(self) -> int:
        """The largest observation id below which every id is committed, so a watermark can move
        up to it without skipping a row that commits later. SQLite has one writer at a time, so
        max(id) is that; PostgreSQL hands out ids to concurrent writers, so wait (an instant) for
        the writers in flight by taking their lock exclusively."""
        with self._lock, self._tx() as cur:
            if self.kind == "postgresql":
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (OBSERVATIONS_LOCK,))
            cur.execute("SELECT COALESCE(MAX(id), 0) AS hi FROM observations")
            row = cur.fetchone()
            return int(row["hi"] if self.kind == "postgresql" else row[0])

    def observations_after(self, lo: int, hi: int) -> list[dict]:
        """Observations with lo < id <= hi, in id order."""
        return self._rows("SELECT * FROM observations WHERE id > ? AND id <= ? ORDER BY id", (lo, hi))

    def watermark(self, name: str) -> int:
        rows = self._rows("SELECT last_id FROM watermarks WHERE name = ?", (name,))
        return int(rows[0]["last_id"]) if rows else 0

    def advance_watermark(self, name: str, old: int, new: int) -> bool:
        """Move `name` from `old` to `new`; False if another run moved it in the meantime."""
        with self._lock, self._tx() as cur:
            cur.execute(self._sql("INSERT INTO watermarks (name, last_id, updated_at) VALUES (?, 0, ?) "
                                  "ON CONFLICT (name) DO NOTHING"), (name, time.time()))
            cur.execute(self._sql("UPDATE watermarks SET last_id = ?, updated_at = ? WHERE name = ? AND last_id = ?"),
                        (new, time.time(), name, old))
            return cur.rowcount == 1

    # -- the dashboard ------------------------------------------------------------------------
    def state(self, recent: int = 20, series: int = 30) -> dict:
        """Latest decision and reading per intersection, the `recent` newest decisions, and each
        intersection's last `series` decisions (oldest first) for its sparkline."""
        latest_obs = self._rows(
            "SELECT o.* FROM observations o JOIN (SELECT intersection, MAX(id) AS id FROM observations "
            "GROUP BY intersection) m ON o.id = m.id ORDER BY o.intersection")
        latest_dec = self._rows(
            "SELECT d.* FROM decisions d JOIN (SELECT intersection, MAX(id) AS id FROM decisions "
            "GROUP BY intersection) m ON d.id = m.id ORDER BY d.intersection")
        newest = self._rows("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", (recent,))
        names = sorted({r["intersection"] for r in latest_obs} | {r["intersection"] for r in latest_dec})
        spans = self._rows("SELECT COALESCE(MAX(id), 0) AS hi FROM decisions")
        # The last `series` decisions of every intersection lie within the last series x N ids.
        lo = int(spans[0]["hi"]) - series * max(1, len(names))
        tail = self._rows("SELECT intersection, window_end, vehicles_per_min, queue_length, prediction, green_s "
                          "FROM decisions WHERE id > ? ORDER BY id", (lo,))
        by_name: dict[str, list] = {}
        for r in tail:
            by_name.setdefault(r["intersection"], []).append(r)
        return {"latest_observations": latest_obs, "latest_decisions": latest_dec, "recent_decisions": newest,
                "series": {k: v[-series:] for k, v in by_name.items()}}
