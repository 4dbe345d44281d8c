"""The finance journal: append-only entries, each sealed with an HMAC the database never holds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from finance import journal_seal
from records.db import Conn


@dataclass(frozen=True)
class JournalEntry:
    """One entry: who did what to which subject, with its evidence (event hashes)."""

    actor: str
    action: str
    subject: str
    detail: Mapping[str, Any]
    evidence: Sequence[bytes] = ()
    log_index: int | None = None


@dataclass(frozen=True)
class BrokenSeal:
    """A journal entry whose seal does not match it (`unsealed`: it has no seal at all)."""

    journal_id: int
    action: str
    subject: str
    unsealed: bool


@dataclass(frozen=True)
class _StoredEntry:
    id: int
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    evidence: list[bytes]
    log_index: int | None
    seal: bytes | None


_INSERT = (
    "INSERT INTO finance_journal (actor, action, subject, detail, evidence, log_index, seal)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True)
class Journal:
    """The finance journal, written and checked under one HMAC key.

    The key comes from settings (`TRACEFIN_JOURNAL_KEY`) and is handed down by the composition
    root (tracefin) to every writer and to the audit: no module keeps it.
    """

    key: bytes = field(repr=False)

    def write(
        self,
        conn: Conn,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, Any],
        evidence: Sequence[bytes] = (),
        log_index: int | None = None,
    ) -> None:
        self.write_many(conn, [JournalEntry(actor, action, subject, detail, evidence, log_index)])

    def write_many(self, conn: Conn, entries: Sequence[JournalEntry]) -> None:
        """Many entries in one round of statements (pipelined by executemany)."""
        if entries:
            conn.cursor().executemany(
                _INSERT,
                [
                    (
                        e.actor,
                        e.action,
                        e.subject,
                        Jsonb(e.detail),
                        list(e.evidence),
                        e.log_index,
                        journal_seal.seal(
                            self.key,
                            e.actor,
                            e.action,
                            e.subject,
                            e.detail,
                            e.evidence,
                            e.log_index,
                        ),
                    )
                    for e in entries
                ],
            )

    def broken_seals(self, conn: Conn) -> Iterator[BrokenSeal]:
        """Every entry whose seal does not match it under this key, or that has none."""
        with conn.cursor(row_factory=class_row(_StoredEntry)) as cur:
            for row in cur.stream(
                "SELECT id, actor, action, subject, detail, evidence, log_index, seal"
                " FROM finance_journal ORDER BY id"
            ):
                entry = (
                    row.actor,
                    row.action,
                    row.subject,
                    row.detail,
                    [bytes(e) for e in row.evidence],
                    row.log_index,
                )
                if not journal_seal.intact(self.key, row.seal, entry):
                    yield BrokenSeal(row.id, row.action, row.subject, row.seal is None)


@dataclass(frozen=True)
class JournalRow:
    """A journal entry as the regulator reads it (its seal checked by the audit)."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    evidence: list[bytes]
    log_index: int | None


def entries_after(conn: Conn, after: int, limit: int) -> list[JournalRow]:
    """Entries with an id above `after`, oldest first, at most `limit`."""
    with conn.cursor(row_factory=class_row(JournalRow)) as cur:
        return cur.execute(
            "SELECT id, at, actor, action, subject, detail, evidence, log_index"
            " FROM finance_journal WHERE id > %s ORDER BY id LIMIT %s",
            (after, limit),
        ).fetchall()
