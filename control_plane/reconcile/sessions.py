"""The applier's wire: each connected node's session queue, and pushing it what it should run.

Assignments are the whole desired set for a node (services and app instances); a node gets a new
message only when its set changed since the last one sent on this session, with a generation
that increases across control-plane restarts too (it starts from the clock).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from stratum.v1 import node_agent_pb2 as na

Build = Callable[[list[str]], dict[str, na.Assignments]]


class Sessions:
    def __init__(self, build: Build):
        self.build = build  # node ids -> their Assignments, from one read of the desired state
        self.queues: dict[str, asyncio.Queue] = {}  # node id -> its session's outbound queue
        self._generation = int(time.time() * 1000)
        self._sent: dict[str, bytes] = {}  # node id -> the last assignments sent, serialised
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, node_id: str) -> asyncio.Queue:
        self._loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        self.queues[node_id] = q
        self._sent.pop(node_id, None)
        return q

    def close(self, node_id: str, q: asyncio.Queue) -> None:
        if self.queues.get(node_id) is q:
            del self.queues[node_id]

    def close_all(self) -> None:
        """End every node session (this control plane stopped leading): the nodes reconnect, to
        the leader. Callable from any thread."""
        for node_id in list(self.queues):
            self.send(node_id, None)

    def send(self, node_id: str, msg) -> bool:
        """Put a message on a node's session (from any thread); False when it has none."""
        q = self.queues.get(node_id)
        if q is None or self._loop is None:
            return False
        self._loop.call_soon_threadsafe(q.put_nowait, msg)
        return True

    def push(self, node_ids: list[str] | None = None) -> None:
        """Send connected nodes (all, or these) their assignments if they changed since the last send.
        Callable from any thread: the sessions' queues belong to the event loop."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop:
            loop.call_soon_threadsafe(self._push, node_ids)
        else:
            self._push(node_ids)

    def _push(self, node_ids: list[str] | None = None) -> None:
        targets = {n: q for n, q in self.queues.items() if node_ids is None or n in node_ids}
        if not targets:
            return
        assignments = self.build(list(targets))
        for node_id, q in targets.items():
            a = assignments[node_id]
            a.generation = 0
            key = a.SerializeToString(deterministic=True)
            if self._sent.get(node_id) == key:
                continue
            self._generation += 1
            a.generation = self._generation
            self._sent[node_id] = key
            q.put_nowait(na.ControlMessage(assignments=a))
