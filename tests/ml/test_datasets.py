"""Loading tables from files and SQL: types, row counts, digests, and every error's message."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3

import pandas as pd
import pytest

from control_plane.errors import InvalidArgument
from control_plane.ml.datasets import (DatasetError, describe, format_from_path, frame_digest, load_bytes, load_file,
                                       load_source, load_sql, redact_url)

CSV = (b"speed,hour,road,rain,seen\n"
       b"51.5,7,a1,true,2024-05-01T07:00\n"
       b"40.0,8,b2,false,2024-05-01T08:00\n"
       b",9,,true,2024-05-01T09:00\n")


def test_csv_types_rows_and_digest():
    ds = load_bytes(CSV, "csv", "data/traffic.csv")
    assert ds.columns == [("speed", "float"), ("hour", "integer"), ("road", "string"), ("rain", "boolean"),
                          ("seen", "datetime")]
    assert ds.row_count == 3
    assert ds.digest == "sha256:" + hashlib.sha256(CSV).hexdigest()
    assert describe(ds.frame) == ds.columns


def test_parquet_and_excel_give_the_same_table(tmp_path):
    df = pd.DataFrame({"n": [1, 2, 3], "x": [0.5, None, 1.5], "s": ["a", "b", None], "b": [True, False, True],
                       "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])})
    pq, xl = tmp_path / "t.parquet", tmp_path / "t.xlsx"
    df.to_parquet(pq)
    df.to_excel(xl, index=False)
    for path in (pq, xl):
        ds = load_file(str(path))
        assert ds.columns == [("n", "integer"), ("x", "float"), ("s", "string"), ("b", "boolean"), ("t", "datetime")]
        assert ds.row_count == 3
        assert ds.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_format_from_path():
    assert [format_from_path(p) for p in ("a.csv", "b/C.PARQUET", "x.xlsx")] == ["csv", "parquet", "excel"]
    with pytest.raises(DatasetError, match=r"^data/t\.json: cannot tell the format from the extension '\.json'"):
        format_from_path("data/t.json")


def _bad_line_7() -> bytes:
    rows = ["a,b,c,d,e"] + [f"{i},{i},{i},{i},{i}" for i in range(5)] + ["1,2,3,4,5,6", "1,2,3,4,5"]
    return "\n".join(rows).encode()


@pytest.mark.parametrize("data, message", [
    (_bad_line_7(), "data/traffic.csv: line 7: expected 5 fields, saw 6"),
    (b"a,b\n1,2\n3\n", "data/traffic.csv: line 3: expected 2 fields, saw 1"),
    (b"", "data/traffic.csv: file is empty"),
    (b"\n\n  \n", "data/traffic.csv: file is empty"),
    (b"a,b\n", "data/traffic.csv: no rows"),
    (b"a,a\n1,2\n", "data/traffic.csv: line 1: column 'a' appears more than once in the header"),
    (b"a,,c\n1,2,3\n", "data/traffic.csv: line 1: column 2 of the header has no name"),
    (b'a,b\n1,"open\n', "data/traffic.csv: line 2: a quoted field is never closed"),
    (b"a,b\n1,2\n\xff,3\n", "data/traffic.csv: line 3: not UTF-8 text (byte 8)"),
])
def test_malformed_csv(data, message):
    with pytest.raises(DatasetError) as e:
        load_bytes(data, "csv", "data/traffic.csv")
    assert str(e.value) == message
    assert isinstance(e.value, ValueError) and isinstance(e.value, InvalidArgument)
    assert e.value.violations == [("source", message)]


@pytest.mark.parametrize("fmt, start", [("parquet", "t: not a readable Parquet file: "),
                                        ("excel", "t: not a readable Excel (.xlsx) file: ")])
def test_malformed_binary_formats(fmt, start):
    with pytest.raises(DatasetError) as e:
        load_bytes(b"this is not a table", fmt, "t")
    assert str(e.value).startswith(start)
    with pytest.raises(DatasetError, match="^t: file is empty$"):
        load_bytes(b"", fmt, "t")


def test_empty_excel_sheet_has_no_columns(tmp_path):
    path = tmp_path / "empty.xlsx"
    pd.DataFrame().to_excel(path, index=False)
    with pytest.raises(DatasetError, match=r"empty\.xlsx: no columns$"):
        load_file(str(path))


def test_missing_file_and_bad_sources(tmp_path):
    with pytest.raises(DatasetError, match=r"^data/none\.csv: no such file$"):
        load_source("file://data/none.csv", base_dir=str(tmp_path))
    with pytest.raises(DatasetError, match=r"unsupported source 's3://b/k\.csv'"):
        load_source("s3://b/k.csv")
    with pytest.raises(DatasetError, match="a query applies only to a database source") as e:
        load_source("file://t.csv", query="SELECT 1")
    assert e.value.field == "query"


def test_load_source_file_url_relative_to_base_dir(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_bytes(CSV)
    ds = load_source("file://data/t.csv", base_dir=str(tmp_path))
    assert ds.row_count == 3


# ---------------------------------------------------------------- SQL


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "traffic.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE obs (speed REAL, hour INTEGER, road TEXT, missing INTEGER)")
        conn.executemany("INSERT INTO obs VALUES (?, ?, ?, ?)",
                         [(51.5, 7, "a1", 1), (40.0, 8, "b2", None), (33.3, 9, None, 3)])
    return path


def test_sqlite_query(sqlite_db, tmp_path):
    ds = load_sql(f"sqlite:///{sqlite_db}", "SELECT * FROM obs ORDER BY hour")
    assert ds.columns == [("speed", "float"), ("hour", "integer"), ("road", "string"), ("missing", "integer")]
    assert ds.row_count == 3
    assert ds.frame["missing"].isna().sum() == 1
    again = load_source(f"sqlite:///{sqlite_db}", query="SELECT * FROM obs ORDER BY hour")
    assert again.digest == ds.digest == frame_digest(ds.frame)
    other = load_sql(f"sqlite:///{sqlite_db}", "SELECT * FROM obs ORDER BY hour DESC")
    assert other.digest != ds.digest
    # relative to base_dir, as Terraform's paths are
    rel = load_sql("sqlite:///traffic.db", "SELECT * FROM obs ORDER BY hour", base_dir=str(tmp_path))
    assert rel.digest == ds.digest


def test_sqlite_errors_leave_nothing_behind(sqlite_db, tmp_path):
    url = f"sqlite:///{sqlite_db}"
    with pytest.raises(DatasetError, match="^query failed: no such table: nope$") as e:
        load_sql(url, "SELECT * FROM nope")
    assert e.value.field == "query"
    with pytest.raises(DatasetError, match="^query returned no rows$"):
        load_sql(url, "SELECT * FROM obs WHERE hour > 100")
    with pytest.raises(DatasetError, match="^a database source needs a query$"):
        load_source(url)
    with pytest.raises(DatasetError, match="^query failed: attempt to write a readonly database$"):
        load_sql(url, "DELETE FROM obs")
    assert sqlite3.connect(sqlite_db).execute("SELECT count(*) FROM obs").fetchone() == (3,)
    missing = tmp_path / "nope.db"
    with pytest.raises(DatasetError, match="no SQLite database at"):
        load_sql(f"sqlite:///{missing}", "SELECT 1")
    assert not missing.exists()  # a typo never creates an empty database


def test_redact_url():
    assert redact_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://h/db") == "postgresql://h/db"


def test_postgres_refused_connection_does_not_show_the_password():
    with pytest.raises(DatasetError) as e:
        load_sql("postgresql://u:s3cret@127.0.0.1:1/db", "SELECT 1")
    assert str(e.value).startswith("postgresql://u:***@127.0.0.1:1/db: cannot connect: ")
    assert "s3cret" not in str(e.value)


@pytest.mark.postgres
def test_postgres_query(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE obs (speed numeric(5,1), hour int, road text, rain boolean, seen timestamp)")
        conn.execute("INSERT INTO obs VALUES (51.5, 7, 'a1', true, '2024-05-01 07:00'), (40.0, NULL, NULL, false, NULL)")
    ds = load_sql(postgres_url, "SELECT * FROM obs ORDER BY speed DESC")
    assert ds.columns == [("speed", "float"), ("hour", "integer"), ("road", "string"), ("rain", "boolean"),
                          ("seen", "datetime")]
    assert ds.row_count == 2
    assert ds.digest == load_sql(postgres_url, "SELECT * FROM obs ORDER BY speed DESC").digest
    with pytest.raises(DatasetError, match='^query failed: relation "nope" does not exist'):
        load_sql(postgres_url, "SELECT * FROM nope")
    with pytest.raises(DatasetError, match="^query failed: cannot execute DELETE in a read-only transaction"):
        load_sql(postgres_url, "DELETE FROM obs")
    with pytest.raises(DatasetError, match="^query returned no rows$"):
        load_sql(postgres_url, "SELECT * FROM obs WHERE false")


def test_frame_digest_follows_values_not_representation():
    a = pd.DataFrame({"x": [0.1, None], "n": pd.array([1, None], dtype="Int64"), "s": ["a", None],
                      "t": pd.to_datetime(["2024-01-01", None]).as_unit("us")})
    b = a.copy()
    b["t"] = b["t"].dt.as_unit("ns")
    assert frame_digest(a) == frame_digest(b)
    c = a.copy()
    c.loc[0, "x"] = 0.1 + 1e-16
    d = a.copy()
    d.loc[1, "s"] = "None"
    assert len({frame_digest(a), frame_digest(c), frame_digest(d), frame_digest(a.iloc[::-1])}) == 4
