"""Request placement after StraightLine: which deployment form serves a request stream.

A service can be packaged in up to three forms, each profiled at packaging time (`FormProfile`):

  edge       a replica on the node the router runs on: lowest latency, small memory, always running;
  always_on  a big always-running fog/cloud replica: more memory and cpu, the full model;
  on_demand  a replica that scales to zero: started on a stream's first request, stopped after
             `Profiles.idle_stop_s` without requests.

The router keeps a few decayed numbers per request stream (`StreamStats`: rate, input size, share of
inputs outside the training distribution) and asks `decide` which form suits the stream. The rule
(every threshold comes from the profiles; see README "Request placement (StraightLine)"):

  0. input p95 larger than every form takes                    -> the form that takes the most;
  1. input p95 larger than the edge form's `max_input_bytes`   -> always_on (else on_demand);
  2. OOD share above `Profiles.ood_share_max`                  -> always_on (full model), if present;
  3. rate below the break-even rate, where keeping the warm
     replica of rule 4 costs more than starting one per
     request, and cold start + p95 fits the SLO                -> on_demand;
  4. otherwise edge when its p95 meets the SLO and its capacity
     covers the rate, else always_on (else on_demand, else edge).

`route` then picks ready backends for a decision, falling back to other forms that can take the
stream when the chosen one has no ready replica.

    stats = StreamStats(half_life_s=60)
    stats.observe("10.0.0.7", now, len(body), ood=False)          # on each request, O(1)
    d = decide(stats.snapshot("10.0.0.7", now), profiles, slo_p95_ms=50)
    r = route(d, [("edge", "r1"), ("always_on", "fog-2")])         # Route(form, backends, start)

Pure: no I/O, time is passed in, never read; the same inputs give the same answers.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable

__all__ = ["FORMS", "FormProfile", "Profiles", "Stats", "StreamStats", "Decision", "Route", "decide", "InputCheck",
           "ood_bounds", "Placer",
           "break_even_rps", "route"]

FORMS = ("edge", "always_on", "on_demand")

# Other forms a stream may go to when its form has no ready replica, in order (only those that fit
# its inputs are kept, see `decide`). Big inputs never fall back to a form too small for them.
_FALLBACK = {
    "edge": ("always_on", "on_demand"),  # more capacity; on-demand last (it cold-starts)
    "always_on": ("on_demand", "edge"),  # the other big form first
    "on_demand": ("edge", "always_on"),  # a rare stream adds next to no load: the nearest warm one
}


@dataclass(frozen=True)
class FormProfile:
    """One deployment form of a service, as measured when it was packaged."""
    form: str  # "edge" | "always_on" | "on_demand"
    p95_ms: float  # per-request latency, network hop included, on a warm replica
    cold_start_s: float = 0.0  # 0 for the always-running forms
    max_input_bytes: int = 0  # largest body it handles within its memory; 0 = unlimited
    capacity_rps: float = 0.0  # per replica at the latency objective; 0 = not measured (no check)
    cost_per_hour: float = 0.0  # per running replica; 0 for owned (edge/fog) capacity

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"unknown form {self.form!r}; one of {', '.join(FORMS)}")
        for name in ("p95_ms", "cold_start_s", "max_input_bytes", "capacity_rps", "cost_per_hour"):
            if not getattr(self, name) >= 0:  # also rejects NaN
                raise ValueError(f"{self.form}: {name} must be >= 0")

    def fits(self, size_bytes: int) -> bool:
        return self.max_input_bytes == 0 or size_bytes <= self.max_input_bytes


@dataclass(frozen=True)
class Profiles:
    """The forms a service is available in, at most one of each."""
    forms: tuple  # of FormProfile
    idle_stop_s: float = 300.0  # an on-demand replica stops after this long without a request
    # A stream whose share of out-of-distribution inputs is above this goes to the full model.
    # Set it above the OOD detector's false-alarm rate on held-out data, so in-distribution streams
    # stay under it.
    ood_share_max: float = 0.25

    def __post_init__(self):
        names = [f.form for f in self.forms]
        if not names:
            raise ValueError("a service needs at least one form")
        if len(set(names)) != len(names):
            raise ValueError(f"one profile per form: {names}")
        if not self.idle_stop_s > 0:
            raise ValueError("idle_stop_s must be > 0")
        if not 0 <= self.ood_share_max <= 1:
            raise ValueError("ood_share_max must be in [0, 1]")

    def get(self, form: str) -> FormProfile | None:
        return next((f for f in self.forms if f.form == form), None)


@dataclass(frozen=True)
class Stats:
    rate_rps: float  # exponentially decayed request rate
    size_p95_bytes: int  # upper edge of the log2 bucket holding the 95th percentile of body sizes
    ood_share: float  # decayed share of requests flagged out-of-distribution
    requests: int  # requests seen (not decayed)


# Body sizes go in buckets by bit length: bucket k holds [2^(k-1), 2^k - 1], bucket 0 holds 0.
# 41 buckets reach 1 TiB; larger bodies count in the last one.
_BUCKETS = 41
# Forward decay: weights grow as 2^((t - t0)/h) instead of decaying everything on each request.
# Rescale once they pass 2^32 (every 32 half-lives at most), so the floats never overflow.
_RESCALE_HALF_LIVES = 32.0


class _Stream:
    __slots__ = ("t0", "last", "total", "ood", "buckets", "requests")

    def __init__(self, now: float):
        self.t0 = self.last = now
        self.total = self.ood = 0.0
        self.buckets = [0.0] * _BUCKETS
        self.requests = 0


class StreamStats:
    """Per-stream request rate, input size p95 and OOD share, decayed with one half-life.

    O(1) per request and bounded: at most `max_streams` streams, the least recently observed one
    is dropped first. A stream is whatever key the router passes (client address, the
    `x-stratum-stream` header). Time is passed in; a time earlier than the stream's last one counts
    as the last one (a clock step never makes a stream look busier).
    """

    def __init__(self, half_life_s: float = 60.0, max_streams: int = 4096):
        if not half_life_s > 0 or max_streams < 1:
            raise ValueError("half_life_s must be > 0 and max_streams >= 1")
        self.half_life_s = float(half_life_s)
        self.max_streams = max_streams
        self._streams: OrderedDict[str, _Stream] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream) -> bool:
        return stream in self._streams

    def observe(self, stream: str, now: float, body_bytes: int, ood: bool = False) -> None:
        s = self._streams.get(stream)
        if s is None:
            s = self._streams[stream] = _Stream(now)
            if len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(stream)
        now = max(now, s.last)
        s.last = now
        age = (now - s.t0) / self.half_life_s
        if age > _RESCALE_HALF_LIVES:
            f = 2.0 ** -age
            s.total *= f
            s.ood *= f
            s.buckets = [b * f for b in s.buckets]
            s.t0, age = now, 0.0
        w = 2.0 ** age
        s.total += w
        if ood:
            s.ood += w
        s.buckets[min(max(int(body_bytes), 0).bit_length(), _BUCKETS - 1)] += w
        s.requests += 1

    def snapshot(self, stream: str, now: float) -> Stats:
        """The stream's numbers at `now` (read only: does not count as use for the LRU order)."""
        s = self._streams.get(stream)
        if s is None or s.total <= 0:
            return Stats(0.0, 0, 0.0, 0)
        decayed = s.total * 2.0 ** (-(max(now, s.last) - s.t0) / self.half_life_s)
        # For a steady rate r the decayed count settles at r * h / ln 2.
        rate = decayed * math.log(2) / self.half_life_s
        need, seen, k = 0.95 * s.total * (1 - 1e-12), 0.0, 0  # tolerance: float sums of weights
        for k, b in enumerate(s.buckets):
            seen += b
            if seen >= need:
                break
        return Stats(rate, (1 << k) - 1, s.ood / s.total, s.requests)


@dataclass(frozen=True)
class Decision:
    form: str
    reason: str  # the rule that chose it, with the numbers
    fallback: tuple = ()  # other available forms that can take the stream's inputs, in order


def _n(x: float) -> str:
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}"


def break_even_rps(warm: FormProfile, on_demand: FormProfile, idle_stop_s: float) -> float:
    """The request rate below which starting an on-demand replica per request costs less than
    keeping `warm` running. Each request to a rare stream starts a replica that runs for at most
    cold_start_s + idle_stop_s, so on-demand costs at most rate * (cold_start_s + idle_stop_s)
    replica-seconds per second against 1 for a warm replica, weighted by their prices when both
    have one (a 0 price is owned capacity: its cost is the room it holds, counted in time)."""
    return _price_ratio(warm, on_demand) / (on_demand.cold_start_s + idle_stop_s)


def _price_ratio(warm: FormProfile, on_demand: FormProfile) -> float:
    if warm.cost_per_hour > 0 and on_demand.cost_per_hour > 0:
        return warm.cost_per_hour / on_demand.cost_per_hour
    return 1.0


def decide(stats: Stats, profiles: Profiles, slo_p95_ms: float = 0.0) -> Decision:
    """The form for a stream; `slo_p95_ms` <= 0 means no latency objective."""
    edge, warm, od = profiles.get("edge"), profiles.get("always_on"), profiles.get("on_demand")
    size, rate = stats.size_p95_bytes, stats.rate_rps
    slo = slo_p95_ms > 0

    def done(form: str, reason: str) -> Decision:
        fallback = tuple(f for f in _FALLBACK[form] if (p := profiles.get(f)) is not None and p.fits(size))
        return Decision(form, reason, fallback)

    # 0. Larger than every form takes: the largest one is the best chance.
    if not any(p.fits(size) for p in profiles.forms):
        big = max(profiles.forms, key=lambda p: (p.max_input_bytes, -FORMS.index(p.form)))
        return done(big.form, f"input p95 {_n(size)} B > every form's max: {big.form} (largest, max "
                              f"{_n(big.max_input_bytes)} B)")

    # 1. Too large for the edge replica's memory: the big form, else on-demand (one of them fits).
    if edge is not None and not edge.fits(size):
        form = "always_on" if warm is not None and warm.fits(size) else "on_demand"
        return done(form, f"input p95 {_n(size)} B > edge max {_n(edge.max_input_bytes)} B: {form}")

    # 2. Mostly out-of-distribution inputs: the full model with the most capacity.
    if warm is not None and warm.fits(size) and stats.ood_share > profiles.ood_share_max:
        return done("always_on",
                    f"ood share {_n(stats.ood_share)} > {_n(profiles.ood_share_max)}: always_on (full model)")

    # 4, worked out first: rule 3 weighs on-demand against the warm form the stream would get.
    # From here on the edge form, if any, takes the stream's inputs.
    if edge is None:
        short = "no edge form"
    elif slo and edge.p95_ms > slo_p95_ms:
        short = f"edge p95 {_n(edge.p95_ms)} ms > slo {_n(slo_p95_ms)} ms"
    elif edge.capacity_rps > 0 and rate > edge.capacity_rps:
        short = f"rate {_n(rate)} req/s > edge capacity {_n(edge.capacity_rps)} req/s"
    else:
        short = ""
    if not short:
        pick, why = edge, "edge " + (f"p95 {_n(edge.p95_ms)} ms <= slo {_n(slo_p95_ms)} ms" if slo else "serves it")
        if edge.capacity_rps > 0:
            why += f", capacity {_n(edge.capacity_rps)} req/s >= rate {_n(rate)} req/s"
        why += ": edge"
    elif warm is not None and warm.fits(size):
        pick, why = warm, f"{short}: always_on"
    elif od is not None and od.fits(size):
        # No big always-running form: on-demand replicas scale out, at the price of cold starts.
        return done("on_demand", f"{short}, no always_on form takes it: on_demand")
    else:
        return done("edge", f"{short}, but no other form takes it: edge")

    # 3. Rare stream: a warm replica for it costs more than a cold start per request.
    if od is not None and od.fits(size):
        be = break_even_rps(pick, od, profiles.idle_stop_s)
        if rate < be:
            cold_ms = od.cold_start_s * 1000 + od.p95_ms
            if not slo or cold_ms <= slo_p95_ms:
                ratio = _price_ratio(pick, od)
                return done("on_demand", f"rate {_n(rate)} req/s < break-even {_n(be)} req/s (idle stop "
                            f"{_n(profiles.idle_stop_s)} s, cold start {_n(od.cold_start_s)} s"
                            + (f", price ratio {_n(ratio)}" if ratio != 1 else "") + "): on_demand")
            why += (f"; not on_demand: cold start {_n(od.cold_start_s * 1000)} ms + p95 {_n(od.p95_ms)} ms "
                    f"> slo {_n(slo_p95_ms)} ms")
    return done(pick.form, why)


@dataclass(frozen=True)
class Route:
    form: str
    backends: tuple  # ready backend ids of that form, in the order given (the router balances them)
    start: bool = False  # none ready: start an on-demand replica and send the request to it


def route(decision: Decision, ready: Iterable[tuple[str, str]], can_start: bool = True) -> Route | None:
    """Ready backends for a decision: its form, else the first of its fallbacks with a ready
    replica. On-demand with none ready means start one (scale from zero), unless `can_start` is
    False (its pool is unavailable). None: nothing can take the request (the router answers 503)."""
    by_form: dict[str, list] = {}
    for form, backend in ready:
        by_form.setdefault(form, []).append(backend)
    for form in (decision.form, *decision.fallback):
        if by_form.get(form):
            return Route(form, tuple(by_form[form]))
        if form == "on_demand" and can_start:
            return Route(form, (), start=True)
    return None


class InputCheck:
    """Flags a request whose rows fall outside the training inputs: a numeric value outside the
    training range (widened by `margin` of the range on each side) or a category training never saw
    (unless training had more categories than it kept). Built from `ood_bounds` of the model's drift
    reference, which the control plane sends with the assignment.

        check = InputCheck({"num": {"hour": [0, 23]}, "cat": {"weekday": ["mon", "tue"]}})
        check.is_ood(b'{"instances": [{"hour": 40, "weekday": "mon"}]}')   # True
    """

    def __init__(self, bounds: dict, margin: float = 0.05):
        self.num = {}
        for name, (lo, hi) in (bounds.get("num") or {}).items():
            pad = (hi - lo) * margin
            self.num[name] = (lo - pad, hi + pad)
        self.cat = {name: frozenset(values) for name, values in (bounds.get("cat") or {}).items()}

    def __bool__(self) -> bool:
        return bool(self.num or self.cat)

    def row_is_ood(self, row: dict) -> bool:
        for name, (lo, hi) in self.num.items():
            v = row.get(name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not lo <= v <= hi:
                return True
        for name, seen in self.cat.items():
            v = row.get(name)
            if isinstance(v, bool):
                v = "true" if v else "false"
            if v is not None and str(v) not in seen:
                return True
        return False

    def is_ood(self, body: bytes) -> bool:
        """True when any row of a POST /predict body is out of distribution; False for bodies it cannot
        read (the model answers those with its own error)."""
        try:
            rows = json.loads(body).get("instances")
        except (ValueError, AttributeError, UnicodeDecodeError):
            return False
        return isinstance(rows, list) and any(isinstance(r, dict) and self.row_is_ood(r) for r in rows)


def ood_bounds(reference: dict) -> dict:
    """The compact bounds an `InputCheck` needs, from a drift reference profile
    (control_plane/ml/drift.py: reference_profile): the sampled range of each numeric feature and the
    categories of each categorical one (none when training had more than it kept)."""
    num, cat = {}, {}
    for name, f in (reference.get("features") or {}).items():
        if f.get("values"):
            num[name] = [float(f["values"][0]), float(f["values"][-1])]
        elif "frequencies" in f and "__other__" not in f["frequencies"]:
            cat[name] = sorted(f["frequencies"])
    return {"num": num, "cat": cat}


class Placer:
    """The router's side of request placement for one service: tracks streams and answers, per
    request, the forms to try in order. A stream's decision is reworked at most every `refresh_s`
    (decide formats its reason; the stats change slowly anyway), and `decisions` keeps the latest
    per stream for the node's status.

    `force` sends everything to one form (the single-form baselines of bench/request_placement).
    """

    def __init__(self, profiles: Profiles, slo_p95_ms: float = 0.0, *, half_life_s: float = 60.0,
                 max_streams: int = 4096, refresh_s: float = 1.0, force: str | None = None):
        if force is not None and force not in FORMS:
            raise ValueError(f"unknown form {force!r}; one of {', '.join(FORMS)}")
        self.profiles, self.slo_p95_ms, self.force = profiles, slo_p95_ms, force
        self.stats = StreamStats(half_life_s, max_streams)
        self.refresh_s = refresh_s
        self._cache: OrderedDict[str, tuple[float, Decision, tuple]] = OrderedDict()
        self.max_streams = max_streams

    def forms(self, stream: str, now: float, body_bytes: int, ood: bool = False) -> tuple:
        """Record the request, and return the forms to try for it, best first."""
        self.stats.observe(stream, now, body_bytes, ood)
        if self.force is not None:
            return (self.force,)
        hit = self._cache.get(stream)
        if hit is not None and now - hit[0] < self.refresh_s:
            order = hit[2]
        else:
            d = decide(self.stats.snapshot(stream, now), self.profiles, self.slo_p95_ms)
            order = (d.form, *d.fallback)
            self._cache[stream] = (now, d, order)
            self._cache.move_to_end(stream)
            if len(self._cache) > self.max_streams:
                self._cache.popitem(last=False)
        # The stream's p95 may be small while this one request is not: a form whose memory cannot
        # take this body is skipped for it (kept only when no form can).
        fits = tuple(f for f in order if (p := self.profiles.get(f)) is None or p.fits(body_bytes))
        return fits or order

    def inflight_limit(self, form: str, backends: int) -> int:
        """Requests one backend of `form` may hold before new ones spill to the next form (0: no limit).
        Little's law: a backend completing `capacity_rps / backends` requests a second works off N
        queued ones in N / rate seconds, and the request itself then takes its p95; to answer within
        the objective, N <= rate x (slo - p95). One queued beyond that would wait past the objective,
        while the next form may still have room."""
        p = self.profiles.get(form)
        if p is None or not p.capacity_rps or self.slo_p95_ms <= 0 or backends <= 0:
            return 0
        return max(1, math.ceil(p.capacity_rps / backends * max(self.slo_p95_ms - p.p95_ms, 0.0) / 1000))

    def decisions(self) -> dict[str, Decision]:
        return {s: d for s, (_, d, _) in self._cache.items()}
