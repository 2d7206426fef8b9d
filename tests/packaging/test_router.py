"""The service router's HTTP behaviour against small real HTTP backends (aiohttp servers)."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from aiohttp import web

from node_daemon.replicas.router import ServiceRouter, probe

pytestmark = pytest.mark.timeout(120)


async def backend(name: str, delay: float = 0.0):
    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(delay)
        return web.json_response({"predictions": [name] * len(body["instances"]), "query": request.query_string})

    async def healthz(_):
        return web.Response(text="\n")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def stream(_request):
        resp = web.StreamResponse()
        await resp.prepare(_request)
        for i in range(3):
            await resp.write(f"part{i};".encode())
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=8 << 20)
    app.add_routes([web.post("/predict", predict), web.get("/healthz", healthz), web.post("/echo", echo),
                    web.get("/stream", stream)])
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    _runners.append(runner)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BODY = {"instances": [{"a": 1}, {"a": 2}]}


_runners: list = []


async def _with_router(fn, **kwargs):
    router = await ServiceRouter("127.0.0.1", 0, health_interval=0.2, **kwargs).start()
    try:
        return await asyncio.wait_for(fn(router), 60)
    finally:
        await asyncio.wait_for(router.stop(), 10)  # a stop that hangs fails here, not at the 120 s test timeout
        while _runners:  # backends are cleaned up even when the test failed half-way
            await asyncio.wait_for(_runners.pop().cleanup(), 10)


def run(fn, **kwargs):
    return asyncio.run(_with_router(fn, **kwargs))


def test_predict_is_retried_on_another_replica_when_one_is_dead():
    async def body(router):
        live, port = await backend("live")
        router.add_backend("dead", "127.0.0.1", dead_port())
        router.add_backend("live", "127.0.0.1", port)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            for _ in range(10):
                async with s.post(router.url + "/predict?x=1", json=BODY) as r:
                    assert r.status == 200
                    assert await r.json() == {"predictions": ["live", "live"], "query": "x=1"}
            async with s.get(router.url + "/healthz") as r:
                assert r.status == 200
        stats = router.stats()
        assert stats["failures"] == 0 and stats["retries"] >= 1
        assert {b["id"]: b["state"] for b in stats["backends"]}["dead"] == "down"
    run(body)


def test_no_ready_replica_is_a_503_and_a_lone_dead_one_a_502():
    async def body(router):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            async with s.post(router.url + "/predict", json=BODY) as r:
                assert r.status == 503 and "no ready replica" in (await r.json())["error"]
            router.add_backend("dead", "127.0.0.1", dead_port())
            async with s.post(router.url + "/predict", json=BODY) as r:
                assert r.status == 502 and "dead" in (await r.json())["error"]
    run(body)


def test_drain_waits_for_requests_in_flight_then_removes_the_replica():
    async def body(router):
        slow, slow_port = await backend("old", delay=0.8)
        fast, fast_port = await backend("new")
        router.add_backend("old", "127.0.0.1", slow_port)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            async def call():
                async with s.post(router.url + "/predict", json=BODY) as r:
                    return r.status, (await r.json())["predictions"][0]

            in_flight = asyncio.create_task(call())
            while router.backends["old"].outstanding == 0 and not in_flight.done():  # the slow request is at "old" now
                await asyncio.sleep(0.01)
            assert not in_flight.done(), f"the slow request ended before the drain: {in_flight.result()}"
            router.add_backend("new", "127.0.0.1", fast_port)
            t0 = asyncio.get_running_loop().time()
            assert await router.drain("old", timeout=10) is True
            assert asyncio.get_running_loop().time() - t0 > 0.1  # it waited for the slow request
            # drain returns once the router has answered; the client may still be reading that answer
            assert await asyncio.wait_for(in_flight, 10) == (200, "old")
            assert [b["id"] for b in router.stats()["backends"]] == ["new"]
            assert [await call() for _ in range(3)] == [(200, "new")] * 3
    run(body)


def test_a_cancel_that_lands_as_a_health_probe_finishes_is_not_swallowed():
    # Python 3.11's asyncio.wait_for returned the result instead of raising when the cancel came after the
    # awaited read had finished: router.stop() then waited forever on a health loop that kept probing.
    async def main():
        _, port = await backend("b")
        swallowed = []
        try:
            for steps in range(60):  # cancel after 0, 1, 2, ... loop iterations: every point of a probe
                task = asyncio.create_task(probe("127.0.0.1", port))
                for _ in range(steps):
                    await asyncio.sleep(0)
                if task.done():
                    break
                task.cancel()
                try:
                    swallowed.append((steps, await task))
                except asyncio.CancelledError:
                    pass
        finally:
            while _runners:
                await asyncio.wait_for(_runners.pop().cleanup(), 10)
        assert steps > 2 and not swallowed
    asyncio.run(main())


def test_a_cancel_that_lands_as_a_drain_finishes_is_not_swallowed():
    async def body(router):
        b = router.add_backend("old", "127.0.0.1", dead_port())
        b.outstanding = 1  # one request in flight
        task = asyncio.create_task(router.drain("old", timeout=10))
        await asyncio.sleep(0.05)
        router._release(b, None)  # the last request is done, and in the same turn of the loop ...
        task.cancel()  # ... whoever called drain gives up on it
        with pytest.raises(asyncio.CancelledError):
            await task
    run(body)


def test_http_framing_chunked_expect_pipelining_close_and_streams():
    async def body(router):
        be, port = await backend("b")
        router.add_backend("b", "127.0.0.1", port)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            big = bytes(range(256)) * 8192  # 2 MiB
            async with s.post(router.url + "/echo", data=big) as r:
                assert r.status == 200 and await r.read() == big

            async def gen():
                for i in range(4):
                    yield b"x" * 1000 + bytes([i])
            async with s.post(router.url + "/echo", data=gen()) as r:  # chunked request body
                assert (await r.read()) == b"".join([b"x" * 1000 + bytes([i]) for i in range(4)])
            async with s.get(router.url + "/stream") as r:  # chunked response
                assert await r.read() == b"part0;part1;part2;"
        # Raw socket: Expect: 100-continue, then two pipelined requests, the second with Connection: close.
        reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
        payload = json.dumps(BODY).encode()
        writer.write(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(payload))
        assert await asyncio.wait_for(reader.readline(), 10) == b"HTTP/1.1 100 Continue\r\n"
        await asyncio.wait_for(reader.readline(), 10)
        writer.write(payload)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 10)  # returns at EOF: the router closed as asked
        assert data.count(b"HTTP/1.1 200") == 3 and b'"predictions": ["b", "b"]' in data
        writer.close()
        # Garbage is a 400, not a crash.
        reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
        writer.write(b"NONSENSE\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 400")
        writer.close()
    run(body)


def test_a_non_idempotent_request_is_not_replayed_on_another_replica():
    async def body(router):
        live, port = await backend("live")
        router.add_backend("dead", "127.0.0.1", dead_port())
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            async with s.post(router.url + "/echo", data=b"abc") as r:
                assert r.status == 502
            router.add_backend("live", "127.0.0.1", port)
            async with s.post(router.url + "/echo", data=b"abc") as r:  # "dead" is down now: goes to live
                assert r.status == 200
    run(body)


@pytest.mark.parametrize("size", [3])
def test_drift_reservoir_is_bounded(size):
    async def body(router):
        live, port = await backend("live")
        router.add_backend("live", "127.0.0.1", port)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            for i in range(30):
                async with s.post(router.url + "/predict", json={"instances": [{"i": i}]}) as r:
                    await r.read()
        await asyncio.sleep(0.05)
        samples = router.samples()
        assert len(samples) == size and all(0 <= row["i"] < 30 for row in samples)
        assert router.stats()["sampled_from"] == 30
    run(body, sample_size=size)
