"""SQL of named queries, their webhook subscriptions, the streams open on them, and the log
positions they follow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from records.db import Conn


@dataclass(frozen=True)
class NamedQuery:
    id: int
    org_id: int
    name: str
    query: dict[str, Any]
    params: list[list[str]]
    created_at: datetime

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The parameters as epcis/query.py's parse_event_query reads them."""
        return [(name, value) for name, value in self.params]


@dataclass(frozen=True)
class Subscription:
    id: int
    subscription_id: UUID
    query_id: int
    query_name: str
    org_id: int
    org_role: str
    dest: str
    signature_token: str | None
    report_if_empty: bool
    schedule: dict[str, Any] | None
    initial_record_time: datetime | None
    created_at: datetime
    position: int
    last_notified_at: datetime | None
    attempts: int
    failing_since: datetime | None
    last_error: str | None
    suspended: bool


@dataclass(frozen=True)
class LogPosition:
    """A log position and the event digest it holds (the event's id now)."""

    log_index: int
    event_hash: bytes


class DuplicateName(Exception):
    """The org already has a named query of that name."""


class LimitReached(Exception):
    """The org already holds as many as it may (named queries or subscriptions)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


# pg_advisory_xact_lock's first key for counting an org's holdings; the second is the org id.
_HOLDINGS_LOCK = 0x7366_7173  # "sfqs"


def _lock_holdings(conn: Conn, org_id: int) -> None:
    """Serialise one org's creations (count, then insert) until the transaction ends, so two
    at once cannot both pass the limit; other orgs are not held up."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_HOLDINGS_LOCK, org_id))


_QUERY_COLUMNS = "id, org_id, name, query, params, created_at"


def create_query(
    conn: Conn,
    org_id: int,
    name: str,
    query: dict[str, Any],
    params: list[tuple[str, str]],
    limit: int,
) -> NamedQuery:
    """Keep a named query (its parameters already checked); DuplicateName if the org has one
    of that name, LimitReached if it has `limit` already."""
    try:
        with conn.transaction(), conn.cursor(row_factory=class_row(NamedQuery)) as cursor:
            _lock_holdings(conn, org_id)
            held = conn.execute(
                "SELECT count(*) FROM named_queries WHERE org_id = %s", (org_id,)
            ).fetchone()
            if held is not None and held[0] >= limit:
                raise LimitReached(limit)
            created = cursor.execute(
                "INSERT INTO named_queries (org_id, name, query, params)"  # noqa: S608
                f" VALUES (%s, %s, %s, %s) RETURNING {_QUERY_COLUMNS}",
                (org_id, name, Jsonb(query), Jsonb([list(pair) for pair in params])),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise DuplicateName(name) from None
    assert created is not None
    return created


@dataclass(frozen=True)
class _StreamsHeld:
    streams: int
    strictest_cap: int | None


@dataclass(frozen=True)
class StreamOpening:
    """A stream's id once counted, or None: the org holds `cap` streams already."""

    stream_id: int | None
    # The cap that applied: the smallest of the opening process's and those its org's open
    # streams were opened under.
    cap: int


def open_stream(conn: Conn, org_id: int, limit: int, lease: timedelta) -> StreamOpening:
    """Count a new WebSocket stream of the org, across every API process, unless the org has
    as many open as the smallest of `limit` and the limits its open streams were opened under
    (processes configured differently enforce the strictest). Streams whose lease lapsed
    (their process died) are dropped first, every org's: rows of an org that never streams
    again do not stay."""
    with conn.transaction():
        _lock_holdings(conn, org_id)
        conn.execute("DELETE FROM open_streams WHERE lease_until < now()")
        with conn.cursor(row_factory=class_row(_StreamsHeld)) as cursor:
            held = cursor.execute(
                "SELECT count(*) AS streams, min(cap) AS strictest_cap"
                " FROM open_streams WHERE org_id = %s",
                (org_id,),
            ).fetchone()
        assert held is not None  # an aggregate always gives one row
        cap = min(limit, held.strictest_cap or limit)
        if held.streams >= cap:
            return StreamOpening(None, cap)
        row = conn.execute(
            "INSERT INTO open_streams (org_id, lease_until, cap)"
            " VALUES (%s, now() + %s, %s) RETURNING id",
            (org_id, lease, limit),
        ).fetchone()
    assert row is not None
    return StreamOpening(int(row[0]), cap)


def renew_stream(conn: Conn, stream_id: int, lease: timedelta) -> bool:
    """Extend a stream's lease; False if its row is gone (the lease lapsed and another
    stream's opening dropped it, so it no longer counts)."""
    renewed = conn.execute(
        "UPDATE open_streams SET lease_until = now() + %s WHERE id = %s", (lease, stream_id)
    )
    return renewed.rowcount == 1


def close_stream(conn: Conn, stream_id: int) -> None:
    conn.execute("DELETE FROM open_streams WHERE id = %s", (stream_id,))


def own_query(conn: Conn, org_id: int, name: str) -> NamedQuery | None:
    with conn.cursor(row_factory=class_row(NamedQuery)) as cursor:
        return cursor.execute(
            f"SELECT {_QUERY_COLUMNS} FROM named_queries WHERE org_id = %s AND name = %s",  # noqa: S608
            (org_id, name),
        ).fetchone()


def query_by_id(conn: Conn, query_id: int) -> NamedQuery | None:
    with conn.cursor(row_factory=class_row(NamedQuery)) as cursor:
        return cursor.execute(
            f"SELECT {_QUERY_COLUMNS} FROM named_queries WHERE id = %s",  # noqa: S608
            (query_id,),
        ).fetchone()


def own_queries(conn: Conn, org_id: int, after: int | None, limit: int) -> list[NamedQuery]:
    """The org's named queries in the order they were made, after the one of id `after`."""
    with conn.cursor(row_factory=class_row(NamedQuery)) as cursor:
        return cursor.execute(
            f"SELECT {_QUERY_COLUMNS} FROM named_queries"  # noqa: S608
            " WHERE org_id = %s AND id > %s ORDER BY id LIMIT %s",
            (org_id, after or 0, limit),
        ).fetchall()


def delete_query(conn: Conn, query_id: int) -> None:
    """Delete a named query and, with it, its subscriptions."""
    conn.execute("DELETE FROM named_queries WHERE id = %s", (query_id,))


_SUBSCRIPTION_COLUMNS = (
    "s.id, s.subscription_id, s.query_id, q.name AS query_name, q.org_id, o.role AS org_role,"
    " s.dest, s.signature_token, s.report_if_empty, s.schedule, s.initial_record_time,"
    " s.created_at,"
    " s.position, s.last_notified_at, s.attempts, s.failing_since, s.last_error, s.suspended"
)
_SUBSCRIPTION_FROM = (
    " FROM query_subscriptions s JOIN named_queries q ON q.id = s.query_id"
    " JOIN orgs o ON o.id = q.org_id"
)


def subscribe(
    conn: Conn,
    query: NamedQuery,
    dest: str,
    signature_token: str | None,
    report_if_empty: bool,
    schedule: dict[str, Any] | None,
    initial_record_time: datetime | None,
    position: int,
    first_attempt_at: datetime,
    limit: int,
) -> Subscription:
    """Keep a webhook subscription (in the caller's transaction); LimitReached if the query's
    org has `limit` subscriptions already, over all its named queries."""
    _lock_holdings(conn, query.org_id)
    held = conn.execute(
        "SELECT count(*) FROM query_subscriptions s JOIN named_queries q ON q.id = s.query_id"
        " WHERE q.org_id = %s",
        (query.org_id,),
    ).fetchone()
    if held is not None and held[0] >= limit:
        raise LimitReached(limit)
    row = conn.execute(
        "INSERT INTO query_subscriptions (query_id, dest, signature_token, report_if_empty,"
        " schedule, initial_record_time, position, next_attempt_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            query.id,
            dest,
            signature_token,
            report_if_empty,
            Jsonb(schedule) if schedule is not None else None,
            initial_record_time,
            position,
            first_attempt_at,
        ),
    ).fetchone()
    assert row is not None
    found = _subscription_where(conn, "s.id = %s", (row[0],))
    assert found
    return found[0]


def _subscription_where(conn: Conn, where: str, params: tuple[Any, ...]) -> list[Subscription]:
    with conn.cursor(row_factory=class_row(Subscription)) as cursor:
        return cursor.execute(
            f"SELECT {_SUBSCRIPTION_COLUMNS}{_SUBSCRIPTION_FROM} WHERE {where}",
            params,
        ).fetchall()


def subscriptions_of(
    conn: Conn, query_id: int, after: int | None, limit: int
) -> list[Subscription]:
    return _subscription_where(
        conn, "s.query_id = %s AND s.id > %s ORDER BY s.id LIMIT %s", (query_id, after or 0, limit)
    )


def own_subscription(conn: Conn, query_id: int, subscription_id: UUID) -> Subscription | None:
    found = _subscription_where(
        conn, "s.query_id = %s AND s.subscription_id = %s", (query_id, subscription_id)
    )
    return found[0] if found else None


def unsubscribe(conn: Conn, subscription_id: int) -> None:
    conn.execute("DELETE FROM query_subscriptions WHERE id = %s", (subscription_id,))


def claim_due(conn: Conn, now: datetime, lease_until: datetime, limit: int) -> list[Subscription]:
    """Claim up to `limit` subscriptions due at `now` (not suspended, no live lease, behind the
    log's end), oldest due first, leased until `lease_until`: no other worker takes them
    meanwhile, and a worker killed mid-send leaves the lease to expire, so they are sent
    again (at least once)."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT id FROM query_subscriptions WHERE NOT suspended AND next_attempt_at <= %s"
            " AND (claimed_until IS NULL OR claimed_until <= %s)"
            # A stream only when the log has gone past it: an idle one is never leased, so a
            # worker killed while idle leaves nothing to wait for. A schedule at its times.
            " AND (schedule IS NOT NULL"
            "  OR position < (SELECT coalesce(max(log_index), -1) FROM log_entries))"
            " ORDER BY next_attempt_at LIMIT %s FOR NO KEY UPDATE SKIP LOCKED",
            (now, now, limit),
        ).fetchall()
        ids = [row[0] for row in rows]
        if not ids:
            return []
        conn.execute(
            "UPDATE query_subscriptions SET claimed_until = %s WHERE id = ANY(%s)",
            (lease_until, ids),
        )
        return _subscription_where(conn, "s.id = ANY(%s) ORDER BY s.id", (ids,))


def delivered(
    conn: Conn,
    subscription_id: int,
    from_position: int,
    to_position: int,
    notified: bool,
    now: datetime,
    next_attempt_at: datetime,
) -> bool:
    """Advance a subscription from `from_position` (what was sent) to `to_position`, once its
    receiver answered 2xx; False if someone else moved it meanwhile (nothing changed)."""
    row = conn.execute(
        "UPDATE query_subscriptions SET position = %s, attempts = 0, failing_since = NULL,"
        " last_error = NULL, claimed_until = NULL, next_attempt_at = %s,"
        " last_notified_at = CASE WHEN %s THEN %s ELSE last_notified_at END"
        " WHERE id = %s AND position = %s RETURNING 1",
        (to_position, next_attempt_at, notified, now, subscription_id, from_position),
    ).fetchone()
    return row is not None


def wake_idle(conn: Conn, now: datetime) -> None:
    """New log positions: every stream that is not failing is due at once."""
    conn.execute(
        "UPDATE query_subscriptions SET next_attempt_at = %s"
        " WHERE NOT suspended AND schedule IS NULL AND attempts = 0 AND next_attempt_at > %s",
        (now, now),
    )


def release(conn: Conn, subscription_id: int, next_attempt_at: datetime) -> None:
    """Give back a claimed subscription that had nothing to send, due again at that time."""
    conn.execute(
        "UPDATE query_subscriptions SET claimed_until = NULL, next_attempt_at = %s WHERE id = %s",
        (next_attempt_at, subscription_id),
    )


def failed(
    conn: Conn,
    subscription_id: int,
    error: str,
    now: datetime,
    retry_at: datetime,
    suspend_if_failing_since: datetime,
) -> bool:
    """Record a failed delivery, to be tried at `retry_at`; suspended (no more tries) when it
    has been failing since before `suspend_if_failing_since`. True if now suspended."""
    row = conn.execute(
        "UPDATE query_subscriptions SET attempts = attempts + 1, last_error = %s,"
        " failing_since = coalesce(failing_since, %s), next_attempt_at = %s,"
        " claimed_until = NULL,"
        " suspended = coalesce(failing_since, %s) < %s"
        " WHERE id = %s RETURNING suspended",
        (error[:500], now, retry_at, now, suspend_if_failing_since, subscription_id),
    ).fetchone()
    return bool(row and row[0])


def log_after(conn: Conn, position: int, limit: int) -> list[LogPosition]:
    """The log positions after `position`, in order, at most `limit`. Positions are given by
    one leader, a transaction at a time, in order: once one is visible, every earlier one is."""
    with conn.cursor(row_factory=class_row(LogPosition)) as cursor:
        return cursor.execute(
            "SELECT log_index, event_hash FROM log_entries WHERE log_index > %s"
            " ORDER BY log_index LIMIT %s",
            (position, limit),
        ).fetchall()


def log_end(conn: Conn) -> int:
    """The last log position given (-1: none)."""
    row = conn.execute("SELECT coalesce(max(log_index), -1) FROM log_entries").fetchone()
    assert row is not None
    return int(row[0])


def position_before_recorded(conn: Conn, since: datetime) -> int:
    """The position just before the first event recorded at or after `since` (the log's end
    if none is positioned yet): where a subscription with that initialRecordTime starts."""
    row = conn.execute(
        "SELECT min(l.log_index) FROM log_entries l JOIN events e ON e.event_hash = l.event_hash"
        " WHERE e.received_at >= %s",
        (since,),
    ).fetchone()
    if row is None or row[0] is None:
        return log_end(conn)
    return int(row[0]) - 1
