"""SQL for the event store, telemetry and dead letters: batch writes in the caller's transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
import psycopg

from ledger.capture import AcceptedEvent
from ledger.telemetry import Reading


@dataclass(frozen=True)
class EventToStore:
    accepted: AcceptedEvent
    org_id: int
    device_id: str
    topic: str
    received_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    received_at: datetime
    topic: str
    payload: bytes
    item_index: int
    reason: str
    detail: str


@dataclass(frozen=True)
class ReadingToStore:
    reading: Reading
    org_id: int
    device_id: str
    received_at: datetime


_INSERT_EVENTS = """
INSERT INTO events (event_hash, event_time, event_time_zone_offset, event_type, action, biz_step,
                    disposition, stage, read_point, biz_location, epcs, lots, org_id, device_id,
                    topic, received_at, signature, context, event)
SELECT u.event_hash, u.event_time, u.tz, u.event_type, u.action, u.biz_step, u.disposition,
       u.stage, u.read_point, u.biz_location,
       ARRAY(SELECT jsonb_array_elements_text(u.epcs::jsonb)),
       ARRAY(SELECT jsonb_array_elements_text(u.lots::jsonb)),
       u.org_id, u.device_id, u.topic, u.received_at, u.signature, u.context::jsonb, u.event::jsonb
FROM unnest(%s::bytea[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[],
            %s::text[], %s::text[], %s::timestamptz[], %s::bytea[], %s::text[], %s::text[])
     WITH ORDINALITY AS u(event_hash, event_time, tz, event_type, action, biz_step, disposition,
                          stage, read_point, biz_location, epcs, lots, org_id, device_id, topic,
                          received_at, signature, context, event, ord)
ORDER BY u.ord
ON CONFLICT (event_hash, event_time) DO NOTHING
RETURNING event_hash
"""


def insert_events(conn: psycopg.Connection[object], rows: Sequence[EventToStore]) -> set[bytes]:
    """Insert events not stored yet, in the given order; returns the digests that were new."""
    if not rows:
        return set()
    columns: list[list[object]] = [[] for _ in range(19)]
    for row in rows:
        accepted = row.accepted
        values: tuple[object, ...] = (
            accepted.digest,
            accepted.event_time,
            accepted.event_time_zone_offset,
            accepted.event_type,
            accepted.action,
            accepted.biz_step,
            accepted.disposition,
            accepted.stage,
            accepted.read_point,
            accepted.biz_location,
            orjson.dumps(row.accepted.epcs).decode(),
            orjson.dumps(row.accepted.lots).decode(),
            row.org_id,
            row.device_id,
            row.topic,
            row.received_at,
            row.accepted.signature,
            row.accepted.context,
            row.accepted.stored_json,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    cursor = conn.execute(_INSERT_EVENTS, columns)
    return {bytes(record[0]) for record in cursor.fetchall()}  # type: ignore[index]


def insert_dead_letters(conn: psycopg.Connection[object], rows: Sequence[DeadLetter]) -> None:
    """Keep refused payloads; a redelivered payload refused again is stored once."""
    if not rows:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO dead_letters (received_at, topic, payload, payload_sha256, item_index,"
            " reason, detail) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (topic, payload_sha256, item_index, reason) DO NOTHING",
            [
                (
                    row.received_at,
                    row.topic,
                    row.payload,
                    hashlib.sha256(row.payload).digest(),
                    row.item_index,
                    row.reason,
                    row.detail,
                )
                for row in rows
            ],
        )


def insert_readings(conn: psycopg.Connection[object], rows: Sequence[ReadingToStore]) -> int:
    """Append telemetry readings; a reading already stored (redelivery) is skipped."""
    if not rows:
        return 0
    cursor = conn.execute(
        "INSERT INTO telemetry (time, org_id, device_id, metric, value, received_at)"
        " SELECT * FROM unnest(%s::timestamptz[], %s::bigint[], %s::text[], %s::text[],"
        " %s::float8[], %s::timestamptz[])"
        " ON CONFLICT (org_id, device_id, metric, time) DO NOTHING",
        (
            [row.reading.time for row in rows],
            [row.org_id for row in rows],
            [row.device_id for row in rows],
            [row.reading.metric for row in rows],
            [row.reading.value for row in rows],
            [row.received_at for row in rows],
        ),
    )
    return cursor.rowcount
