"""Unix seconds into google.protobuf.Timestamp fields, without ever raising.

A Timestamp holds 0001-01-01 to 9999-12-31 only, and FromNanoseconds raises ValueError outside
that. A stored time is past validation already, so a bad one (an old row, a value written by
hand) is clamped into range here rather than failing every read that lists it.
"""

from __future__ import annotations

import math

from google.protobuf import timestamp_pb2

MIN_SECONDS = -62135596800  # 0001-01-01T00:00:00Z
MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


def set_timestamp(field: timestamp_pb2.Timestamp, unix_s: float) -> None:
    """Set `field` to `unix_s`, clamped to the range a Timestamp holds; NaN leaves it unset."""
    if math.isnan(unix_s):
        return  # reading a submessage field does not set it
    if not MIN_SECONDS <= unix_s <= MAX_SECONDS:
        field.FromSeconds(MIN_SECONDS if unix_s < MIN_SECONDS else MAX_SECONDS)
        return
    field.FromNanoseconds(int(unix_s * 1e9))
