"""gRPC servicers: validate input, call the service layer, map errors (see errors.rpc)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc

from control_plane import join_tokens as jt
from control_plane.api.auth import node_id_of
from control_plane.api.errors import rpc, to_status
from control_plane.errors import InvalidArgument, NotFound, StratumError, Unauthenticated
from control_plane import datasets as dsets
from control_plane.datasets import Datasets
from control_plane.join_tokens import JoinTokens, validate_spec
from control_plane.packaging.store import DigestMismatch
from control_plane.nodes import NodeRegistry
from control_plane.models import Models
from control_plane.reconcile import Reconciler
from control_plane.services import Services
from stratum.v1 import models_pb2 as m
from stratum import __version__
from stratum.digests import HEX64
from stratum.durations import format_duration
from stratum.logs import event
from stratum.validation import (MAX_REPLICAS, MAX_TEXT, check_name, check_number, check_preferences, check_requirements,
                                check_text, shown)
from stratum.v1 import control_plane_pb2 as cp, control_plane_pb2_grpc as cp_grpc
from stratum.v1 import datasets_pb2 as ds
from stratum.v1 import node_agent_pb2 as na, node_agent_pb2_grpc as na_grpc
from stratum.v1 import access_pb2 as ac
from stratum.v1 import apps_pb2 as ap
from stratum.v1 import pools_pb2 as pl

MAX_CHUNK = 4 * 1024 * 1024
MAX_OUTPUT = 4 * 1024 ** 3  # bytes of one run's output file
MAX_BLOB = 64 * 1024 ** 3  # bytes in one upload (a dataset file); the chunks are held in memory until stored

log = logging.getLogger("stratum.api")


def require_name(name: str, field: str = "name") -> None:
    """INVALID_ARGUMENT for an empty or malformed name: Delete* of "" used to answer OK, hiding a
    missing attribute (deleting a well-formed name that does not exist stays OK: idempotent)."""
    problems = check_name(name, field)
    if problems:
        raise InvalidArgument(problems)


def known_name(name: str, what: str) -> None:
    """NOT_FOUND, with a short message, for a name nothing can have (Get* of an 8 KB name)."""
    if check_name(name):
        raise NotFound(f"{what} {shown(name)} not found")


def check_what_if(q: m.PlacementQuery) -> list[tuple[str, str]]:
    """A what-if needs something to place: some requirement, or a model (whose measured memory
    applies); `PlacementQuery {}` used to place a default replica. Every number within bounds."""
    problems = check_requirements(q.requirements) + check_preferences(q.placement)
    problems += check_number(q.replicas, "replicas", 0, MAX_REPLICAS, integer=True, hint="0 for 1")
    if q.model:
        problems += check_name(q.model, "model")
    elif q.requirements == m.Requirements():
        problems.append(("requirements", "give at least one requirement (cpu, memory_mb, gpu, tiers, labels, ...) or a model"))
    return problems


class ControlPlaneServicer(cp_grpc.ControlPlaneServicer):
    def __init__(self, nodes: NodeRegistry, tokens: JoinTokens, datasets: Datasets, models: Models, services: Services,
                 store_kind: str, node_endpoint: str, interval: float, timeout: float, pools=None, apps=None,
                 reconciler: Reconciler | None = None, history=None, access_tokens=None, leadership=None):
        self.nodes, self.tokens, self.datasets = nodes, tokens, datasets
        self.pools, self.apps = pools, apps
        self.reconciler, self.history, self.access_tokens = reconciler, history, access_tokens
        self.leadership = leadership
        self.models, self.services = models, services
        self.store_kind, self.node_endpoint = store_kind, node_endpoint
        self.interval, self.timeout = interval, timeout

    @rpc
    async def GetStatus(self, request, context):
        lead = self.leadership
        return cp.GetStatusResponse(version=__version__, store=self.store_kind,
                                    nodes_by_state=await asyncio.to_thread(self.nodes.counts),
                                    node_agent_endpoint=self.node_endpoint,
                                    heartbeat_interval=format_duration(self.interval), node_timeout=format_duration(self.timeout),
                                    leader=(lead.api if lead.is_leader else lead.leader_api) if lead else "",
                                    leading=bool(lead and lead.is_leader))

    @rpc
    async def ListNodes(self, request, context):
        return cp.ListNodesResponse(nodes=await asyncio.to_thread(self.nodes.list, request))

    @rpc
    async def GetNode(self, request, context):
        if not request.id_or_name:
            raise InvalidArgument([("id_or_name", "give a node id or name")])
        return await asyncio.to_thread(self.nodes.get, request.id_or_name)

    def _proto(self, row):
        return jt.to_proto(row, self.tokens.secret_text(row))

    @rpc
    async def ValidateJoinToken(self, request, context):
        problems = validate_spec(request)
        if problems:
            raise InvalidArgument(problems)
        return cp.ValidateResponse()

    @rpc
    async def CreateJoinToken(self, request, context):
        row = await asyncio.to_thread(self.tokens.create, request)
        event(log, "join token created", name=row.name, id=row.id, tier=row.tier)
        return self._proto(row)

    @rpc
    async def GetJoinToken(self, request, context):
        return self._proto(await asyncio.to_thread(self.tokens.get, request.name))

    @rpc
    async def UpdateJoinToken(self, request, context):
        row = await asyncio.to_thread(self.tokens.update, request)
        event(log, "join token updated", name=row.name, id=row.id)
        return self._proto(row)

    @rpc
    async def DeleteJoinToken(self, request, context):
        require_name(request.name)
        await asyncio.to_thread(self.tokens.delete, request.name)
        event(log, "join token deleted", name=request.name)
        return cp.DeleteJoinTokenResponse()

    @rpc
    async def ListJoinTokens(self, request, context):
        rows = await asyncio.to_thread(self.tokens.store.list_join_tokens)
        return cp.ListJoinTokensResponse(tokens=[self._proto(r) for r in rows])

    # -- blobs and datasets ---------------------------------------------------

    @rpc
    async def UploadBlob(self, request_iterator, context):
        first = await anext(request_iterator, None)  # an empty stream was an INTERNAL StopAsyncIteration
        if first is None or first.WhichOneof("body") != "header":
            raise InvalidArgument([("header", "the first message of an upload must be the header")])
        header = first.header
        if not HEX64.match(header.sha256):  # 64 characters of anything else failed in the store, INTERNAL
            raise InvalidArgument([("header.sha256", "give the sha256 (64 lowercase hex digits) of the bytes to come")])
        if not 0 <= header.size <= MAX_BLOB:
            raise InvalidArgument([("header.size", f"give the size of the bytes to come, 0 to {MAX_BLOB} bytes")])
        chunks, size = [], 0
        async for msg in request_iterator:
            if len(msg.chunk) > MAX_CHUNK:
                raise InvalidArgument([("chunk", f"chunks are at most {MAX_CHUNK} bytes")])
            chunks.append(msg.chunk)
            size += len(msg.chunk)
            if size > header.size:
                break
        if size != header.size:
            raise InvalidArgument([("header.size", f"announced {header.size} bytes, received {size}; nothing stored")])
        store = self.datasets.artifacts
        try:
            digest = await asyncio.to_thread(store.put_stream, chunks, header.sha256)
        except DigestMismatch as e:
            raise InvalidArgument([("header.sha256", str(e))]) from None
        event(log, "blob stored", sha256=digest, size=size)
        return ds.Blob(sha256=digest, size=size)

    @rpc
    async def GetBlob(self, request, context):
        store = self.datasets.artifacts
        try:
            return ds.Blob(sha256=request.sha256, size=store.size(request.sha256))
        except (KeyError, ValueError):
            raise NotFound(f"blob {request.sha256[:12]}… is not stored") from None

    @rpc
    async def ValidateDataset(self, request, context):
        problems = dsets.validate_spec(request)
        if problems:
            raise InvalidArgument(problems)
        return cp.ValidateResponse()

    @rpc
    async def CreateDataset(self, request, context):
        row = await asyncio.to_thread(self.datasets.create, request)
        event(log, "dataset created", name=row.name, digest=row.digest, rows=row.row_count, version=row.version)
        return dsets.to_proto(row)

    @rpc
    async def GetDataset(self, request, context):
        return dsets.to_proto(await asyncio.to_thread(self.datasets.get, request.name))

    @rpc
    async def UpdateDataset(self, request, context):
        row = await asyncio.to_thread(self.datasets.update, request)
        event(log, "dataset updated", name=row.name, digest=row.digest, rows=row.row_count, version=row.version)
        return dsets.to_proto(row)

    @rpc
    async def DeleteDataset(self, request, context):
        require_name(request.name)
        await asyncio.to_thread(self.datasets.delete, request.name)
        event(log, "dataset deleted", name=request.name)
        return ds.DeleteDatasetResponse()

    # -- models -----------------------------------------------------------------------------

    @rpc
    async def ValidateModel(self, request, context):
        columns = await asyncio.to_thread(self.models.check, request, need_dataset=False)
        return m.ValidateModelResponse(columns=columns)

    @rpc
    async def CreateModel(self, request, context):
        model = await self.models.create(request)
        event(log, "model created", name=request.name, state=model.state, operation=model.operation.id)
        return model

    @rpc
    async def GetModel(self, request, context):
        return await asyncio.to_thread(self.models.get, request.name)

    @rpc
    async def UpdateModel(self, request, context):
        model = await self.models.update(request)
        event(log, "model updated", name=request.name, state=model.state, operation=model.operation.id)
        return model

    @rpc
    async def DeleteModel(self, request, context):
        require_name(request.name)
        users = await asyncio.to_thread(self.services.using_model, request.name)
        self.models.delete(request.name, users)
        event(log, "model deleted", name=request.name)
        return m.DeleteModelResponse()

    @rpc
    async def RetrainModel(self, request, context):
        problems = check_text(request.reason, "reason", MAX_TEXT)  # it is kept in the operation
        if problems:
            raise InvalidArgument(problems)
        return await self.models.retrain(request.name, request.reason or "manual")

    @rpc
    async def GetOperation(self, request, context):
        return await asyncio.to_thread(self.models.operation, request.id)

    @rpc
    async def GetTrainingScript(self, request, context):
        return await asyncio.to_thread(self.models.training_script, request.name, request.version)

    # -- services ---------------------------------------------------------------------------

    @rpc
    async def ValidateService(self, request, context):
        notes = await asyncio.to_thread(self.services.check_plan, request.service, list(request.planned),
                                        list(request.planned_apps))
        return cp.ValidateResponse(notes=notes)

    @rpc
    async def PlaceWhatIf(self, request, context):
        # Checked here: a what-if needs something to place (services.what_if checks the spec's bounds too).
        problems = check_what_if(request)
        if problems:
            raise InvalidArgument(problems)
        return await asyncio.to_thread(self.services.what_if, request)

    @rpc
    async def CreateService(self, request, context):
        return await asyncio.to_thread(self.services.create, request)  # it tells the nodes (Services.push)

    @rpc
    async def GetService(self, request, context):
        known_name(request.name, "service")
        return await asyncio.to_thread(self.services.get, request.name)

    @rpc
    async def UpdateService(self, request, context):
        return await asyncio.to_thread(self.services.update, request)

    @rpc
    async def DeleteService(self, request, context):
        require_name(request.name)
        await asyncio.to_thread(self.services.delete, request.name)
        return m.DeleteServiceResponse()

    @rpc
    async def GetServiceMetrics(self, request, context):
        known_name(request.name, "service")
        return await asyncio.to_thread(self.services.metrics, request.name, request.minutes)

    # -- cloud pools (control_plane/provision/pools.py); Vault and cloud calls run off the event loop --
    @rpc
    async def ValidateCloudPool(self, request, context):
        await asyncio.to_thread(self.pools.check, request)
        return cp.ValidateResponse()

    @rpc
    async def CreateCloudPool(self, request, context):
        return await asyncio.to_thread(self.pools.create, request)

    @rpc
    async def GetCloudPool(self, request, context):
        return await asyncio.to_thread(self.pools.get, request.name)

    @rpc
    async def UpdateCloudPool(self, request, context):
        return await asyncio.to_thread(self.pools.update, request)

    @rpc
    async def DeleteCloudPool(self, request, context):
        require_name(request.name)
        await asyncio.to_thread(self.pools.delete, request.name)
        return pl.DeleteCloudPoolResponse()

    # -- apps (control_plane/apps/resource.py) ---------------------------------------------------
    @rpc
    async def ValidateApp(self, request, context):
        notes = await asyncio.to_thread(self.apps.check_plan, request.app, list(request.planned),
                                        list(request.planned_services))
        return cp.ValidateResponse(notes=notes)

    @rpc
    async def CreateApp(self, request, context):
        return await asyncio.to_thread(self.apps.create, request)

    @rpc
    async def GetApp(self, request, context):
        known_name(request.name, "app")
        return await asyncio.to_thread(self.apps.get, request.name)

    @rpc
    async def UpdateApp(self, request, context):
        return await asyncio.to_thread(self.apps.update, request)

    @rpc
    async def DeleteApp(self, request, context):
        require_name(request.name)
        await asyncio.to_thread(self.apps.delete, request.name)
        return ap.DeleteAppResponse()

    @rpc
    async def ListAppRuns(self, request, context):
        known_name(request.name, "app")
        return await asyncio.to_thread(self.apps.list_runs, request.name, request.limit)

    @rpc
    async def RunAppNow(self, request, context):
        known_name(request.name, "app")
        return await asyncio.to_thread(self.apps.run_now, request.name)

    async def StreamAppLogs(self, request, context):
        # A streaming answer: errors are mapped here, as @rpc does for unary calls.
        try:
            known_name(request.name, "app")
            async for chunk in self.apps.stream_logs(request):
                yield chunk
        except StratumError as e:
            status = to_status(e)
            await context.abort(status.code, status.details, status.trailing_metadata)

    # -- lists, actions and history (the dashboard uses these like any client) -------------------
    @rpc
    async def ListServices(self, request, context):
        return cp.ListServicesResponse(services=await asyncio.to_thread(self.services.list))

    @rpc
    async def ListApps(self, request, context):
        return cp.ListAppsResponse(apps=await asyncio.to_thread(self.apps.list))

    @rpc
    async def ListModels(self, request, context):
        return cp.ListModelsResponse(models=await asyncio.to_thread(self.models.list))

    @rpc
    async def ListCloudPools(self, request, context):
        def pools():
            return [self.pools.get(d["name"]) for d in self.pools.store.list_docs("pools")]

        return cp.ListCloudPoolsResponse(pools=await asyncio.to_thread(pools))

    @rpc
    async def ListModelVersions(self, request, context):
        known_name(request.name, "model")
        return cp.ListModelVersionsResponse(versions=await asyncio.to_thread(self.models.versions, request.name))

    @rpc
    async def ListOperations(self, request, context):
        problems = check_number(request.limit, "limit", 0, 1000, integer=True, hint="0 for 50")
        problems += check_text(request.target, "target", 256)
        if problems:
            raise InvalidArgument(problems)
        ops = await asyncio.to_thread(self.models.operations, request.target, request.limit or 50)
        return cp.ListOperationsResponse(operations=ops)

    @rpc
    async def PinModelVersion(self, request, context):
        require_name(request.name)
        if request.version:
            problems = check_text(request.version, "version", 64)
            if problems:
                raise InvalidArgument(problems)
        model = await asyncio.to_thread(self.models.pin, request.name, request.version)
        event(log, "model pinned" if request.version else "model unpinned", name=request.name, version=request.version)
        return model

    @rpc
    async def DrainNode(self, request, context):
        if not request.id_or_name:
            raise InvalidArgument([("id_or_name", "give a node id or name")])
        known_name(request.id_or_name, "node")
        node = await asyncio.to_thread(self.nodes.drain, request.id_or_name, request.drain)
        event(log, "node drained" if request.drain else "node undrained", node=node.name)
        if self.reconciler is not None:
            await asyncio.to_thread(self.reconciler.rebalance)  # what runs there moves; or may come back
        return node

    @rpc
    async def GetHistory(self, request, context):
        return await asyncio.to_thread(self.history.get, request)

    @rpc
    async def CreateAccessToken(self, request, context):
        token = await asyncio.to_thread(self.access_tokens.create, request)
        event(log, "access token created", name=request.name, scope=request.scope, id=token.id)
        return token

    @rpc
    async def ListAccessTokens(self, request, context):
        return await asyncio.to_thread(self.access_tokens.list)

    @rpc
    async def DeleteAccessToken(self, request, context):
        require_name(request.name)
        await asyncio.to_thread(self.access_tokens.delete, request.name)
        event(log, "access token deleted", name=request.name)
        return ac.DeleteAccessTokenResponse()


class NodeAgentServicer(na_grpc.NodeAgentServicer):
    def __init__(self, nodes: NodeRegistry, reconciler: Reconciler, artifacts, node_port: int, interval: float,
                 logs=None, leadership=None):
        self.nodes, self.reconciler, self.artifacts = nodes, reconciler, artifacts
        self.logs = logs  # control_plane/apps/logs.py: LogData from nodes, to the StreamAppLogs waiting for it
        self.node_port, self.interval = node_port, interval
        self.leadership = leadership  # control_plane/leadership.py: node sessions are the leader's

    @rpc
    async def Enroll(self, request, context):
        node, cert = await asyncio.to_thread(self.nodes.enroll, request, time.time())
        event(log, "node enrolled", node_id=node.id, name=node.name, tier=node.tier, join_token=node.join_token)
        return na.EnrollResponse(node_id=node.id, certificate_pem=cert.decode(), ca_pem=self.nodes.ca_cert_pem.decode(),
                                 node_agent_port=self.node_port, tier=node.tier, labels=node.labels)

    async def Connect(self, request_iterator, context):
        node_id = node_id_of(context)
        if node_id is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "Connect needs the node's client certificate: use the node listener (port from enrollment)")
        lead = self.leadership
        if lead is not None and not lead.is_leader:
            # Only the leader runs what nodes are told and hears what they report; the node tries
            # the leader's node listener next (the trailing metadata names it).
            context.set_trailing_metadata((("stratum-leader-node", lead.leader_node),))
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"this control plane is not the leader; the leader's node listener is "
                                f"{lead.leader_node or 'not known yet'}")
        fence = lead.fence() if lead is not None else contextlib.nullcontext()
        with fence:  # the session's writes (reports, runs) belong to this term
            async for msg in self._session(node_id, request_iterator, context):
                yield msg

    async def _session(self, node_id: str, request_iterator, context):
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            return
        if first.WhichOneof("body") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "body: the first message of a session must be hello")
        try:
            node = await asyncio.to_thread(self.nodes.hello, node_id, first.hello, time.time())
        except StratumError as e:
            status = to_status(e)
            await context.abort(status.code, status.details, status.trailing_metadata)
        event(log, "node session started", node_id=node_id, name=node.name, peer=context.peer())
        peers = await asyncio.to_thread(self.leadership.node_listeners) if self.leadership is not None else []
        yield na.ControlMessage(welcome=na.Welcome(node_id=node_id, heartbeat_interval_s=self.interval,
                                                   control_planes=peers))
        # Outbound messages (acks from the reader below, assignments from Reconciler.push) share one queue,
        # so this generator is the only writer of the stream.
        out = self.reconciler.open_session(node_id)
        reader = asyncio.create_task(self._read(node_id, node.name, request_iterator, out))
        try:
            self.reconciler.push([node_id])
            while True:
                msg = await out.get()
                if msg is None:
                    break
                yield msg
        finally:
            reader.cancel()
            self.reconciler.close_session(node_id, out)
            event(log, "node session ended", node_id=node_id, name=node.name)

    async def _read(self, node_id: str, name: str, request_iterator, out: asyncio.Queue) -> None:
        try:
            async for msg in request_iterator:
                kind = msg.WhichOneof("body")
                if kind == "heartbeat":
                    hb = msg.heartbeat
                    if self.nodes.heartbeat(node_id, hb.utilisation, time.time()):
                        event(log, "node ready", node_id=node_id, name=name)
                    out.put_nowait(na.ControlMessage(heartbeat_ack=na.HeartbeatAck(seq=hb.seq)))
                elif kind == "services":
                    await asyncio.to_thread(self.reconciler.on_report, node_id, msg.services)
                elif kind == "log" and self.logs is not None:
                    self.logs.on_data(node_id, msg.log)
        except Exception as e:  # noqa: BLE001 - the stream broke; the session ends below either way
            if not isinstance(e, asyncio.CancelledError):
                event(log, "node stream broke", level=logging.INFO, node_id=node_id, error=type(e).__name__)
        finally:
            out.put_nowait(None)

    async def FetchBento(self, request, context):
        async for chunk in self._fetch(request, context, "bento"):
            yield chunk

    async def FetchBlob(self, request, context):
        async for chunk in self._fetch(request, context, "blob"):
            yield chunk

    async def _fetch(self, request, context, what: str):
        """A stored blob from `offset` (a resumed download), in 1 MiB chunks."""
        if node_id_of(context) is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"Fetch{what.title()} needs the node's client certificate")
        try:
            size = self.artifacts.size(request.digest.removeprefix("sha256:"))
        except (KeyError, ValueError):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{what} {request.digest[:19]}… is not stored on the control plane")
        if not 0 <= request.offset <= size:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"offset: {request.offset} is outside the {size}-byte {what}")
        offset = request.offset
        while offset < size:
            data = await asyncio.to_thread(self.artifacts.read, request.digest.removeprefix("sha256:"), offset, 1 << 20)
            if not data:
                break
            yield na.BentoChunk(offset=offset, data=data, size=size)
            offset += len(data)

    @rpc
    async def UploadOutput(self, request_iterator, context):
        """A run's output file into the artifact store (verified against its announced sha256)."""
        if node_id_of(context) is None:
            raise Unauthenticated("UploadOutput needs the node's client certificate")
        first = await request_iterator.__anext__()
        if first.WhichOneof("body") != "header":
            raise InvalidArgument([("header", "the first message of an upload must be the header")])
        h = first.header
        if len(h.sha256) != 64 or not 0 <= h.size <= MAX_OUTPUT:
            raise InvalidArgument([("header", f"give the sha256 and a size of at most {MAX_OUTPUT} bytes")])
        chunks, size = [], 0
        async for msg in request_iterator:
            chunks.append(msg.chunk)
            size += len(msg.chunk)
            if size > h.size:
                break
        if size != h.size:
            raise InvalidArgument([("header.size", f"announced {h.size} bytes, received {size}; nothing stored")])
        try:
            digest = await asyncio.to_thread(self.artifacts.put_stream, chunks, h.sha256)
        except DigestMismatch as e:
            raise InvalidArgument([("header.sha256", str(e))]) from None
        event(log, "run output stored", run=h.run_id, sha256=digest, size=size)
        return na.UploadOutputResponse(sha256=digest)
