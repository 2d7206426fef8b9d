"""The store's schema as an ordered list of migrations.

Portable SQL only (TEXT, BIGINT, DOUBLE PRECISION, and {BYTES}, which the store spells BYTEA or
BLOB): the same statements run on SQLite and PostgreSQL. Times are UNIX seconds (DOUBLE PRECISION); structured
values (labels, capabilities) are JSON text. Never edit a shipped migration:
append a new one.
"""

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "join tokens and nodes",
        [
            """CREATE TABLE join_tokens (
                id          TEXT PRIMARY KEY,
                name        TEXT NOT NULL UNIQUE,
                secret      TEXT NOT NULL,
                tier        TEXT NOT NULL,
                labels      TEXT NOT NULL,
                ttl         TEXT NOT NULL,
                max_uses    BIGINT NOT NULL,
                uses        BIGINT NOT NULL,
                description TEXT NOT NULL,
                created_at  DOUBLE PRECISION NOT NULL,
                expires_at  DOUBLE PRECISION
            )""",
            """CREATE TABLE nodes (
                id             TEXT PRIMARY KEY,
                name           TEXT NOT NULL UNIQUE,
                tier           TEXT NOT NULL,
                labels         TEXT NOT NULL,
                state          TEXT NOT NULL,
                capabilities   TEXT NOT NULL,
                utilisation    TEXT NOT NULL,
                public_key_sha256 TEXT NOT NULL,
                join_token     TEXT NOT NULL,
                created_at     DOUBLE PRECISION NOT NULL,
                last_heartbeat DOUBLE PRECISION
            )""",
            "CREATE INDEX nodes_tier ON nodes (tier)",
        ],
    ),
    (
        2,
        "datasets",
        [
            """CREATE TABLE datasets (
                name        TEXT PRIMARY KEY,
                spec        TEXT NOT NULL,
                digest      TEXT NOT NULL,
                data_sha256 TEXT NOT NULL,
                data_format TEXT NOT NULL,
                columns     TEXT NOT NULL,
                row_count   BIGINT NOT NULL,
                version     BIGINT NOT NULL,
                created_at  DOUBLE PRECISION NOT NULL,
                updated_at  DOUBLE PRECISION NOT NULL
            )""",
        ],
    ),
    (
        3,
        "models, model versions, operations, services",
        [
            # Documents (JSON) keyed by name: their fields change with the product, their keys do not.
            """CREATE TABLE models (
                name       TEXT PRIMARY KEY,
                doc        TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE model_versions (
                model      TEXT NOT NULL,
                version    TEXT NOT NULL,
                doc        TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (model, version)
            )""",
            """CREATE TABLE operations (
                id         TEXT PRIMARY KEY,
                doc        TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE services (
                name       TEXT PRIMARY KEY,
                doc        TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
        ],
    ),
    (
        4,
        "cloud pools and their VMs",
        [
            """CREATE TABLE pools (
                name       TEXT PRIMARY KEY,
                doc        TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            # One row per VM, keyed <pool>/<token>: written before the cloud is asked for the VM.
            """CREATE TABLE pool_vms (
                id         TEXT PRIMARY KEY,
                doc        TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
        ],
    ),
    (
        5,
        "apps and their runs",
        [
            """CREATE TABLE apps (
                name       TEXT PRIMARY KEY,
                doc        TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            # One row per run of a batch or periodic app, written before the run starts. The unique
            # keys make a retried or repeated scheduling step a no-op: a run is never doubled.
            """CREATE TABLE app_runs (
                id            TEXT PRIMARY KEY,
                app           TEXT NOT NULL,
                number        BIGINT NOT NULL,
                scheduled_for DOUBLE PRECISION,
                state         TEXT NOT NULL,
                doc           TEXT NOT NULL,
                updated_at    DOUBLE PRECISION NOT NULL
            )""",
            "CREATE UNIQUE INDEX app_runs_number ON app_runs (app, number)",
            "CREATE UNIQUE INDEX app_runs_scheduled ON app_runs (app, scheduled_for)",
            "CREATE INDEX app_runs_state ON app_runs (state)",
        ],
    ),
    (
        6,
        "access tokens, history, node drain",
        [
            # Scoped bearer tokens (control_plane/access_tokens.py): only the secret's sha256 is kept.
            """CREATE TABLE access_tokens (
                id          TEXT PRIMARY KEY,
                name        TEXT NOT NULL UNIQUE,
                doc         TEXT NOT NULL,
                secret_sha256 TEXT NOT NULL,
                created_at  DOUBLE PRECISION NOT NULL,
                expires_at  DOUBLE PRECISION
            )""",
            # Stored series (control_plane/history.py): one row per (series, key, time), pruned past
            # the retention.
            """CREATE TABLE history (
                series TEXT NOT NULL,
                hkey   TEXT NOT NULL,
                at     DOUBLE PRECISION NOT NULL,
                doc    TEXT NOT NULL,
                PRIMARY KEY (series, hkey, at)
            )""",
            "CREATE INDEX history_at ON history (at)",
            "ALTER TABLE nodes ADD COLUMN drain BIGINT NOT NULL DEFAULT 0",
        ],
    ),
    (
        7,
        "several control planes on one database: leadership, node reports, blobs, the cluster's secrets",
        [
            # One row: who leads and until when (on the database's clock), and the fencing epoch
            # every write of the leader's loops checks (control_plane/leadership.py).
            """CREATE TABLE leases (
                name       TEXT PRIMARY KEY,
                holder     TEXT NOT NULL,
                address    TEXT NOT NULL,
                epoch      BIGINT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
            "INSERT INTO leases (name, holder, address, epoch, expires_at) VALUES ('leader', '', '', 0, 0)",
            # What each node last reported running (the leader holds the node sessions; every
            # control plane answers from these).
            """CREATE TABLE node_reports (
                node_id    TEXT PRIMARY KEY,
                doc        TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            # Artifacts (datasets, app artifacts, bentos) in chunks, so every control plane has them.
            """CREATE TABLE blobs (
                digest TEXT NOT NULL,
                seq    BIGINT NOT NULL,
                data   {BYTES} NOT NULL,
                PRIMARY KEY (digest, seq)
            )""",
            """CREATE TABLE blob_meta (
                digest   TEXT PRIMARY KEY,
                size     BIGINT NOT NULL,
                metadata TEXT NOT NULL
            )""",
            # The CA (its key encrypted) and the admin token, shared by every control plane.
            """CREATE TABLE cluster (
                name  TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
        ],
    ),
]
