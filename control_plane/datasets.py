"""Datasets: a named, versioned table loaded from an uploaded file or a SQL query.

The rows a dataset describes are kept in the artifact store (the uploaded file
itself, or a Parquet snapshot of a query's result), so a model trained later
sees exactly the version that was described, even if the database changed.
"""

from __future__ import annotations

import io
import time

from google.protobuf import json_format

from control_plane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from control_plane.packaging.store import ArtifactNotFound, ArtifactStore
from control_plane.store import DatasetRow, Store
from stratum.digests import HEX64 as _HEX64
from stratum.validation import MAX_TEXT, check_name, check_text, shown
from stratum.v1 import datasets_pb2 as ds

FORMATS = ("csv", "parquet", "excel")
_DB_SCHEMES = ("sqlite://", "postgresql://", "postgres://")
MAX_QUERY = 64 * 1024  # characters of SQL


def _ml():
    """control_plane.ml.datasets (pandas, pyarrow), imported on first use rather than at start-up."""
    from control_plane.ml import datasets

    return datasets


def validate_spec(spec: ds.DatasetSpec) -> list[tuple[str, str]]:
    """Problems knowable without loading anything (plan time)."""
    problems = check_name(spec.name) + check_text(spec.query, "query", MAX_QUERY) + check_text(spec.target, "target")
    if spec.format and spec.format not in FORMATS:
        problems.append(("format", f"unknown format {shown(spec.format)}: expected one of {', '.join(FORMATS)}"))
    if len(spec.source) > MAX_TEXT:
        problems += check_text(spec.source, "source")
    elif spec.source.startswith("file://"):
        path = spec.source[len("file://"):]
        if not path:
            problems.append(("source", "file:// needs a path, e.g. file://data/traffic.csv"))
        elif not spec.format:
            try:
                _ml().format_from_path(path)
            except ValueError as e:
                problems.append(("source", str(e)))
        if spec.query:
            problems.append(("query", "a query applies only to a database source (sqlite:///..., postgresql://...)"))
        if not _HEX64.match(spec.blob_sha256):
            problems.append(("blob_sha256", "a file source needs the sha256 of the uploaded file (UploadBlob first)"))
    elif spec.source.startswith(_DB_SCHEMES):
        if not spec.query.strip():
            problems.append(("query", "a database source needs a query"))
        if spec.format:
            problems.append(("format", "format applies only to file sources"))
    else:
        where = _ml().redact_url(spec.source) if "://" in spec.source else spec.source
        problems.append(("source", f"unsupported source {shown(where)}: use file://path, sqlite:///path or postgresql://..."))
    return problems


def _spec_json(spec: ds.DatasetSpec) -> str:
    return json_format.MessageToJson(spec, indent=None, sort_keys=True)


class Datasets:
    def __init__(self, store: Store, artifacts: ArtifactStore):
        self.store, self.artifacts = store, artifacts

    def _load(self, spec: ds.DatasetSpec) -> tuple[_ml().Dataset, str, str]:
        """(described dataset, blob holding its rows, that blob's format)."""
        problems = validate_spec(spec)
        if problems:
            raise InvalidArgument(problems)
        if spec.source.startswith("file://"):
            path = spec.source[len("file://"):]
            fmt = spec.format or _ml().format_from_path(path)
            try:
                data = self.artifacts.open(spec.blob_sha256).read()
            except ArtifactNotFound:
                raise FailedPrecondition(f"file {path} (sha256 {spec.blob_sha256[:12]}…) was not uploaded: UploadBlob first") from None
            loaded = _ml().load_bytes(data, fmt, name=path)
            blob, blob_format = spec.blob_sha256, fmt
        else:
            loaded = _ml().load_sql(spec.source, spec.query)
            buf = io.BytesIO()
            loaded.frame.to_parquet(buf, index=False)
            blob, blob_format = self.artifacts.put_stream([buf.getvalue()]), "parquet"
        names = [c for c, _ in loaded.columns]
        if spec.target and spec.target not in names:
            raise InvalidArgument([("target", f"column {shown(spec.target)} is not in the dataset; its columns are: {', '.join(names)}")])
        return loaded, blob, blob_format

    def create(self, spec: ds.DatasetSpec) -> DatasetRow:
        existing = self.store.get_dataset(spec.name)
        if existing is not None:
            if existing.spec == _spec_json(spec):
                return existing
            raise AlreadyExists(f"dataset {shown(spec.name)} already exists with a different spec")
        loaded, blob, fmt = self._load(spec)
        now = time.time()
        row = DatasetRow(spec.name, _spec_json(spec), loaded.digest, blob, fmt, [list(c) for c in loaded.columns],
                         loaded.row_count, 1, now, now)
        self.store.insert_dataset(row)
        return row

    def get(self, name: str) -> DatasetRow:
        row = self.store.get_dataset(name)
        if row is None:
            raise NotFound(f"dataset {shown(name)} not found")
        return row

    def update(self, spec: ds.DatasetSpec) -> DatasetRow:
        row = self.get(spec.name)
        loaded, blob, fmt = self._load(spec)
        if loaded.digest != row.digest:
            row.version += 1
        row.spec, row.digest, row.data_sha256, row.data_format = _spec_json(spec), loaded.digest, blob, fmt
        row.columns, row.row_count, row.updated_at = [list(c) for c in loaded.columns], loaded.row_count, time.time()
        self.store.update_dataset(row)
        return row

    def delete(self, name: str) -> None:
        self.store.delete_dataset(name)

    def add_version(self, name: str, blob_sha256: str, fmt: str, mode: str = "replace") -> DatasetRow:
        """A new version from a file in the artifact store (a batch run's output): its rows replace
        the current ones, or with mode "append" are added to them (same columns, any order). The
        spec stays as configured; only content, digest and version change. Nothing changes when
        the file does not load or its columns do not match (DatasetError says why)."""
        row = self.get(name)
        try:
            data = self.artifacts.open(blob_sha256).read()
        except ArtifactNotFound:
            raise FailedPrecondition(f"output {blob_sha256[:12]}… was not uploaded") from None
        new = _ml().load_bytes(data, fmt, name=f"output for dataset {name}")
        names = [c for c, _ in row.columns]
        if sorted(c for c, _ in new.columns) != sorted(names):
            raise _ml().DatasetError(
                f"output for dataset {name}: columns {', '.join(c for c, _ in new.columns)} do not match the "
                f"dataset's {', '.join(names)}", field="outputs.dataset")
        if mode == "append":
            import pandas as pd

            frame = pd.concat([self.frame(name), new.frame[names]], ignore_index=True)
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            loaded = _ml().load_bytes(buf.getvalue(), "parquet", name)
            blob, blob_format = self.artifacts.put_stream([buf.getvalue()]), "parquet"
            digest = _ml().frame_digest(loaded.frame)
        else:
            loaded, blob, blob_format, digest = new, blob_sha256, fmt, new.digest
        if digest != row.digest:
            row.version += 1
        row.digest, row.data_sha256, row.data_format = digest, blob, blob_format
        row.columns, row.row_count, row.updated_at = [list(c) for c in loaded.columns], loaded.row_count, time.time()
        self.store.update_dataset(row)
        return row

    def frame(self, name: str):
        """The rows of the dataset's current version, as a DataFrame (for training)."""
        row = self.get(name)
        return _ml().load_bytes(self.artifacts.open(row.data_sha256).read(), row.data_format, name).frame


def to_proto(row: DatasetRow) -> ds.Dataset:
    out = ds.Dataset(digest=row.digest, row_count=row.row_count, version=row.version,
                     columns=[ds.Column(name=n, type=t) for n, t in row.columns])
    json_format.Parse(row.spec, out.spec)
    out.created_at.FromNanoseconds(int(row.created_at * 1e9))
    out.updated_at.FromNanoseconds(int(row.updated_at * 1e9))
    return out
