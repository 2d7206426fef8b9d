"""The bounds every user-sent number, duration and echoed string is held to (stratum/validation.py,
stratum/durations.py, stratum/timestamps.py, control_plane/api/errors.py)."""

from __future__ import annotations

import math

import pytest
from google.rpc import error_details_pb2, status_pb2

from control_plane import models, services
from control_plane.api.errors import MAX_DETAILS, MAX_MESSAGE, to_status
from control_plane.api.servicers import check_what_if
from control_plane.errors import InvalidArgument, NotFound
from stratum.durations import MAX_SECONDS, parse_duration
from stratum.timestamps import set_timestamp
from stratum.validation import check_duration, check_number, check_seconds, shown
from stratum.v1 import control_plane_pb2 as cp, models_pb2 as m


def test_shown_quotes_and_cuts_long_input():
    assert shown("mars") == "'mars'"
    assert shown("x" * 8192) == "'" + "x" * 80 + "…' (8192 characters)"
    assert shown(3.5) == "3.5" and shown(float("nan")) == "nan"
    assert len(shown(list(range(1000)))) < 120


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.5, 10.5, True, "3"])
def test_check_number_refuses_nan_inf_out_of_range_and_non_numbers(value):
    [(field, message)] = check_number(value, "cpu", 0, 10)
    assert field == "cpu" and message.startswith("cpu = ") and "give a number from 0 to 10" in message


def test_check_number_integer_and_bounds_inclusive():
    assert check_number(0, "n", 0, 64, integer=True) == check_number(64, "n", 0, 64, integer=True) == []
    assert check_number(2.5, "n", 0, 64, integer=True) == [("n", "n = 2.5: give a whole number from 0 to 64")]
    assert check_number(65, "n", 0, 64, integer=True, hint="replicas")[0][1].endswith("(replicas)")


def test_durations_are_at_most_ten_years():
    assert MAX_SECONDS == 3650 * 86400
    assert parse_duration("3650d") == MAX_SECONDS
    for text in ("3650d1s", "99999999999h", "9" * 40 + "s"):
        with pytest.raises(ValueError, match="longer than 3650d"):
            parse_duration(text)
    with pytest.raises(ValueError, match="invalid duration '1111"):
        parse_duration("1" * 16000)  # over 64 characters: refused before any regex runs on it
    assert check_duration("2h", "ttl", max_seconds=3600) == [("ttl", "duration '2h' is longer than the most allowed, 1h")]
    assert check_duration("99999999999h", "ttl")[0][0] == "ttl"
    assert check_seconds(math.inf, "idle_grace")[0][1].startswith("idle_grace = inf")
    assert check_seconds(MAX_SECONDS, "idle_grace") == []


@pytest.mark.parametrize("unix_s, expected", [
    (1e300, "9999-12-31T23:59:59Z"), (math.inf, "9999-12-31T23:59:59Z"), (-math.inf, "0001-01-01T00:00:00Z"),
    (1700000000.5, "2023-11-14T22:13:20.500Z"),
])
def test_set_timestamp_clamps_into_range(unix_s, expected):
    token = cp.JoinToken()
    set_timestamp(token.expires_at, unix_s)
    assert token.expires_at.ToJsonString() == expected


def test_set_timestamp_leaves_nan_unset():
    token = cp.JoinToken()
    set_timestamp(token.expires_at, math.nan)
    assert not token.HasField("expires_at")


def _parts(err) -> tuple[str, error_details_pb2.BadRequest | None]:
    status = status_pb2.Status.FromString(dict(to_status(err).trailing_metadata)["grpc-status-details-bin"])
    bad = None
    if status.details:
        bad = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad)
    return status.message, bad


def test_to_status_caps_message_and_details_in_bytes():
    err = InvalidArgument([(f'labels["{"ü" * 300}{i}"]', "名" * 500) for i in range(5000)])
    message, bad = _parts(err)
    assert len(message.encode()) <= MAX_MESSAGE and message.endswith("…")
    assert bad.ByteSize() <= MAX_DETAILS
    assert bad.field_violations[0].field.startswith('labels["üü') and bad.field_violations[0].field.endswith("…")
    assert bad.field_violations[-1].description.endswith("more problems")
    message, bad = _parts(NotFound("node 'x' not found"))
    assert (message, bad) == ("node 'x' not found", None)


def test_a_what_if_needs_a_requirement_or_a_model():
    assert [f for f, _ in check_what_if(m.PlacementQuery())] == ["requirements"]
    assert check_what_if(m.PlacementQuery(model="congestion")) == []
    assert check_what_if(m.PlacementQuery(requirements=m.Requirements(tiers=["edge"]), replicas=64)) == []
    assert [f for f, _ in check_what_if(m.PlacementQuery(model="Bad Name", replicas=-1))] == ["replicas", "model"]


def test_min_samples_bound_is_the_samples_services_keep():
    assert models.MAX_MIN_SAMPLES == services.MAX_SAMPLES
