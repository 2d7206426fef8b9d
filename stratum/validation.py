"""Input rules shared by the control plane (authoritative), the node CLI and the provider.

Each check returns a list of (field path, description) pairs so a caller can
report every problem at once, each with the attribute it concerns.

Every number and duration a user can send has an upper bound here, so nothing out of range is
stored (a ttl of 99999999999h once made every later ListJoinTokens fail), and every message
that repeats user input goes through `shown`, so an 8 KB name cannot make an error status larger
than a client's metadata limit.
"""

import math
import re

from stratum.durations import MAX_SECONDS as MAX_DURATION_S, format_duration, parse_duration

TIERS = ("edge", "fog", "cloud")
NODE_STATES = ("ready", "down")

# Kubernetes-style label syntax: operators already know it.
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

Violations = list[tuple[str, str]]

# Upper bounds of what one node, replica or request can sensibly ask for: far above any real
# machine, low enough that arithmetic on them (sums over replicas, times in nanoseconds) stays exact.
MAX_CPU_CORES = 4096  # per node or replica
MAX_MEMORY_MB = 1 << 26  # 64 TiB, per node or replica (and per GPU)
MAX_GPUS = 64  # per replica
MAX_REPLICAS = 64  # per service or what-if query
MAX_TEXT = 1024  # free text (descriptions, gpu models, reasons) in characters
MAX_REF = 253  # a reference to something else (a path, a host, a dataset, an arch) in characters
SHOWN = 80  # characters of user input repeated in a message


def shown(value, limit: int = SHOWN) -> str:
    """`value` as a message quotes it: repr()-quoted, cut to `limit` characters with an ellipsis
    (and its full length) when longer. Use it wherever a message repeats user input."""
    if not isinstance(value, str):
        value = repr(value)
        return value if len(value) <= limit else value[:limit] + f"… ({len(value)} characters)"
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit] + "…") + f" ({len(value)} characters)"


def shown_key(key: str, limit: int = SHOWN) -> str:
    """A map key as it appears inside a field path (labels["<key>"]): cut like `shown`, unquoted."""
    return key if len(key) <= limit else key[:limit] + "…"


def check_number(value, field: str, lo: float, hi: float, *, integer: bool = False, hint: str = "") -> Violations:
    """`value` is a finite number from `lo` to `hi` (a whole one with `integer`). NaN and ±Inf are
    refused: NaN passes every `<` test, so a plain range check lets it through."""
    what = "a whole number" if integer else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi
    if ok and integer and value != int(value):
        ok = False
    if ok:
        return []
    return [(field, f"{field} = {shown(value)}: give {what} from {lo:g} to {hi:g}" + (f" ({hint})" if hint else ""))]


def check_text(value: str, field: str, limit: int = MAX_TEXT) -> Violations:
    if len(value) > limit:
        return [(field, f"{field} is {len(value)} characters long; at most {limit}")]
    return []


def check_tier(tier: str, field: str = "tier", allow_empty: bool = False) -> Violations:
    if tier == "" and allow_empty:
        return []
    if tier not in TIERS:
        return [(field, f"unknown tier {shown(tier)}: expected one of {', '.join(TIERS)}")]
    return []


def check_name(name: str, field: str = "name") -> Violations:
    if not _NAME.match(name or ""):
        return [(field, f"invalid name {shown(name)}: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit")]
    return []


def check_labels(labels: dict[str, str], field: str = "labels") -> Violations:
    out: Violations = []
    for key, value in labels.items():
        path = f'{field}["{shown_key(key)}"]'
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME.match(name) or (prefix and not _LABEL_PREFIX.match(prefix)):
            out.append((path, f"invalid label key {shown(key)}: use an optional DNS prefix and '/', then 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
        if not _LABEL_VALUE.match(value):
            out.append((path, f"invalid label value {shown(value)}: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
    return out


def check_duration(text: str, field: str, allow_empty: bool = True, max_seconds: float = MAX_DURATION_S) -> Violations:
    """A positive duration string of at most `max_seconds` (10 years unless said otherwise)."""
    if text == "" and allow_empty:
        return []
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        return [(field, str(e))]
    if seconds <= 0:
        return [(field, f"duration {shown(text)} must be positive")]
    if seconds > max_seconds:
        return [(field, f"duration {shown(text)} is longer than the most allowed, {format_duration(max_seconds)}")]
    return []


def check_seconds(value: float, field: str, max_seconds: float = MAX_DURATION_S, hint: str = "") -> Violations:
    """A duration sent as seconds (a double): 0 (unset) to `max_seconds`, never NaN or Inf."""
    return check_number(value, field, 0, max_seconds, hint=hint or f"seconds, at most {format_duration(max_seconds)}")


def check_requirements(r, field: str = "requirements") -> Violations:
    """Every field of a models_pb2.Requirements: what services' requirements and what-if queries share."""
    problems = check_number(r.cpu, f"{field}.cpu", 0, MAX_CPU_CORES, hint="cores, e.g. 0.5; 0 for no requirement")
    problems += check_number(r.memory_mb, f"{field}.memory_mb", 0, MAX_MEMORY_MB, integer=True, hint="MiB")
    for i, tier in enumerate(r.tiers):
        problems += check_tier(tier, f"{field}.tiers[{i}]")
    problems += check_labels(dict(r.labels), f"{field}.labels")
    problems += check_number(r.gpu, f"{field}.gpu", 0, MAX_GPUS, integer=True, hint="GPUs per replica")
    problems += check_number(r.gpu_memory_mb, f"{field}.gpu_memory_mb", 0, MAX_MEMORY_MB, integer=True, hint="MiB")
    for name, limit in (("arch", MAX_REF), ("gpu_model", MAX_REF), ("zone", 63), ("data", MAX_REF)):
        problems += check_text(getattr(r, name), f"{field}.{name}", limit)
    if len(r.binaries) > 64:
        problems.append((f"{field}.binaries", f"{len(r.binaries)} programs; at most 64"))
    for i, b in enumerate(r.binaries[:64]):
        problems += check_text(b, f"{field}.binaries[{i}]", MAX_REF)
    return problems


def check_preferences(p, field: str = "placement") -> Violations:
    """Every field of a models_pb2.PlacementPreferences."""
    problems: Violations = []
    for i, tier in enumerate(p.prefer_tiers):
        problems += check_tier(tier, f"{field}.prefer_tiers[{i}]")
    problems += check_labels(dict(p.affinity), f"{field}.affinity")
    for i, other in enumerate(p.anti_affinity):
        problems += check_name(other, f"{field}.anti_affinity[{i}]")
    return problems


def parse_label_flags(items: list[str]) -> dict[str, str]:
    """`--label k=v` flags to a dict; ValueError naming the bad flag."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"malformed label {shown(item)}: expected key=value")
        labels[key] = value
    problems = check_labels(labels, "--label")
    if problems:
        raise ValueError("; ".join(f"{f}: {d}" for f, d in problems))
    return labels
