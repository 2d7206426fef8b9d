"""Resource `stratum_dataset`: a named, versioned table from a local file or a SQL query.

File sources (`file://<path>`, relative to Terraform's working directory, which is
the provider's cwd) are hashed at plan time: the sha256 goes into `file_sha256`, so
an edited file shows up in `terraform plan` as an in-place update even though the
configuration did not change. Apply uploads the bytes (UploadBlob, in chunks,
skipped when GetBlob already has them) and then calls CreateDataset/UpdateDataset,
which load and describe the rows.

Database sources (`sqlite:///<path>`, `postgresql://...`) are queried by the control
plane: a relative SQLite path is made absolute against the provider's cwd before it
is sent. Terraform cannot see a database's content change; Read refreshes what the
control plane last loaded, and `terraform apply -replace` or a changed query reloads.

The name is the natural key: CreateDataset is idempotent on name + spec, so a
retried apply never loads twice, and `terraform import` takes the name.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote, unquote, urlsplit

import grpc
from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, Resource, State, UpdateContext
from tf.schema import Attribute, Schema
from tf.types import String, Unknown
from tf.utils import Diagnostics

from provider.client import ApiError, Client
from provider.common import as_configured, client_of, delete_by_name, get_for_import, name_taken, read_by_name, wholly_known
from provider.errors import register_secret
from provider.nested import NestedAttribute, Nesting, Number
from stratum.v1 import datasets_pb2

# The user-settable attributes; the server's field violations name these.
SPEC_FIELDS = ("name", "source", "format", "query", "target")
# Changing one of these (or the file's bytes) may change the rows: digest, columns,
# row_count and version are known again only after apply.
CONTENT_FIELDS = ("source", "format", "query")
COMPUTED_CONTENT = ("digest", "columns", "row_count", "version")

FILE, SQLITE = "file://", "sqlite://"
DB_SCHEMES = (SQLITE, "postgresql://", "postgres://")
CHUNK = 1024 * 1024  # UploadBlob takes chunks of at most 4 MiB
# Deadlines (seconds) for calls that do real work: loading a big file or running a query.
LOAD_TIMEOUT_S = 600.0
UPLOAD_MIN_TIMEOUT_S = 60.0
UPLOAD_BYTES_PER_S = 5 * 1024 * 1024  # a pessimistic rate, to size the upload deadline


# ---------------------------------------------------------------- sources


def is_file_source(source: Any) -> bool:
    return isinstance(source, str) and source.startswith(FILE)


def local_path(source: str, cwd: Optional[str] = None) -> str:
    """file://data/x.csv -> <cwd>/data/x.csv; file:///abs/x.csv -> /abs/x.csv."""
    path = os.path.expanduser(source[len(FILE):])
    return os.path.normpath(os.path.join(cwd or os.getcwd(), path))


def resolved_source(source: str, cwd: Optional[str] = None) -> str:
    """The source as sent to the control plane.

    A relative SQLite path (sqlite:///data/x.db) is made absolute against the
    provider's cwd (sqlite:////work/tf/data/x.db): the control plane runs
    elsewhere and would otherwise resolve it against its own directory. Files are
    sent as written: their bytes travel in the upload, the path only names the
    format and words the control plane's messages.
    """
    if not source.startswith(SQLITE):
        return source
    rest = source[len(SQLITE):]
    path = rest[1:] if rest.startswith("/") else rest
    if not path or path.startswith("/"):
        return source  # already absolute (or empty: the control plane says what is wrong)
    base = quote(cwd or os.getcwd(), safe="/")
    return SQLITE + "/" + base.rstrip("/") + "/" + path


def source_as_configured(server_source: str, prior: Any, cwd: Optional[str] = None) -> str:
    """The control plane's source in the form the configuration wrote it.

    Same resolved source: keep what the user wrote. On import (nothing written yet)
    an absolute SQLite path under the working directory is shown relative to it, the
    way a configuration in that directory writes it.
    """
    if isinstance(prior, str):
        if prior == server_source or resolved_source(prior, cwd) == server_source:
            return prior
        return server_source
    if server_source.startswith(SQLITE + "//"):
        path = unquote(server_source[len(SQLITE) + 1:])
        base = (cwd or os.getcwd()).rstrip("/") + "/"
        if path.startswith(base) and len(path) > len(base):
            return SQLITE + "/" + quote(path[len(base):], safe="/")
    return server_source


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def upload_messages(path: str, sha256: str, size: int) -> Callable[[], Iterator[datasets_pb2.UploadBlobRequest]]:
    """UploadBlob's request stream (header, then ≤ CHUNK-byte chunks), made afresh for each try."""

    def messages() -> Iterator[datasets_pb2.UploadBlobRequest]:
        yield datasets_pb2.UploadBlobRequest(header=datasets_pb2.BlobHeader(sha256=sha256, size=size))
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                yield datasets_pb2.UploadBlobRequest(chunk=block)

    return messages


def _url_password(source: str) -> Optional[str]:
    if not source.startswith(DB_SCHEMES[1:]):
        return None
    try:
        return urlsplit(source).password
    except ValueError:
        return None


class LocalFileError(Exception):
    """A file source whose file cannot be used; str() says why, naming the path."""

    def __init__(self, summary: str, detail: str):
        super().__init__(detail)
        self.summary = summary

    def report(self, diags: Diagnostics) -> None:
        diags.add_error(self.summary, str(self), path=["source"])


def inspect_file(source: str) -> tuple[str, str, int]:
    """(absolute path, sha256 hex, size) of a file source's file, or LocalFileError."""
    written = source[len(FILE):]
    if not written:
        raise LocalFileError("Invalid source", "file:// needs a path, e.g. file://data/traffic.csv.")
    path = local_path(source)
    relative = not os.path.isabs(os.path.expanduser(written))
    if not os.path.exists(path):
        hint = " (a relative path is resolved against the Terraform working directory)" if relative else ""
        raise LocalFileError("Local file not found", f"{written}: no such file: {path}{hint}.")
    if os.path.isdir(path):
        raise LocalFileError("Invalid source", f"{written}: {path} is a directory, not a file.")
    try:
        size = os.path.getsize(path)
        digest = sha256_file(path)
    except OSError as e:
        raise LocalFileError("Cannot read the local file", f"{written}: cannot read {path}: {e.strerror or e}.") from None
    if size == 0:
        raise LocalFileError("Invalid source", f"{written}: file is empty ({path}); a dataset needs a header and at least one row.")
    return path, digest, size


# ---------------------------------------------------------------- state


def _spec(values: State, blob_sha256: Optional[str]) -> datasets_pb2.DatasetSpec:
    return datasets_pb2.DatasetSpec(
        name=values["name"],
        source=resolved_source(values["source"]),
        format=values.get("format") or "",
        query=values.get("query") or "",
        target=values.get("target") or "",
        blob_sha256=blob_sha256 or "",
    )


def _state(d: datasets_pb2.Dataset, prior: Optional[State]) -> State:
    """Server object -> state, in the form the configuration (prior state/plan) wrote it."""
    prior = prior or {}
    spec = d.spec
    return {
        "id": spec.name,
        "name": spec.name,
        "source": source_as_configured(spec.source, prior.get("source")),
        "format": as_configured(spec.format, prior.get("format"), ""),
        "query": as_configured(spec.query, prior.get("query"), ""),
        "target": as_configured(spec.target, prior.get("target"), ""),
        "file_sha256": spec.blob_sha256 or None,
        "digest": d.digest,
        "columns": [{"name": c.name, "type": c.type} for c in d.columns],
        "row_count": d.row_count,
        "version": d.version,
    }


class DatasetResource(Resource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "dataset"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="A dataset: a named, versioned table loaded by the control plane from a local file or a SQL query.",
            attributes=[
                Attribute("id", String(), computed=True, description="Same as `name`."),
                Attribute("name", String(), required=True, requires_replace=True, description="Unique name (lowercase letters, digits, `-`). Changing it replaces the dataset."),
                Attribute("source", String(), required=True, description="Where the rows come from: `file://<path>` (relative to the Terraform working directory, or absolute), `sqlite:///<path>` or `postgresql://...` (with `query`)."),
                Attribute("format", String(), optional=True, description="File format: `csv`, `parquet` or `excel`; inferred from the file's extension when unset. Files only."),
                Attribute("query", String(), optional=True, description="SQL query for database sources."),
                Attribute("target", String(), optional=True, description="Column models will predict; checked to exist."),
                Attribute("file_sha256", String(), computed=True, description="sha256 (hex) of the local file, computed at plan time (file sources; null for queries)."),
                Attribute("digest", String(), computed=True, description="`sha256:<hex>` of the content: the file's bytes, or a canonical form of the query's rows."),
                NestedAttribute(
                    "columns",
                    [
                        Attribute("name", String(), computed=True, description="Column name as in the source."),
                        Attribute("type", String(), computed=True, description="`integer`, `float`, `boolean`, `string` or `datetime`."),
                    ],
                    Nesting.LIST,
                    computed=True,
                    description="Columns with their types, in source order.",
                ),
                Attribute("row_count", Number(), computed=True, description="Number of rows."),
                Attribute("version", Number(), computed=True, description="Starts at 1; increases by one each time the content (`digest`) changes."),
            ],
        )

    # ---- plan ----

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> Optional[State]:
        diags = ctx.diagnostics
        if current is None:
            planned["id"] = planned["name"]  # known at plan time: the name is the id
        source = planned.get("source")
        file_ok = True
        if source is Unknown:
            planned["file_sha256"] = Unknown
        elif is_file_source(source) and source != FILE:  # a bare file:// is the server's to explain
            try:
                _, planned["file_sha256"], _ = inspect_file(source)
            except LocalFileError as e:
                e.report(diags)
                file_ok = False
        else:
            planned["file_sha256"] = None  # a query: no local file
            file_ok = not is_file_source(source)
        if isinstance(source, str):
            password = _url_password(source)
            if password:
                register_secret(password)
                diags.add_warning(
                    "Database password in source",
                    "The password in this URL is kept in the Terraform state and shown in plans. Leave it out of the "
                    "URL and give it to the control plane instead (PGPASSWORD or ~/.pgpass where it runs).",
                    path=["source"],
                )

        if current is not None:
            content_changed = bool(ctx.changed_fields & set(CONTENT_FIELDS)) or planned.get("file_sha256") != current.get("file_sha256")
            if content_changed:
                for k in COMPUTED_CONTENT:
                    planned[k] = Unknown  # known once the control plane has loaded the new content
            if not content_changed and not ctx.changed_fields & set(SPEC_FIELDS):
                return planned
        self._check_with_server(diags, planned, file_ok)
        return planned

    def _check_with_server(self, diags: Diagnostics, planned: State, file_ok: bool) -> None:
        """ValidateDataset: an unknown format or a malformed source fails `terraform plan`."""
        client = getattr(self.provider, "client", None)
        values = {k: planned.get(k) for k in SPEC_FIELDS}
        if client is None or not wholly_known(values):
            return  # unknown config: checked again when known, and by the server on apply
        blob = planned.get("file_sha256")
        if is_file_source(values["source"]) and not (file_ok and isinstance(blob, str)):
            blob = "0" * 64  # the file's own problem is reported already; let the server judge the rest
        try:
            client.call("ValidateDataset", _spec(values, blob), action=f"checking dataset {values['name']!r}", attributes=SPEC_FIELDS)
        except ApiError as e:
            e.report(diags)

    # ---- apply ----

    def _upload(self, diags: Diagnostics, client: Client, planned: State) -> Optional[str]:
        """For a file source: make sure the control plane holds the file's bytes; their sha256.
        None (with diagnostics) when it cannot; "" for database sources."""
        source = planned["source"]
        if not is_file_source(source):
            return ""
        try:
            path, sha, size = inspect_file(source)
        except LocalFileError as e:
            e.report(diags)
            return None
        if isinstance(planned.get("file_sha256"), str) and planned["file_sha256"] != sha:
            diags.add_error(
                "Local file changed since plan",
                f"{path} changed after `terraform plan` (sha256 {planned['file_sha256'][:12]}… planned, {sha[:12]}… now). "
                "Run terraform plan (or apply) again to load the current file.",
                path=["source"],
            )
            return None
        try:
            client.call("GetBlob", datasets_pb2.GetBlobRequest(sha256=sha), action=f"checking whether {path} is uploaded")
            return sha  # stored already (same bytes uploaded before): nothing to send
        except ApiError as e:
            if e.code != grpc.StatusCode.NOT_FOUND:
                e.report(diags)
                return None
        try:
            client.call("UploadBlob", upload_messages(path, sha, size), action=f"uploading {path}",
                        timeout=max(UPLOAD_MIN_TIMEOUT_S, size / UPLOAD_BYTES_PER_S))
        except ApiError as e:
            if e.code == grpc.StatusCode.INVALID_ARGUMENT:
                # The control plane checks the bytes against the announced sha256 and size: the file
                # changed while it was read, and nothing was stored.
                why = "; ".join(d.detail for d in e.diagnostics if d.detail)
                diags.add_error("Local file changed during upload", f"{path} changed while it was uploaded ({why}). Nothing was stored: run terraform apply again.", path=["source"])
            else:
                for d in e.diagnostics:
                    d.path = ["source"]
                e.report(diags)
            return None
        return sha

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        client = client_of(self.provider, ctx.diagnostics)
        if client is None:
            return None
        blob = self._upload(ctx.diagnostics, client, planned)
        if blob is None:
            return None
        name = planned["name"]
        try:
            d = client.call("CreateDataset", _spec(planned, blob), action=f"creating dataset {name!r}", attributes=SPEC_FIELDS, timeout=LOAD_TIMEOUT_S)
        except ApiError as e:
            if e.code == grpc.StatusCode.ALREADY_EXISTS:
                name_taken(ctx.diagnostics, "dataset", name, "other arguments or another file")
            else:
                e.report(ctx.diagnostics)
            return None  # the control plane keeps no dataset from a failed load: nothing to record
        return _state(d, planned)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        return read_by_name(self.provider, ctx.diagnostics, current, "GetDataset", datasets_pb2.GetDatasetRequest, "dataset", _state)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        client = client_of(self.provider, ctx.diagnostics)
        if client is None:
            return current
        blob = self._upload(ctx.diagnostics, client, planned)
        if blob is None:
            return current
        name = planned["name"]
        try:
            d = client.call("UpdateDataset", _spec(planned, blob), action=f"updating dataset {name!r}", attributes=SPEC_FIELDS, timeout=LOAD_TIMEOUT_S)
        except ApiError as e:
            if e.code == grpc.StatusCode.NOT_FOUND:
                ctx.diagnostics.add_error(
                    "Dataset deleted outside Terraform",
                    f"The control plane no longer has dataset {name!r}. Run terraform apply again to create it.",
                )
            else:
                e.report(ctx.diagnostics)
            return current  # the control plane kept the previous version
        return _state(d, planned)

    def delete(self, ctx: DeleteContext, current: State):
        return delete_by_name(self.provider, ctx.diagnostics, current, "DeleteDataset", datasets_pb2.DeleteDatasetRequest, "dataset")

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        d = get_for_import(self.provider, ctx.diagnostics, id, "GetDataset", datasets_pb2.GetDatasetRequest, "dataset")
        return None if d is None else _state(d, None)
