"""Request placement in the router (StraightLine), against real HTTP backends and a second router
standing in for another node: each stream goes to the form the rule picks, a single body too large
for the edge form skips it, out-of-distribution streams go to the full model, a forwarded request is
never forwarded again, and an on-demand form is started by the request that needs it."""

from __future__ import annotations

import asyncio

import aiohttp

from node_daemon.replicas.router import ServiceRouter
from stratum.request_placement import FormProfile, InputCheck, Placer, Profiles
from tests.packaging.test_router import _runners, backend, run

EDGE = FormProfile("edge", p95_ms=5, max_input_bytes=2048, capacity_rps=1000)
FOG = FormProfile("always_on", p95_ms=20)
LAMBDA = FormProfile("on_demand", p95_ms=5, cold_start_s=0.1)
SMALL = {"instances": [{"a": 1}]}
LARGE = {"instances": [{"a": i} for i in range(400)]}  # ~4.7 KB as JSON, above the edge form's 2 KiB


async def post(s, url, body, stream="s1", **headers):
    async with s.post(url + "/predict", json=body, headers={"x-stratum-stream": stream, **headers}) as r:
        return r.status, r.headers.get("x-stratum-form"), (await r.json())["predictions"][0]


def test_streams_go_to_the_form_the_rule_picks_and_a_large_body_skips_the_edge():
    async def body(router):
        _, edge_port = await backend("edge")
        _, fog_port = await backend("fog")
        # the other node: its own router in front of its replica
        other = await ServiceRouter("127.0.0.1", 0).start()
        try:
            other.add_backend("fog-r1", "127.0.0.1", fog_port)
            router.add_backend("r1", "127.0.0.1", edge_port)
            router.add_backend("peer-fog", "127.0.0.1", other.port, form="always_on", remote=True)
            router.placer = Placer(Profiles((EDGE, FOG)), slo_p95_ms=50)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
                assert await post(s, router.url, SMALL) == (200, "edge", "edge")
                # one large body in a stream of small ones: the edge form cannot take it
                assert await post(s, router.url, LARGE) == (200, "always_on", "fog")
                assert await post(s, router.url, SMALL) == (200, "edge", "edge")
                # a stream of large bodies
                for _ in range(5):
                    assert await post(s, router.url, LARGE, stream="big") == (200, "always_on", "fog")
                # GET (not a prediction) never leaves the node
                async with s.get(router.url + "/healthz") as r:
                    assert r.status == 200 and "x-stratum-form" not in r.headers
            stats = router.stats()
            assert stats["forms"] == {"edge": 3, "always_on": 6} and stats["failures"] == 0  # the GET went to edge too
            assert stats["streams"]["big"].startswith("always_on: input p95 8191 B > edge max 2048 B")
            assert other.requests == 6  # the other router served them itself
        finally:
            await other.stop()
    run(body)


def test_a_forwarded_request_is_served_locally_and_never_forwarded_back():
    async def body(router):
        _, a_port = await backend("a")
        _, b_port = await backend("b")
        other = await ServiceRouter("127.0.0.1", 0).start()
        try:
            # both routers place requests and name each other as peers: a loop if forwarding were repeated
            for r, mine, peer in ((router, a_port, other.port), (other, b_port, router.port)):
                r.add_backend("local", "127.0.0.1", mine)
                r.add_backend("peer", "127.0.0.1", peer, form="always_on", remote=True)
                r.placer = Placer(Profiles((EDGE, FOG)), slo_p95_ms=50)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
                assert await post(s, router.url, LARGE) == (200, "always_on", "b")
                assert await post(s, other.url, LARGE) == (200, "always_on", "a")
                # a client that sends the header itself is treated as forwarded: served here
                assert (await post(s, router.url, LARGE, **{"x-stratum-forwarded": "1"}))[2] == "a"
            assert router.requests == 3 and other.requests == 2
            assert router.backends["local"].requests == 2 and other.backends["local"].requests == 1
        finally:
            await other.stop()
    run(body)


def test_out_of_distribution_streams_go_to_the_full_model():
    async def body(router):
        _, edge_port = await backend("edge")
        _, fog_port = await backend("fog")
        router.add_backend("r1", "127.0.0.1", edge_port)
        router.add_backend("peer", "127.0.0.1", fog_port, form="always_on", remote=True)
        router.placer = Placer(Profiles((EDGE, FOG), ood_share_max=0.25), slo_p95_ms=50, refresh_s=0)
        router.input_check = InputCheck({"num": {"a": [0, 10]}})
        odd = {"instances": [{"a": 500}]}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            forms = [(await post(s, router.url, odd, stream="odd"))[1] for _ in range(4)]
            assert forms[-1] == "always_on"
            assert (await post(s, router.url, SMALL, stream="usual"))[1] == "edge"
        assert "ood share" in router.stats()["streams"]["odd"]
    run(body)


def test_an_on_demand_form_is_started_by_the_request_that_needs_it():
    async def body(router):
        _, edge_port = await backend("edge")
        router.add_backend("r1", "127.0.0.1", edge_port)
        started = []

        async def start():
            await asyncio.sleep(0.2)  # a cold start
            _, port = await backend("lambda")
            started.append(asyncio.get_running_loop().time())
            router.add_backend("od-1", "127.0.0.1", port, form="on_demand")

        router.wakers["on_demand"] = lambda: asyncio.get_running_loop().create_task(start())
        # only an on-demand form takes bodies this large
        router.placer = Placer(Profiles((EDGE, FormProfile("on_demand", p95_ms=5, cold_start_s=0.2))), slo_p95_ms=500)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            first = asyncio.gather(*(post(s, router.url, LARGE, stream=f"c{i}") for i in range(3)))
            assert await first == [(200, "on_demand", "lambda")] * 3
            assert len(started) == 1  # three parked requests, one start
            # The idle clock of the new replica starts at its answers, not when the requests arrived and
            # were parked: otherwise a cold start longer than idle_stop_s stops the replica at once.
            assert router.backends["od-1"].last_used > started[0]
            assert await post(s, router.url, SMALL) == (200, "edge", "edge")
    run(body)


def test_a_failed_on_demand_start_gives_the_waiting_requests_an_answer():
    async def body(router):
        router.wakers["on_demand"] = lambda: asyncio.get_running_loop().call_soon(router.woken, "on_demand")
        router.placer = Placer(Profiles((LAMBDA,)))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            async with s.post(router.url + "/predict", json=SMALL) as r:
                assert r.status == 503 and "no ready replica" in (await r.json())["error"]
        assert router.failures == 1
    run(body)


def test_placed_requests_balance_over_the_replicas_of_their_form():
    async def body(router):
        ports = [(await backend(f"e{i}"))[1] for i in range(2)]
        for i, p in enumerate(ports):
            router.add_backend(f"r{i}", "127.0.0.1", p)
        router.placer = Placer(Profiles((EDGE, FOG)))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            got = {(await post(s, router.url, SMALL))[2] for _ in range(6)}
        assert got == {"e0", "e1"}
        assert _runners  # backends are cleaned by run()
    run(body)


def test_a_full_form_spills_to_the_next_one_and_all_full_queues_where_the_queue_is_shortest():
    async def body(router):
        _, edge_port = await backend("edge", delay=0.5)
        _, fog_port = await backend("fog", delay=0.5)
        router.add_backend("r1", "127.0.0.1", edge_port)
        router.add_backend("peer", "127.0.0.1", fog_port, form="always_on", remote=True)
        # Little's law: 20 req/s x (100 - 5) ms = 1.9, so 2 requests in flight per backend before it is full
        profiles = Profiles((FormProfile("edge", p95_ms=5, capacity_rps=20), FormProfile("always_on", p95_ms=5, capacity_rps=20)))
        router.placer = Placer(profiles, slo_p95_ms=100)
        assert router.placer.inflight_limit("edge", 1) == 2 and router.placer.inflight_limit("edge", 2) == 1
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            got = await asyncio.gather(*(post(s, router.url, SMALL) for _ in range(6)))
        forms = sorted(f for _, f, _ in got)
        # 2 fill edge, 2 spill to always_on, the last 2 queue one on each (shortest queue for its limit)
        assert forms == ["always_on"] * 3 + ["edge"] * 3 and all(code == 200 for code, _, _ in got)
        assert router.spills >= 4
    run(body)


def test_without_an_objective_nothing_spills():
    async def body(router):
        _, edge_port = await backend("edge", delay=0.2)
        _, fog_port = await backend("fog")
        router.add_backend("r1", "127.0.0.1", edge_port)
        router.add_backend("peer", "127.0.0.1", fog_port, form="always_on", remote=True)
        router.placer = Placer(Profiles((FormProfile("edge", p95_ms=5, capacity_rps=1), FOG)))
        assert router.placer.inflight_limit("edge", 1) == 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            got = await asyncio.gather(*(post(s, router.url, SMALL) for _ in range(4)))
        assert {f for _, f, _ in got} == {"edge"} and router.spills == 0
    run(body)
