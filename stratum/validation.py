"""Input rules shared by the control plane (authoritative), the node CLI and the provider.

Each check returns a list of (field path, description) pairs so a caller can
report every problem at once, each with the attribute it concerns.
"""

import re

from stratum.durations import parse_duration

TIERS = ("edge", "fog", "cloud")
NODE_STATES = ("ready", "down")

# Kubernetes-style label syntax: operators already know it.
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

Violations = list[tuple[str, str]]


def check_tier(tier: str, field: str = "tier", allow_empty: bool = False) -> Violations:
    if tier == "" and allow_empty:
        return []
    if tier not in TIERS:
        return [(field, f"unknown tier {tier!r}: expected one of {', '.join(TIERS)}")]
    return []


def check_name(name: str, field: str = "name") -> Violations:
    if not _NAME.match(name or ""):
        return [(field, f"invalid name {name!r}: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit")]
    return []


def check_labels(labels: dict[str, str], field: str = "labels") -> Violations:
    out: Violations = []
    for key, value in labels.items():
        path = f'{field}["{key}"]'
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME.match(name) or (prefix and not _LABEL_PREFIX.match(prefix)):
            out.append((path, f"invalid label key {key!r}: use an optional DNS prefix and '/', then 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
        if not _LABEL_VALUE.match(value):
            out.append((path, f"invalid label value {value!r}: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
    return out


def check_duration(text: str, field: str, allow_empty: bool = True) -> Violations:
    if text == "" and allow_empty:
        return []
    try:
        if parse_duration(text) <= 0:
            return [(field, f"duration {text!r} must be positive")]
    except ValueError as e:
        return [(field, str(e))]
    return []


def parse_label_flags(items: list[str]) -> dict[str, str]:
    """`--label k=v` flags to a dict; ValueError naming the bad flag."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"malformed label {item!r}: expected key=value")
        labels[key] = value
    problems = check_labels(labels, "--label")
    if problems:
        raise ValueError("; ".join(f"{f}: {d}" for f, d in problems))
    return labels
