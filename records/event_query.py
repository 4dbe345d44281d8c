"""The EPCIS query subset of `GET /v1/events`: filters, org scope, keyset pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from epcis.identifiers import checked_epc
from records.db import Conn

MAX_PAGE = 500


@dataclass(frozen=True)
class EventQuery:
    eq_biz_step: str | None = None
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    match_epc: str | None = None
    eq_biz_location: str | None = None
    org_id: int | None = None  # None: every organisation (regulators)
    after: int | None = None  # keyset cursor: the last ingest_seq of the previous page
    limit: int = 100


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    next_cursor: int | None


def query_events(conn: Conn, query: EventQuery) -> EventPage:
    """Matching events in ingest order; ValueError for a malformed EPC or location filter
    (or one whose GS1 key has a wrong check digit)."""
    clauses: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": min(max(query.limit, 1), MAX_PAGE) + 1}
    if query.eq_biz_step is not None:
        clauses.append(sql.SQL("biz_step = %(biz_step)s"))
        params["biz_step"] = query.eq_biz_step
    if query.ge_event_time is not None:
        clauses.append(sql.SQL("event_time >= %(ge)s"))
        params["ge"] = query.ge_event_time
    if query.lt_event_time is not None:
        clauses.append(sql.SQL("event_time < %(lt)s"))
        params["lt"] = query.lt_event_time
    if query.match_epc is not None:
        clauses.append(
            sql.SQL("(epcs @> ARRAY[%(epc)s]::text[] OR lots @> ARRAY[%(epc)s]::text[])")
        )
        params["epc"] = checked_epc(query.match_epc)
    if query.eq_biz_location is not None:
        clauses.append(sql.SQL("biz_location = %(location)s"))
        params["location"] = checked_epc(query.eq_biz_location)
    if query.org_id is not None:
        clauses.append(sql.SQL("org_id = %(org)s"))
        params["org"] = query.org_id
    if query.after is not None:
        clauses.append(sql.SQL("ingest_seq > %(after)s"))
        params["after"] = query.after
    where = sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true")
    if query.match_epc is not None:
        # An item's or a lot's events are few: found by the GIN indexes, then ordered. Left to
        # itself, the planner may walk the ingest_seq index in order, filtering every event on
        # the way, betting on finding a page's worth soon (it does so on a hypertable, whose
        # chunks it can merge in ingest_seq order).
        statement = sql.SQL(
            "WITH matching AS MATERIALIZED (SELECT ingest_seq, event FROM events WHERE {})"
            " SELECT ingest_seq, event FROM matching ORDER BY ingest_seq LIMIT %(limit)s"
        )
    else:
        statement = sql.SQL(
            "SELECT ingest_seq, event FROM events WHERE {} ORDER BY ingest_seq LIMIT %(limit)s"
        )
    rows = conn.execute(statement.format(where), params).fetchall()
    page = rows[: params["limit"] - 1]
    more = len(rows) > len(page)
    return EventPage([row[1] for row in page], int(page[-1][0]) if more and page else None)
