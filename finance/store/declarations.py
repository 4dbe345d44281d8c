"""The finance worker's reads and writes of error declarations: which to react to, which lots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row

from records.db import Conn


@dataclass(frozen=True)
class Unapplied:
    """A recorded declaration finance has not reacted to yet."""

    id: int
    event_hash: bytes
    org: str
    reason: str | None
    declaration_time: datetime
    digest: bytes


def unapplied(conn: Conn) -> list[Unapplied]:
    """Declarations not applied yet, in the order recorded.

    Absence from `declarations_applied`, not an id cursor, says what is new: ids of concurrent
    captures commit out of order, so a cursor could pass one that commits late.
    """
    with conn.cursor(row_factory=class_row(Unapplied)) as cursor:
        return cursor.execute(
            "SELECT d.id, d.event_hash, o.slug AS org, d.reason, d.declaration_time, d.digest"
            " FROM error_declarations d JOIN orgs o ON o.id = d.org_id"
            " WHERE NOT EXISTS"
            " (SELECT 1 FROM declarations_applied a WHERE a.declaration_id = d.id)"
            " ORDER BY d.id"
        ).fetchall()


def any_unapplied(conn: Conn) -> bool:
    """Whether some declaration waits for finance (a cheap look before taking any lock)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM error_declarations d WHERE NOT EXISTS"
        " (SELECT 1 FROM declarations_applied a WHERE a.declaration_id = d.id))"
    ).fetchone()
    return bool(row and row[0])


def lots_holding(conn: Conn, digests: Sequence[bytes]) -> dict[bytes, list[str]]:
    """The lots whose evidence holds each of these events (an event not applied yet: none)."""
    if not digests:
        return {}
    rows = conn.execute(
        "SELECT DISTINCT event_hash, lot_uri FROM lot_evidence"
        " WHERE event_hash = ANY(%s::bytea[]) ORDER BY lot_uri",
        (list(digests),),
    ).fetchall()
    found: dict[bytes, list[str]] = {}
    for digest, lot_uri in rows:
        found.setdefault(bytes(digest), []).append(str(lot_uri))
    return found


def mark_applied(conn: Conn, ids: Sequence[int]) -> None:
    """Record that finance reacted to these declarations (in the transaction that did)."""
    conn.execute(
        "INSERT INTO declarations_applied (declaration_id) SELECT unnest(%s::bigint[])",
        (list(ids),),
    )


def declared(conn: Conn, digests: Sequence[bytes]) -> set[bytes]:
    """Which of these events are declared erroneous."""
    if not digests:
        return set()
    rows = conn.execute(
        "SELECT event_hash FROM error_declarations WHERE event_hash = ANY(%s::bytea[])",
        (list(digests),),
    ).fetchall()
    return {bytes(row[0]) for row in rows}


def applied_ids(conn: Conn) -> set[int]:
    """The declarations finance has reacted to (each has its journal entry)."""
    rows = conn.execute("SELECT declaration_id FROM declarations_applied").fetchall()
    return {int(row[0]) for row in rows}


def journaled(conn: Conn) -> list[tuple[int, str, str]]:
    """(journal id, event hash ID, declaration digest hex) of each `evidence_declared_erroneous`
    journal entry."""
    rows = conn.execute(
        "SELECT id, subject, detail->>'declaration' FROM finance_journal"
        " WHERE action = 'evidence_declared_erroneous' ORDER BY id"
    ).fetchall()
    return [(int(row[0]), str(row[1]), str(row[2])) for row in rows]
