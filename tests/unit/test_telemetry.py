"""Telemetry payload parsing: accepted shapes and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from epcis.rejects import RejectCode
from epcis.telemetry import Reading, parse_telemetry

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def parse(payload: object, raw: bytes | None = None) -> tuple[list[Reading], list[tuple[int, str]]]:
    result = parse_telemetry(
        raw if raw is not None else orjson.dumps(payload),
        now=NOW,
        max_payload_bytes=4096,
        max_future_skew=timedelta(minutes=10),
    )
    return result.readings, [(r.index, r.code.value) for r in result.refused]


def test_single_sample_in_any_offset_is_stored_in_utc() -> None:
    readings, refused = parse(
        {"time": "2026-01-01T19:00:00+08:00", "readings": {"temperature": 4.2, "humidity": 61}}
    )
    assert refused == []
    assert readings == [
        Reading(datetime(2026, 1, 1, 11, 0, tzinfo=UTC), "temperature", 4.2),
        Reading(datetime(2026, 1, 1, 11, 0, tzinfo=UTC), "humidity", 61.0),
    ]


def test_a_bad_sample_in_a_list_refuses_only_itself() -> None:
    good = {"time": "2026-01-01T11:00:00Z", "readings": {"t": 1}}
    readings, refused = parse([good, {"time": "2026-01-01T11:00:00", "readings": {"t": 2}}, good])
    assert len(readings) == 2
    assert refused == [(1, RejectCode.NAIVE_EVENT_TIME.value)]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"time": "2026-01-01T13:00:00Z", "readings": {"t": 1}}, RejectCode.EVENT_TIME_IN_FUTURE),
        ({"time": "noon", "readings": {"t": 1}}, RejectCode.INVALID_TELEMETRY),
        ({"time": 1700000000, "readings": {"t": 1}}, RejectCode.INVALID_TELEMETRY),
        ({"time": "2026-01-01T11:00:00Z", "readings": {}}, RejectCode.INVALID_TELEMETRY),
        ({"time": "2026-01-01T11:00:00Z", "readings": {"t": "cold"}}, RejectCode.INVALID_TELEMETRY),
        ({"time": "2026-01-01T11:00:00Z", "readings": {"t": True}}, RejectCode.INVALID_TELEMETRY),
        (
            {"time": "2026-01-01T11:00:00Z", "readings": {"bad name!": 1}},
            RejectCode.INVALID_TELEMETRY,
        ),
        ("just a string", RejectCode.INVALID_TELEMETRY),
    ],
)
def test_bad_samples_are_refused(payload: object, code: RejectCode) -> None:
    readings, refused = parse(payload)
    assert readings == []
    assert refused == [(0, code.value)]


def test_whole_payload_refusals() -> None:
    assert parse(None, raw=b"\xff\xfe")[1] == [(-1, RejectCode.NOT_JSON.value)]
    assert parse(None, raw=b"[]")[1] == [(-1, RejectCode.INVALID_TELEMETRY.value)]
    assert parse(None, raw=b" " * 5000)[1] == [(-1, RejectCode.PAYLOAD_TOO_LARGE.value)]


def test_numbers_that_overflow_to_infinity_are_not_json() -> None:
    raw = b'{"time": "2026-01-01T11:00:00Z", "readings": {"t": 1e999}}'
    assert parse(None, raw=raw) == ([], [(-1, RejectCode.NOT_JSON.value)])
