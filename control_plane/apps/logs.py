"""App logs from the nodes that hold them, over each node's session (nodes dial out, so the
control plane cannot call them): StreamAppLogs sends a LogRequest on the node's session and
relays the LogData the node sends back, until the node says eof or the client goes away."""

from __future__ import annotations

import asyncio
import itertools
from typing import AsyncIterator

from control_plane.errors import FailedPrecondition
from stratum.v1 import node_agent_pb2 as na

CHUNK_WAIT_S = 30.0  # a node that sends nothing for this long (follow mode excepted) has gone away


class LogBroker:
    def __init__(self, sessions):
        self.sessions = sessions  # control_plane/reconcile/sessions.py
        self._ids = itertools.count(1)
        self._open: dict[int, tuple[str, asyncio.Queue]] = {}  # request id -> (node id, its chunks)

    async def stream(self, node_id: str, node_name: str, req: na.LogRequest) -> AsyncIterator[bytes]:
        """The log's bytes as the node sends them. FAILED_PRECONDITION when the node is not connected."""
        rid = next(self._ids)
        q: asyncio.Queue = asyncio.Queue(maxsize=256)
        self._open[rid] = (node_id, q)
        req.request_id = rid
        try:
            if not self.sessions.send(node_id, na.ControlMessage(log_request=req)):
                raise FailedPrecondition(f"node {node_name} is not connected: its logs cannot be read now")
            while True:
                try:
                    data: na.LogData = await asyncio.wait_for(q.get(), None if req.follow else CHUNK_WAIT_S)
                except asyncio.TimeoutError:
                    raise FailedPrecondition(f"node {node_name} stopped sending the log") from None
                if data.error:
                    raise FailedPrecondition(f"node {node_name}: {data.error}")
                if data.data:
                    yield data.data
                if data.eof:
                    return
        finally:
            self._open.pop(rid, None)
            if req.follow or not q.empty():
                self.sessions.send(node_id, na.ControlMessage(log_request=na.LogRequest(request_id=rid, cancel=True)))

    def on_data(self, node_id: str, data: na.LogData) -> None:
        """A LogData from a node's session (on the event loop)."""
        entry = self._open.get(data.request_id)
        if entry is None or entry[0] != node_id:
            return  # a request that ended, or another node's id: drop it
        try:
            entry[1].put_nowait(data)
        except asyncio.QueueFull:
            pass  # a client that does not read: drop rather than hold the session's reader
