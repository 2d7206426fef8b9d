"""gRPC servicers: validate input, call the service layer, map errors (see errors.rpc)."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from control_plane import join_tokens as jt
from control_plane.api.auth import node_id_of
from control_plane.api.errors import rpc, to_status
from control_plane.errors import InvalidArgument, NotFound, StratumError
from control_plane import datasets as dsets
from control_plane.datasets import Datasets
from control_plane.join_tokens import JoinTokens, validate_spec
from control_plane.packaging.store import DigestMismatch
from control_plane.nodes import NodeRegistry
from control_plane.models import Models
from control_plane.services import Services
from stratum.v1 import models_pb2 as m
from stratum import __version__
from stratum.durations import format_duration
from stratum.logs import event
from stratum.v1 import control_plane_pb2 as cp, control_plane_pb2_grpc as cp_grpc
from stratum.v1 import datasets_pb2 as ds
from stratum.v1 import node_agent_pb2 as na, node_agent_pb2_grpc as na_grpc
from stratum.v1 import pools_pb2 as pl

MAX_CHUNK = 4 * 1024 * 1024

log = logging.getLogger("stratum.api")


class ControlPlaneServicer(cp_grpc.ControlPlaneServicer):
    def __init__(self, nodes: NodeRegistry, tokens: JoinTokens, datasets: Datasets, models: Models, services: Services,
                 store_kind: str, node_endpoint: str, interval: float, timeout: float, pools=None):
        self.nodes, self.tokens, self.datasets = nodes, tokens, datasets
        self.pools = pools
        self.models, self.services = models, services
        self.store_kind, self.node_endpoint = store_kind, node_endpoint
        self.interval, self.timeout = interval, timeout

    @rpc
    async def GetStatus(self, request, context):
        return cp.GetStatusResponse(version=__version__, store=self.store_kind, nodes_by_state=self.nodes.counts(),
                                    node_agent_endpoint=self.node_endpoint,
                                    heartbeat_interval=format_duration(self.interval), node_timeout=format_duration(self.timeout))

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
        first = await request_iterator.__anext__()
        if first.WhichOneof("body") != "header":
            raise InvalidArgument([("header", "the first message of an upload must be the header")])
        header = first.header
        if len(header.sha256) != 64 or header.size < 0:
            raise InvalidArgument([("header.sha256", "give the sha256 (64 hex digits) and size of the bytes to come")])
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
        users = await asyncio.to_thread(self.services.using_model, request.name)
        self.models.delete(request.name, users)
        event(log, "model deleted", name=request.name)
        return m.DeleteModelResponse()

    @rpc
    async def RetrainModel(self, request, context):
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
        notes = await asyncio.to_thread(self.services.check_plan, request.service, list(request.planned))
        return cp.ValidateResponse(notes=notes)

    @rpc
    async def PlaceWhatIf(self, request, context):
        return await asyncio.to_thread(self.services.what_if, request)

    @rpc
    async def CreateService(self, request, context):
        return await asyncio.to_thread(self.services.create, request)  # it tells the nodes (Services.push)

    @rpc
    async def GetService(self, request, context):
        return await asyncio.to_thread(self.services.get, request.name)

    @rpc
    async def UpdateService(self, request, context):
        return await asyncio.to_thread(self.services.update, request)

    @rpc
    async def DeleteService(self, request, context):
        await asyncio.to_thread(self.services.delete, request.name)
        return m.DeleteServiceResponse()

    @rpc
    async def GetServiceMetrics(self, request, context):
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
        await asyncio.to_thread(self.pools.delete, request.name)
        return pl.DeleteCloudPoolResponse()


class NodeAgentServicer(na_grpc.NodeAgentServicer):
    def __init__(self, nodes: NodeRegistry, services: Services, artifacts, node_port: int, interval: float):
        self.nodes, self.services, self.artifacts = nodes, services, artifacts
        self.node_port, self.interval = node_port, interval

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
        yield na.ControlMessage(welcome=na.Welcome(node_id=node_id, heartbeat_interval_s=self.interval))
        # Outbound messages (acks from the reader below, assignments from Services.push) share one queue,
        # so this generator is the only writer of the stream.
        out = self.services.open_session(node_id)
        reader = asyncio.create_task(self._read(node_id, node.name, request_iterator, out))
        try:
            self.services.push([node_id])
            while True:
                msg = await out.get()
                if msg is None:
                    break
                yield msg
        finally:
            reader.cancel()
            self.services.close_session(node_id, out)
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
                    await asyncio.to_thread(self.services.on_report, node_id, msg.services)
        except Exception as e:  # noqa: BLE001 - the stream broke; the session ends below either way
            if not isinstance(e, asyncio.CancelledError):
                event(log, "node stream broke", level=logging.INFO, node_id=node_id, error=type(e).__name__)
        finally:
            out.put_nowait(None)

    async def FetchBento(self, request, context):
        if node_id_of(context) is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "FetchBento needs the node's client certificate")
        try:
            size = self.artifacts.size(request.digest.removeprefix("sha256:"))
        except (KeyError, ValueError):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"bento {request.digest[:19]}… is not stored on the control plane")
        if not 0 <= request.offset <= size:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"offset: {request.offset} is outside the {size}-byte archive")
        offset = request.offset
        while offset < size:
            data = await asyncio.to_thread(self.artifacts.read, request.digest.removeprefix("sha256:"), offset, 1 << 20)
            if not data:
                break
            yield na.BentoChunk(offset=offset, data=data, size=size)
            offset += len(data)
