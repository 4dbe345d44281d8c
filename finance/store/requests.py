"""SQL of four-eyes requests: a financier's gated operation one user asked for, waiting for a
checker of the same org who is someone else (finance/four_eyes.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from records.db import Conn

Decided = Literal["approved", "rejected", "failed"]


@dataclass(frozen=True)
class FourEyesRequest:
    id: int
    org_id: int
    kind: str
    params: dict[str, Any]
    maker_user_id: int
    maker: str  # org/user
    state: str  # pending | approved | rejected | failed
    checker: str | None  # org/user, once decided
    error_code: str | None  # failed: the finance error code the operation was refused with
    created_at: datetime
    decided_at: datetime | None


_SELECT = (
    "SELECT r.id, r.org_id, r.kind, r.params, r.maker_user_id, o.slug || '/' || m.name AS maker,"
    " r.state, o.slug || '/' || c.name AS checker, r.error_code, r.created_at, r.decided_at"
    " FROM four_eyes_requests r JOIN orgs o ON o.id = r.org_id"
    " JOIN users m ON m.id = r.maker_user_id LEFT JOIN users c ON c.id = r.checker_user_id"
)


def add_request(
    conn: Conn, org_id: int, kind: str, params: Mapping[str, Any], maker_user_id: int
) -> FourEyesRequest:
    row = conn.execute(
        "INSERT INTO four_eyes_requests (org_id, kind, params, maker_user_id)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (org_id, kind, Jsonb(dict(params)), maker_user_id),
    ).fetchone()
    assert row is not None
    found = get_request(conn, int(row[0]))
    assert found is not None
    return found


def get_request(conn: Conn, request_id: int, *, for_update: bool = False) -> FourEyesRequest | None:
    # Locked while it is decided: two checkers approving at once execute it once.
    lock = " FOR UPDATE OF r" if for_update else ""
    with conn.cursor(row_factory=class_row(FourEyesRequest)) as cursor:
        return cursor.execute(_SELECT + " WHERE r.id = %s" + lock, (request_id,)).fetchone()


def requests_of(conn: Conn, org_id: int, state: str | None = None) -> list[FourEyesRequest]:
    """An org's requests (in one state, or all), newest first."""
    with conn.cursor(row_factory=class_row(FourEyesRequest)) as cursor:
        return cursor.execute(
            _SELECT
            + " WHERE r.org_id = %(org)s AND (%(state)s::text IS NULL OR r.state = %(state)s)"
            " ORDER BY r.id DESC",
            {"org": org_id, "state": state},
        ).fetchall()


def decide(
    conn: Conn,
    request_id: int,
    state: Decided,
    checker_user_id: int,
    error_code: str | None = None,
) -> None:
    conn.execute(
        "UPDATE four_eyes_requests SET state = %s, checker_user_id = %s, error_code = %s,"
        " decided_at = now() WHERE id = %s AND state = 'pending'",
        (state, checker_user_id, error_code, request_id),
    )
