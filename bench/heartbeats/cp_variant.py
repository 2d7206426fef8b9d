"""The real control plane with experimental patches applied in memory: evidence for recommendations.

    STRATUM_BENCH_CP_PATCHES=instrument,flush python -m bench.heartbeats.cp_variant <stratum control-plane args>

This file changes nothing on disk: it imports the control plane, replaces a few functions,
then runs the ordinary `stratum control-plane` entry point. `run.py --cp-patches ...` uses it
to measure what a proposed change to control_plane/ would buy before anyone makes it.

Patches:
  instrument  log every garbage collection that takes >= 5 ms ("gc pause": generation, wall ms, CPU ms
          of the collecting thread, objects collected) and every event-loop tick >= 20 ms late ("loop
          stall"); instrumentation only, changes no behaviour.
  flush   NodeRegistry.flush_heartbeats without the registry lock held while serialising, with a
          cheap serialiser and the store write in chunks (the change recommended in README.md).
  gc      gc.freeze() after each maintenance tick that saw new sessions, so long-lived session
          objects stop being rescanned by every full collection; plus a higher gen0 threshold.
  gcoff   gc.disable(), and one full gc.collect() from the maintenance loop every
          STRATUM_BENCH_GC_EVERY_S seconds (default 300; "scheduled gc" events with its duration).
  gcyoung gcoff, plus a young-generation gc.collect(0) every 100 ms from the event loop, so
          short-lived reference cycles are still freed within a tick.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import threading
import time

PATCHES = [p for p in os.environ.get("STRATUM_BENCH_CP_PATCHES", "").split(",") if p]
SIZES = os.environ.get("STRATUM_BENCH_GC_SIZES") == "1"  # also log how many objects a young collection scanned
KNOWN = {"instrument", "flush", "gc", "gcoff", "gcyoung"}
GC_EVERY_S = float(os.environ.get("STRATUM_BENCH_GC_EVERY_S", "300"))

log = logging.getLogger("stratum.bench.cp_variant")


def _emit(**fields) -> None:
    # Straight to stderr (the control plane's log): the logging module takes locks we must not take inside the collector.
    sys.stderr.write(json.dumps({"ts": time.time(), **fields}) + "\n")


def _instrument() -> None:
    started: dict[str, tuple[float, float]] = {}

    def cb(phase, info):
        if phase == "start":
            if SIZES and info["generation"] < 2:
                objs = gc.get_objects(generation=info["generation"])
                started["n"] = len(objs)
                if len(objs) > 20_000 and started.get("typed", 0) < 3:  # what fills the young generation?
                    started["typed"] = started.get("typed", 0) + 1
                    import collections

                    top = collections.Counter(type(o).__qualname__ for o in objs).most_common(12)
                    _emit(msg="gc young types", generation=info["generation"], objects=len(objs), top=top)
                del objs
            started["t"] = (time.perf_counter(), time.thread_time())
            return
        t0, c0 = started.get("t", (time.perf_counter(), time.thread_time()))
        ms, cpu_ms = (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000
        if ms >= 5:
            _emit(msg="gc pause", generation=info["generation"], ms=round(ms, 1), cpu_ms=round(cpu_ms, 1),
                  collected=info["collected"], thread=threading.current_thread().name, **({"objects": started.get("n")} if SIZES else {}))

    gc.callbacks.append(cb)

    import control_plane.server as server

    original = server._maintain

    async def maintain(nodes, cfg, stop):
        """Also watch the event loop: log every tick that came >= 20 ms late (the loop was blocked)."""
        import asyncio

        async def watch():
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                t0 = loop.time()
                await asyncio.sleep(0.01)
                late = (loop.time() - t0 - 0.01) * 1000
                if late >= 20:
                    _emit(msg="loop stall", ms=round(late, 1))

        w = asyncio.create_task(watch())
        try:
            await original(nodes, cfg, stop)
        finally:
            w.cancel()

    server._maintain = maintain


def utilisation_json(u) -> str:
    """The JSON MessageToJson writes for a Utilisation (proto3 JSON: camelCase, int64 as strings,
    defaults omitted), built directly: ~2x cheaper (6 vs 11 us), and json_format.Parse reads it back the same."""
    d = {}
    if u.cpu_percent:
        d["cpuPercent"] = u.cpu_percent
    if u.memory_used_mb:
        d["memoryUsedMb"] = str(u.memory_used_mb)
    if u.memory_percent:
        d["memoryPercent"] = u.memory_percent
    if u.disk_free_mb:
        d["diskFreeMb"] = str(u.disk_free_mb)
    if u.load1:
        d["load1"] = u.load1
    if u.net_rx_bytes:
        d["netRxBytes"] = str(u.net_rx_bytes)
    if u.net_tx_bytes:
        d["netTxBytes"] = str(u.net_tx_bytes)
    if len(u.gpu_percent):
        d["gpuPercent"] = list(u.gpu_percent)
    return json.dumps(d, separators=(",", ":"))


FLUSH_CHUNK = 500


def _flush() -> None:
    from control_plane.nodes import NodeRegistry

    def flush_heartbeats(self) -> int:
        # Under the lock only O(1)-per-node reference copies; everything slow happens outside it,
        # so NodeRegistry.heartbeat (called on the event loop) never waits for a flush.
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            utils = [(i, ts, self.utilisation[i]) for i, ts in dirty.items()]
        for k in range(0, len(utils), FLUSH_CHUNK):
            rows = [(i, ts, utilisation_json(u)) for i, ts, u in utils[k:k + FLUSH_CHUNK]]
            self.store.record_heartbeats(rows)
            time.sleep(0)  # let the event loop have the GIL between chunks
        return len(utils)

    NodeRegistry.flush_heartbeats = flush_heartbeats


def _gc() -> None:
    import control_plane.server as server

    gc.set_threshold(10_000, 10, 10)
    original = server._maintain

    async def maintain(nodes, cfg, stop):
        import asyncio

        async def freezer():
            seen = -1
            while not stop.is_set():
                await asyncio.sleep(5)
                n = len(nodes.last_seen)
                if n != seen:  # new sessions since the last look: move what they allocated out of the GC's way
                    seen = n
                    gc.collect()
                    gc.freeze()

        f = asyncio.create_task(freezer())
        try:
            await original(nodes, cfg, stop)
        finally:
            f.cancel()

    server._maintain = maintain


def _scheduled(young_every_s: float | None) -> None:
    """No automatic collections. From the maintenance loop: a full gc.collect() every GC_EVERY_S
    seconds and, when `young_every_s` is set, a young-generation gc.collect(0) that often."""
    import control_plane.server as server

    original = server._maintain

    async def maintain(nodes, cfg, stop):
        import asyncio

        async def full():
            while not stop.is_set():
                await asyncio.sleep(GC_EVERY_S)
                objects = len(gc.get_objects())
                t0 = time.perf_counter()
                n = gc.collect()
                _emit(msg="scheduled gc", ms=round((time.perf_counter() - t0) * 1000, 1), collected=n, objects=objects,
                      nodes=len(nodes.last_seen))

        async def young():
            while not stop.is_set():
                await asyncio.sleep(young_every_s)
                t0 = time.perf_counter()
                n = gc.collect(0)
                ms = (time.perf_counter() - t0) * 1000
                if ms >= 5:
                    _emit(msg="gc pause", generation=0, ms=round(ms, 1), cpu_ms=round(ms, 1), collected=n, thread="scheduled")

        gc.disable()
        tasks = [asyncio.create_task(full())] + ([asyncio.create_task(young())] if young_every_s else [])
        try:
            await original(nodes, cfg, stop)
        finally:
            for t in tasks:
                t.cancel()

    server._maintain = maintain


def main() -> int:
    unknown = set(PATCHES) - KNOWN
    if unknown:
        sys.stderr.write(f"unknown patches {sorted(unknown)}; known: {sorted(KNOWN)}\n")
        return 2
    for p in PATCHES:
        {"instrument": _instrument, "flush": _flush, "gc": _gc, "gcoff": lambda: _scheduled(None),
         "gcyoung": lambda: _scheduled(0.1)}[p]()
    sys.stderr.write(json.dumps({"msg": "bench control plane variant", "patches": PATCHES}) + "\n")
    from cli.main import main as cli_main

    return cli_main(["control-plane", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
