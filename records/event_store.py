"""SQL for the event store, telemetry and dead letters: batch writes in the caller's transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter

from epcis.capture import INDEX_COLUMNS, AcceptedEvent, IndexColumns
from epcis.telemetry import Reading
from records.db import Conn


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


# PostgreSQL types of the index columns' Python types (the columns are IndexColumns' fields).
_PG_TYPES = {
    "datetime": "timestamptz",
    "str": "text",
    "str | None": "text",
    "tuple[str, ...]": "text[]",
}
_STAGE_COLUMNS = (
    ("event_hash", "bytea"),
    *((column.name, _PG_TYPES[str(column.type)]) for column in fields(IndexColumns)),
    ("org_id", "int8"),
    ("device_id", "text"),
    ("topic", "text"),
    ("received_at", "timestamptz"),
    ("signature", "bytea"),
    ("context", "text"),
    ("event", "text"),
    ("as_captured", "text"),
)
_STAGE_NAMES = ", ".join(name for name, _ in _STAGE_COLUMNS)
_index_values = attrgetter(*INDEX_COLUMNS)
# A per-connection staging table: binary COPY into it is several times faster than binding
# arrays, and the INSERT … SELECT from it can use ON CONFLICT, which COPY cannot.
_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS event_stage ("
    + ", ".join(f"{name} {pg_type}" for name, pg_type in _STAGE_COLUMNS)
    + ", ord serial) ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY event_stage ({_STAGE_NAMES}) FROM STDIN (FORMAT BINARY)"
# Staged as text: binary COPY of jsonb would need its own encoder.
_STAGE_VALUES = ", ".join(
    f"{name}::jsonb" if name in ("context", "event", "as_captured") else name
    for name, _ in _STAGE_COLUMNS
)
# New events also enter the log queue in the same statement, so the anchor leader sees an
# event exactly when its row is committed.
_INSERT_FROM_STAGE = f"""
WITH inserted AS (
    INSERT INTO events ({_STAGE_NAMES})
    SELECT {_STAGE_VALUES}
    FROM event_stage
    ORDER BY ord
    ON CONFLICT (event_hash, event_time) DO NOTHING
    RETURNING ingest_seq, event_hash, event_time
)
INSERT INTO log_queue (ingest_seq, event_hash, event_time)
SELECT ingest_seq, event_hash, event_time FROM inserted
RETURNING event_hash
"""  # noqa: S608 (constant column names, no input)


def insert_events(conn: Conn, rows: Sequence[EventToStore]) -> set[bytes]:
    """Insert events not stored yet, in the given order; returns the digests that were new.

    Must run inside a transaction (the staging rows are dropped at commit).
    """
    if not rows:
        return set()
    conn.execute(_CREATE_STAGE)
    with conn.cursor() as cursor:
        with cursor.copy(_COPY_STAGE) as copy:
            copy.set_types([pg_type for _, pg_type in _STAGE_COLUMNS])
            for row in rows:
                accepted = row.accepted
                copy.write_row(
                    (
                        accepted.digest,
                        *[
                            list(value) if isinstance(value, tuple) else value
                            for value in _index_values(accepted.columns)
                        ],
                        row.org_id,
                        row.device_id,
                        row.topic,
                        row.received_at,
                        accepted.signature,
                        accepted.context,
                        accepted.stored_json,
                        accepted.captured_json,
                    )
                )
        cursor.execute(_INSERT_FROM_STAGE)
        return {bytes(record[0]) for record in cursor.fetchall()}


def insert_dead_letters(conn: Conn, rows: Sequence[DeadLetter]) -> None:
    """Keep refused payloads; a redelivered payload refused again is stored once.

    A payload with many refused items is kept once, in its first row; the other rows of it hold
    an empty payload and the same `payload_sha256` (an array of junk must not multiply itself).
    """
    if not rows:
        return
    digests: dict[int, bytes] = {}  # per payload object: its items share it
    kept: set[bytes] = set()
    values = []
    for row in rows:
        digest = digests.get(id(row.payload))
        if digest is None:
            digest = digests[id(row.payload)] = hashlib.sha256(row.payload).digest()
        payload = row.payload if digest not in kept else b""
        kept.add(digest)
        values.append(
            (row.received_at, row.topic, payload, digest, row.item_index, row.reason, row.detail)
        )
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO dead_letters (received_at, topic, payload, payload_sha256, item_index,"
            " reason, detail) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (topic, payload_sha256, item_index, reason) DO NOTHING",
            values,
        )


def insert_readings(conn: Conn, rows: Sequence[ReadingToStore]) -> int:
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


def event_exists(conn: Conn, digest: bytes) -> bool:
    return (
        conn.execute("SELECT 1 FROM events WHERE event_hash = %s", (digest,)).fetchone() is not None
    )


def event_of_alias(conn: Conn, alias: bytes) -> bytes | None:
    """The current digest of the event that `alias` identified under an earlier hash rule."""
    row = conn.execute(
        "SELECT event_hash FROM event_hash_aliases WHERE alias = %s", (alias,)
    ).fetchone()
    return bytes(row[0]) if row is not None else None


def dangling_aliases(conn: Conn) -> list[tuple[bytes, bytes]]:
    """(alias, event digest) of aliases that name no stored event."""
    rows = conn.execute(
        "SELECT a.alias, a.event_hash FROM event_hash_aliases a"
        " WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_hash = a.event_hash)"
        " ORDER BY a.alias"
    ).fetchall()
    return [(bytes(alias), bytes(digest)) for alias, digest in rows]


def stored_events(conn: Conn) -> Iterator[tuple[bytes, object, object]]:
    """(digest, stored event JSON, document context) of every stored event, streamed."""
    # A server-side cursor lives in a transaction; it keeps memory flat however many events.
    with conn.transaction(), conn.cursor(name="stored_events") as cursor:
        cursor.itersize = 2000
        cursor.execute("SELECT event_hash, event, context FROM events ORDER BY ingest_seq")
        for digest, event, context in cursor:
            yield bytes(digest), event, context


def unlogged_events(conn: Conn) -> list[bytes]:
    """Stored events that are neither positioned in the log nor waiting in its queue."""
    rows = conn.execute(
        "SELECT e.event_hash FROM events e"
        " WHERE NOT EXISTS (SELECT 1 FROM log_entries l WHERE l.event_hash = e.event_hash)"
        " AND NOT EXISTS (SELECT 1 FROM log_queue q WHERE q.event_hash = e.event_hash)"
    ).fetchall()
    return [bytes(row[0]) for row in rows]


def logged_but_missing(conn: Conn) -> list[tuple[int, bytes]]:
    """Log positions whose event row is gone: deleted (or re-keyed) history."""
    rows = conn.execute(
        "SELECT l.log_index, l.event_hash FROM log_entries l"
        " WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_hash = l.event_hash)"
        # A duplicate the hash rule change folded into the event it repeats keeps its position
        # under its old id, an alias of that event (ledger.rehash).
        " AND NOT EXISTS (SELECT 1 FROM event_hash_aliases a WHERE a.alias = l.event_hash)"
        " ORDER BY l.log_index"
    ).fetchall()
    return [(int(row[0]), bytes(row[1])) for row in rows]
