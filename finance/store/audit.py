"""The reads of finance's audit: pledges with their journal entries, decisions against theirs."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.rows import class_row

from records.db import Conn
from records.registry_store import Org


@dataclass(frozen=True)
class PledgeForAudit:
    """A pledge row (live or released) with what other records say about it."""

    lot_uri: str
    lot_key: bytes
    line_id: int
    financier_org_id: int
    financier: str  # the slug of the line's financier
    live: bool
    journal_line: str | None  # the line named by the lot's latest `pledged` journal entry


@dataclass(frozen=True)
class DecisionMismatch:
    """A decision that its journal entry does not confirm; `journal_entries` 1 means one found."""

    decision_id: int
    application_id: int
    journal_entries: int
    kind_differs: bool
    amount_differs: bool
    reasons_differ: bool
    evidence_differs: bool


@dataclass(frozen=True)
class OrphanDecisionEntry:
    """A `decision_*` journal entry whose application has no decision."""

    journal_id: int
    subject: str


@dataclass(frozen=True)
class MissingEvidence:
    """Decision evidence naming an event hash that no stored event has."""

    decision_id: int
    digest: bytes


def pledges_for_audit(conn: Conn) -> list[PledgeForAudit]:
    """Every pledge row, with its line's financier and the lot's latest `pledged` journal entry."""
    with conn.cursor(row_factory=class_row(PledgeForAudit)) as cur:
        return cur.execute(
            """
            WITH journaled AS (
                SELECT DISTINCT ON (subject) subject, detail->>'line' AS line
                FROM finance_journal WHERE action = 'pledged' ORDER BY subject, id DESC
            )
            SELECT p.lot_uri, p.lot_key, p.line_id, c.financier_org_id, o.slug AS financier,
                   p.released_at IS NULL AS live, j.line AS journal_line
            FROM pledges p
            JOIN credit_lines c ON c.id = p.line_id
            JOIN orgs o ON o.id = c.financier_org_id
            LEFT JOIN journaled j ON j.subject = p.lot_uri
            ORDER BY p.lot_uri, p.pledged_at
            """
        ).fetchall()


def financier_orgs(conn: Conn) -> list[Org]:
    """Every financier organisation."""
    with conn.cursor(row_factory=class_row(Org)) as cur:
        return cur.execute(
            "SELECT id, slug, role FROM orgs WHERE role = 'financier' ORDER BY id"
        ).fetchall()


def decisions_differing_from_journal(conn: Conn) -> list[DecisionMismatch]:
    """Decisions without exactly one `decision_*` journal entry, or differing from it."""
    with conn.cursor(row_factory=class_row(DecisionMismatch)) as cur:
        return cur.execute(
            """
            WITH entries AS (
                SELECT *, detail->>'decision' AS decision FROM finance_journal
                WHERE left(action, 9) = 'decision_'
            ), journaled AS (
                -- An entry names its decision (since reviews decide an application again);
                -- older ones name only the application, which had one decision then.
                SELECT DISTINCT ON (subject, decision) subject, decision, action, detail,
                       evidence, count(*) OVER (PARTITION BY subject, decision) AS entries
                FROM entries ORDER BY subject, decision, id
            ), compared AS (
                SELECT d.id AS decision_id, d.application_id,
                       coalesce(j.entries, 0)::int AS journal_entries,
                       j.action IS DISTINCT FROM 'decision_' || d.kind AS kind_differs,
                       j.detail->'approved_minor' IS DISTINCT FROM to_jsonb(d.approved_minor)
                           AS amount_differs,
                       j.detail->'reasons' IS DISTINCT FROM to_jsonb(d.reasons) AS reasons_differ,
                       j.evidence IS DISTINCT FROM d.evidence AS evidence_differs
                FROM decisions d
                LEFT JOIN journaled j ON j.subject = 'application:' || d.application_id
                    AND (j.decision IS NULL OR j.decision = d.id::text)
            )
            SELECT * FROM compared
            WHERE journal_entries <> 1 OR kind_differs OR amount_differs OR reasons_differ
                  OR evidence_differs
            ORDER BY decision_id
            """
        ).fetchall()


def journaled_decisions_missing(conn: Conn) -> list[OrphanDecisionEntry]:
    """`decision_*` journal entries whose application has no decision."""
    with conn.cursor(row_factory=class_row(OrphanDecisionEntry)) as cur:
        return cur.execute(
            "SELECT j.id AS journal_id, j.subject FROM finance_journal j"
            " WHERE left(j.action, 9) = 'decision_'"
            " AND NOT EXISTS (SELECT 1 FROM decisions d"
            "                 WHERE j.subject = 'application:' || d.application_id)"
            " ORDER BY j.id"
        ).fetchall()


def decision_evidence_not_stored(conn: Conn) -> list[MissingEvidence]:
    """Decision evidence that names no stored event."""
    with conn.cursor(row_factory=class_row(MissingEvidence)) as cur:
        return cur.execute(
            "SELECT d.id AS decision_id, ev AS digest"
            " FROM decisions d CROSS JOIN LATERAL unnest(d.evidence) AS ev"
            " WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_hash = ev)"
            # Decisions keep the ids they were made with; a re-identified event's old id is an
            # alias of it (event_hash_aliases).
            " AND NOT EXISTS (SELECT 1 FROM event_hash_aliases a WHERE a.alias = ev)"
            " ORDER BY d.id"
        ).fetchall()
