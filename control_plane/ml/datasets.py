"""Load a table from a file (CSV, Parquet, Excel) or a SQL query, and describe it.

Every loader returns a `Dataset`: a normalised DataFrame, its column types, row count and a
digest. Problems raise `DatasetError` with one message that says what is wrong and where
("data/traffic.csv: line 7: expected 5 fields, saw 6"); nothing is written anywhere, so a
failed load leaves nothing behind (SQLite files are opened read-only, PostgreSQL sessions are
read-only transactions).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import os
import re
import sqlite3
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import pandas as pd

from control_plane.errors import InvalidArgument

FORMATS = ("csv", "parquet", "excel")
COLUMN_TYPES = ("integer", "float", "boolean", "string", "datetime")

_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel", ".xlsm": "excel"}
# Strings that are entirely ISO 8601 dates/times become datetime columns (CSV has no date type).
_ISO_DATETIME = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"


class DatasetError(InvalidArgument, ValueError):
    """A dataset that cannot be loaded. `field` is the attribute at fault (for the API's
    INVALID_ARGUMENT details); str(err) is the message alone."""

    def __init__(self, message: str, field: str = "source"):
        self.message = message
        self.field = field
        super().__init__([(field, message)])

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    columns: list[tuple[str, str]]  # (name, one of COLUMN_TYPES), in table order
    row_count: int
    digest: str  # "sha256:<hex>": of the file's bytes, or of the query result's canonical form


# ---------------------------------------------------------------- formats and types


def format_from_path(path: str) -> str:
    """'csv' | 'parquet' | 'excel' from a file name's extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in _EXTENSIONS:
        known = ", ".join(sorted(_EXTENSIONS))
        raise DatasetError(f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; use one of {known}")
    return _EXTENSIONS[ext]


def column_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def describe(df: pd.DataFrame) -> list[tuple[str, str]]:
    """[(column, type)] with type one of COLUMN_TYPES."""
    return [(str(name), column_type(df[name])) for name in df.columns]


def frame_digest(df: pd.DataFrame) -> str:
    """sha256 of a canonical form that depends on the values, not on pandas' text formatting:
    the (column, type) header as JSON and the row count, then per column its missing-value mask
    and its values (little-endian int64/float64, UTC nanoseconds, or UTF-8 text as JSON)."""
    h = hashlib.sha256()
    h.update(json.dumps([describe(df), len(df)]).encode())
    for name in df.columns:
        col = df[name]
        kind = column_type(col)
        missing = col.isna().to_numpy(dtype=bool)
        h.update(np.packbits(missing).tobytes())
        if kind == "float":
            h.update(col.to_numpy(dtype="<f8", na_value=0.0).tobytes())
        elif kind in ("integer", "boolean"):
            h.update(col.to_numpy(dtype="<i8", na_value=0).tobytes())
        elif kind == "datetime":
            if col.dt.tz is not None:
                col = col.dt.tz_convert("UTC").dt.tz_localize(None)
            h.update(col.to_numpy(dtype="datetime64[ns]").view("<i8").tobytes())
        else:
            h.update(json.dumps([None if m else str(v) for v, m in zip(col.tolist(), missing)]).encode())
    return "sha256:" + h.hexdigest()


def _normalise_object(series: pd.Series) -> pd.Series:
    """Give an object column (mixed Python values from SQL, Excel, Parquet, or CSV booleans with
    gaps) one honest dtype, so describe() and the encoders see a uniform column."""
    values = series.dropna()
    if values.empty:
        return series.astype("float64")  # all missing: a float column of NaN
    kinds = {type(v) for v in values}
    if kinds <= {bool}:
        return series.astype("boolean")
    if kinds <= {int}:
        return series.astype("Int64") if series.isna().any() else series.astype("int64")
    if kinds <= {int, float, decimal.Decimal}:
        return series.astype("float64")
    if kinds <= {dt.datetime, dt.date, pd.Timestamp}:
        try:
            return pd.to_datetime(series)
        except (ValueError, TypeError):
            pass
    return series.astype("str")


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    for name in df.columns:
        col = df[name]
        if col.dtype == object:
            col = _normalise_object(col)
        if pd.api.types.is_string_dtype(col.dtype) and not isinstance(col.dtype, pd.CategoricalDtype):
            present = col.dropna()
            if not present.empty and present.str.fullmatch(_ISO_DATETIME).all():
                try:
                    col = pd.to_datetime(col, format="ISO8601")
                except (ValueError, TypeError):
                    pass  # e.g. mixed time zones: leave it as text
        df[name] = col
    return df


def _finish(df: pd.DataFrame, where: str, digest: str) -> Dataset:
    if len(df.columns) == 0:
        raise DatasetError(f"{where}: no columns")
    seen: set[str] = set()
    for name in (str(c) for c in df.columns):
        if name in seen:
            raise DatasetError(f"{where}: column {name!r} appears more than once")
        seen.add(name)
    if len(df) == 0:
        raise DatasetError(f"{where}: no rows")
    df = _normalise(df).reset_index(drop=True)
    return Dataset(frame=df, columns=describe(df), row_count=len(df), digest=digest)


# ---------------------------------------------------------------- files


def _check_csv(text: str, where: str) -> None:
    """pandas silently pads short rows and reports long ones in its own words; this pass gives
    every malformed row the same message with its line number."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        while header == []:  # leading blank lines
            header = next(reader, None)
        if header is None:
            raise DatasetError(f"{where}: file is empty")
        for i, name in enumerate(header, 1):
            if not name.strip():
                raise DatasetError(f"{where}: line {reader.line_num}: column {i} of the header has no name")
        if len(set(header)) != len(header):
            dup = next(n for n in header if header.count(n) > 1)
            raise DatasetError(f"{where}: line {reader.line_num}: column {dup!r} appears more than once in the header")
        for row in reader:
            if row and len(row) != len(header):
                raise DatasetError(f"{where}: line {reader.line_num}: expected {len(header)} fields, saw {len(row)}")
    except csv.Error as e:
        why = "a quoted field is never closed" if "unexpected end of data" in str(e) else str(e)
        raise DatasetError(f"{where}: line {reader.line_num}: {why}") from None


def _read_csv(data: bytes, where: str) -> pd.DataFrame:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DatasetError(f"{where}: line {line}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise DatasetError(f"{where}: file is empty")
    _check_csv(text, where)
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, ValueError) as e:  # what _check_csv did not foresee
        raise DatasetError(f"{where}: {' '.join(str(e).split())}") from None


def _read_parquet(data: bytes, where: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a broken file
        raise DatasetError(f"{where}: not a readable Parquet file: {' '.join(str(e).split())}") from None


def _read_excel(data: bytes, where: str) -> pd.DataFrame:
    try:
        return pd.read_excel(io.BytesIO(data), sheet_name=0, engine="openpyxl")
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException, ...
        raise DatasetError(f"{where}: not a readable Excel (.xlsx) file: {' '.join(str(e).split()) or type(e).__name__}") from None


_READERS = {"csv": _read_csv, "parquet": _read_parquet, "excel": _read_excel}


def load_bytes(data: bytes, fmt: str, name: str = "data") -> Dataset:
    """Parse a file's bytes in the given format; `name` (the path the user wrote) prefixes messages.
    The digest is sha256 of the bytes themselves."""
    if fmt not in _READERS:
        raise DatasetError(f"{name}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not data:
        raise DatasetError(f"{name}: file is empty")
    df = _READERS[fmt](data, name)
    return _finish(df, name, "sha256:" + hashlib.sha256(data).hexdigest())


def load_file(path: str, name: str | None = None, fmt: str | None = None) -> Dataset:
    name = name or path
    fmt = fmt or format_from_path(name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{name}: is a directory, not a file") from None
    except OSError as e:
        raise DatasetError(f"{name}: cannot read: {e.strerror}") from None
    return load_bytes(data, fmt, name)


# ---------------------------------------------------------------- SQL


def redact_url(url: str) -> str:
    """The URL without its password: messages must never carry secrets."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL": then nothing after the scheme is repeated (it was an INTERNAL)
        return url.split("://", 1)[0] + "://…"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def sqlite_path(url: str, base_dir: str = ".") -> str | None:
    """The database path of a sqlite:///relative or sqlite:////absolute URL, else None."""
    if not url.startswith("sqlite://"):
        return None
    path = unquote(url[len("sqlite://"):])
    if path.startswith("/"):
        path = path[1:]  # sqlite:///rel -> "rel", sqlite:////abs -> "/abs"
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def _frame_from_rows(names: list[str], rows: list[tuple]) -> pd.DataFrame:
    # Build column by column as objects, so _normalise decides every type the same way for
    # SQLite and PostgreSQL (pandas' own inference would turn Decimal columns into objects).
    return pd.DataFrame({n: pd.Series([r[i] for r in rows], dtype=object) for i, n in enumerate(names)}, columns=names)


def _query_sqlite(path: str, query: str, where: str) -> tuple[list[str], list[tuple]]:
    if not os.path.isfile(path):
        raise DatasetError(f"{where}: no SQLite database at {path}")
    try:
        # mode=ro: never create or change the file, whatever the query says.
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise DatasetError(f"{where}: cannot open the SQLite database: {e}") from None
    try:
        cur = conn.execute(query)
        if cur.description is None:
            raise DatasetError("query returned no result set; give a SELECT", field="query")
        return [d[0] for d in cur.description], cur.fetchall()
    except sqlite3.Error as e:
        raise DatasetError(f"query failed: {e}", field="query") from None
    finally:
        conn.close()


def _query_postgres(url: str, query: str, where: str) -> tuple[list[str], list[tuple]]:
    import psycopg

    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as e:
        # libpq quotes a URL it cannot parse whole, password included
        raise DatasetError(f"{where}: cannot connect: {' '.join(str(e).replace(url, where).split())}") from None
    try:
        conn.read_only = True  # a query can read, never change the database
        with conn.cursor() as cur:
            cur.execute(query)
            if cur.description is None:
                raise DatasetError("query returned no result set; give a SELECT", field="query")
            return [d.name for d in cur.description], cur.fetchall()
    except psycopg.Error as e:
        raise DatasetError(f"query failed: {' '.join(str(e).split())}", field="query") from None
    finally:
        conn.close()


def load_sql(url: str, query: str, base_dir: str = ".") -> Dataset:
    """Run a read-only query against sqlite:///path (or a *.db/*.sqlite path) or postgresql://...;
    the digest is of the result's canonical form (frame_digest)."""
    where = redact_url(url)
    if not query or not query.strip():
        raise DatasetError("a database source needs a query", field="query")
    path = sqlite_path(url, base_dir)
    if path is None and not url.startswith(("postgresql://", "postgres://")) and url.lower().endswith((".db", ".sqlite", ".sqlite3")):
        path = url if os.path.isabs(url) else os.path.join(base_dir, url)
    if path is not None:
        names, rows = _query_sqlite(path, query, where)
    elif url.startswith(("postgresql://", "postgres://")):
        names, rows = _query_postgres(url, query, where)
    else:
        raise DatasetError(f"{where}: not a database URL; use sqlite:///path or postgresql://host/db")
    if not rows:
        raise DatasetError("query returned no rows", field="query")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DatasetError(f"query returns column {dup!r} more than once; name it with AS", field="query")
    df = _frame_from_rows(names, rows)
    df = _normalise(df)
    return Dataset(frame=df, columns=describe(df), row_count=len(df), digest=frame_digest(df))


# ---------------------------------------------------------------- one entry point


def load_source(source: str, query: str | None = None, base_dir: str = ".") -> Dataset:
    """What `stratum_dataset.source` names: file://path (relative to base_dir), a bare file path,
    sqlite:///path or postgresql://... (these two with `query`)."""
    if not source or not source.strip():
        raise DatasetError("source is empty")
    if source.startswith(("sqlite://", "postgresql://", "postgres://")):
        return load_sql(source, query or "", base_dir)
    if query:
        raise DatasetError("a query applies only to a database source (sqlite:///..., postgresql://...)", field="query")
    name = source[len("file://"):] if source.startswith("file://") else source
    if re.match(r"^[a-z][a-z0-9+.-]*://", name):
        raise DatasetError(f"unsupported source {source!r}; use file://path, sqlite:///path or postgresql://...")
    path = name if os.path.isabs(name) else os.path.join(base_dir, name)
    return load_file(path, name=name)
