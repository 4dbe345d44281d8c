"""SQL for error declarations: recorded with the capture that carried them, read by queries,
pages, finance and the audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from epcis.declarations import DeclarationRecord
from records.db import Conn


@dataclass(frozen=True)
class DeclarationToStore:
    """A declaration to record: of which event, by which org's device or API user, when."""

    event_hash: bytes
    org_id: int
    device_id: str | None
    api_user: str | None
    channel: Literal["mqtt", "http"]
    received_at: datetime
    declaration_time: datetime
    reason: str | None
    corrective_event_ids: tuple[str, ...]
    declaration: dict[str, Any]
    digest: bytes


@dataclass(frozen=True)
class StoredDeclaration:
    """A recorded declaration as readers see it (`org` is the declarer's slug)."""

    id: int
    event_hash: bytes
    org: str
    device_id: str | None
    api_user: str | None
    channel: Literal["mqtt", "http"]
    received_at: datetime
    declaration_time: datetime
    reason: str | None
    corrective_event_ids: list[str]
    declaration: dict[str, Any]
    digest: bytes

    def record(self) -> DeclarationRecord:
        """The record its digest is computed over."""
        return DeclarationRecord(
            bytes(self.event_hash),
            self.org,
            self.device_id,
            self.api_user,
            self.channel,
            self.received_at,
            self.declaration,
        )


_COLUMNS = (
    "d.id, d.event_hash, o.slug AS org, d.device_id, d.api_user, d.channel, d.received_at,"
    " d.declaration_time, d.reason, d.corrective_event_ids, d.declaration, d.digest"
)


def insert_declaration(conn: Conn, row: DeclarationToStore) -> bool:
    """Record a declaration; False when the event has one already (the first stands)."""
    cursor = conn.execute(
        "INSERT INTO error_declarations (event_hash, org_id, device_id, api_user, channel,"
        " received_at, declaration_time, reason, corrective_event_ids, declaration, digest)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            row.event_hash,
            row.org_id,
            row.device_id,
            row.api_user,
            row.channel,
            row.received_at,
            row.declaration_time,
            row.reason,
            list(row.corrective_event_ids),
            Jsonb(row.declaration),
            row.digest,
        ),
    )
    return cursor.rowcount == 1


def declarations_for(conn: Conn, digests: Sequence[bytes]) -> dict[bytes, StoredDeclaration]:
    """The declaration of each event (by digest) that has one."""
    if not digests:
        return {}
    with conn.cursor(row_factory=class_row(StoredDeclaration)) as cursor:
        rows = cursor.execute(
            f"SELECT {_COLUMNS} FROM error_declarations d JOIN orgs o ON o.id = d.org_id"  # noqa: S608 - constant columns
            " WHERE d.event_hash = ANY(%s::bytea[])",
            (list(digests),),
        ).fetchall()
    return {bytes(row.event_hash): row for row in rows}


def all_declarations(conn: Conn) -> list[StoredDeclaration]:
    """Every recorded declaration, in the order recorded (the audit recomputes each digest)."""
    with conn.cursor(row_factory=class_row(StoredDeclaration)) as cursor:
        return cursor.execute(
            f"SELECT {_COLUMNS} FROM error_declarations d JOIN orgs o ON o.id = d.org_id"  # noqa: S608 - constant columns
            " ORDER BY d.id"
        ).fetchall()
