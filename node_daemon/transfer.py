"""Fetching a blob from the control plane into a node cache: resumable and verified.

`fetch(digest, offset)` is an async iterator of chunks from `offset` (FetchBento or FetchBlob over
the node's session); `cache` is a BentoCache or an ArtifactCache, which writes the chunks to a
partial file and verifies the whole against the digest. A broken transfer keeps its bytes: the
next attempt continues from there.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from node_daemon.replicas.cache import CacheError, Unreachable
from stratum.logs import event

log = logging.getLogger("stratum.node.transfer")


def _cancelling() -> bool:
    """Whether the running task has been asked to stop (Task.cancel), as opposed to an awaited call
    that ended in CancelledError of its own."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


# A transfer that broke off because the control plane was away (restarting, a leader killed), not
# because of what was asked for.
AWAY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)


async def download(cache, fetch, digest: str, size: int, attempts: int = 5, what: str = "bento") -> None:
    """Fetch with resume: each attempt continues from the bytes the cache already holds."""
    last: Exception | None = None
    away = False  # the last try broke off because the control plane could not be reached
    for attempt in range(attempts):
        away = False
        offset = cache.resume_offset(digest)
        queue: asyncio.Queue = asyncio.Queue(maxsize=8)
        loop = asyncio.get_running_loop()

        def chunks():
            while True:
                item = asyncio.run_coroutine_threadsafe(queue.get(), loop).result()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item

        writer = asyncio.create_task(asyncio.to_thread(cache.put, digest, chunks(), offset=offset, size=size))
        try:
            async for data in fetch(digest, offset):
                await queue.put(data)
            await queue.put(None)
        except asyncio.CancelledError:
            if _cancelling():  # this download itself is being cancelled: end the writer's thread too,
                while not queue.empty():  # the chunks it has not taken dropped (the partial file stays a prefix)
                    queue.get_nowait()
                queue.put_nowait(ConnectionError("download cancelled"))
                writer.add_done_callback(lambda t: t.cancelled() or t.exception())  # its error is ours, expected
                raise
            # grpc.aio cancels the calls of a channel that closes (the session ended under the
            # transfer) with CancelledError: a broken transfer like any other, not our own end,
            # which once killed the app's or service's task and left it "starting" for good.
            away = True
            await queue.put(ConnectionError("transfer broke: the session's channel closed under it"))
        except Exception as e:  # noqa: BLE001 - a broken transfer: the partial file stays for the next attempt
            away = isinstance(e, ConnectionError) or (isinstance(e, grpc.aio.AioRpcError) and e.code() in AWAY)
            await queue.put(ConnectionError(f"transfer broke: {e}"))
        try:
            await writer
            event(log, f"{what} fetched", digest=digest[:19], size=size, resumed_at=offset)
            return
        except CacheError as e:
            if type(e).__name__ == "DigestMismatch":
                raise
            last = e
        except ConnectionError as e:
            last = e
        await asyncio.sleep(0.5 * (attempt + 1))
    error = Unreachable if away else CacheError
    raise error(f"could not fetch {what} {digest[:19]}… after {attempts} attempts: {last}")
