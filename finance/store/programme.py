"""SQL of the programme as a whole: run-offs, closing lines, and the portfolio reports read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from psycopg.rows import class_row

from records.db import Conn


@dataclass(frozen=True)
class RunOff:
    """A programme in run-off: one financier's lines (`financier` its slug), or every line
    (`financier` None)."""

    id: int
    financier: str | None
    started_at: datetime
    started_by: str
    reason: str


_RUN_OFF = (
    "SELECT r.id, o.slug AS financier, r.started_at, r.started_by, r.reason"
    " FROM programme_run_offs r LEFT JOIN orgs o ON o.id = r.financier_org_id"
)


def start_run_off(
    conn: Conn, financier_org_id: int | None, started_by: str, reason: str
) -> tuple[RunOff, bool]:
    """Put the scope into run-off; (the run-off, whether it started now). A scope already in
    run-off keeps its first start."""
    started = conn.execute(
        "INSERT INTO programme_run_offs (financier_org_id, started_by, reason)"
        " VALUES (%s, %s, %s) ON CONFLICT (financier_org_id) DO NOTHING RETURNING id",
        (financier_org_id, started_by, reason),
    ).fetchone()
    with conn.cursor(row_factory=class_row(RunOff)) as cur:
        found = cur.execute(
            f"{_RUN_OFF} WHERE r.financier_org_id IS NOT DISTINCT FROM %s",
            (financier_org_id,),
        ).fetchone()
    assert found is not None
    return found, started is not None


def run_offs(conn: Conn) -> list[RunOff]:
    with conn.cursor(row_factory=class_row(RunOff)) as cur:
        return cur.execute(f"{_RUN_OFF} ORDER BY r.id").fetchall()


def run_off_covering(conn: Conn, financier_org_id: int) -> RunOff | None:
    """The run-off that covers this financier's lines (its own, or the whole programme's)."""
    with conn.cursor(row_factory=class_row(RunOff)) as cur:
        return cur.execute(
            f"{_RUN_OFF} WHERE r.financier_org_id = %s OR r.financier_org_id IS NULL"
            " ORDER BY r.id LIMIT 1",
            (financier_org_id,),
        ).fetchone()


def close_line(conn: Conn, line_id: int) -> bool:
    """Close the line; False when it already was closed."""
    row = conn.execute(
        "UPDATE credit_lines SET status = 'closed', closed_at = now()"
        " WHERE id = %s AND status <> 'closed' RETURNING id",
        (line_id,),
    ).fetchone()
    return row is not None


def live_pledge_count(conn: Conn, line_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pledges WHERE line_id = %s AND released_at IS NULL", (line_id,)
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class PortfolioLoan:
    """A loan with what the reports group it by and the collateral that secures it."""

    id: int
    line_id: int
    financier: str
    borrower: str
    category: str | None  # the product's, when the lot's GTIN is registered
    lot_uri: str
    currency: str
    principal_minor: int
    outstanding_minor: int
    drawn_on: date
    annual_rate: Decimal
    day_count: str
    schedule_kind: str
    instalment_count: int
    fee_rate: Decimal
    tenor_days: int
    grace_days: int
    penalty_rate: Decimal
    default_after_days: int
    pledged_quantity: int | None  # units pledged, while the lot's pledge is live
    lot_quantity: int
    custody: str | None
    location: str | None
    line_status: str


def portfolio(conn: Conn, financier_org_id: int | None) -> list[PortfolioLoan]:
    """Every loan of the financier's lines (None: of every line), oldest first."""
    with conn.cursor(row_factory=class_row(PortfolioLoan)) as cur:
        return cur.execute(
            "SELECT l.id, l.line_id, f.slug AS financier, b.slug AS borrower, pr.category,"
            " l.lot_uri, l.currency, l.principal_minor, l.outstanding_minor, l.drawn_on,"
            " l.annual_rate, l.day_count, l.schedule_kind, l.instalment_count, l.fee_rate,"
            " l.tenor_days, l.grace_days, l.penalty_rate, l.default_after_days,"
            " p.quantity AS pledged_quantity, t.quantity AS lot_quantity, t.custody, t.location,"
            " c.status AS line_status"
            " FROM loans l"
            " JOIN credit_lines c ON c.id = l.line_id"
            " JOIN orgs f ON f.id = c.financier_org_id"
            " JOIN orgs b ON b.id = c.borrower_org_id"
            " JOIN lots t ON t.lot_uri = l.lot_uri"
            " LEFT JOIN products pr ON pr.gtin = t.gtin"
            " LEFT JOIN pledges p ON p.lot_uri = l.lot_uri AND p.line_id = l.line_id"
            "  AND p.released_at IS NULL"
            " WHERE %s::bigint IS NULL OR c.financier_org_id = %s"
            " ORDER BY l.id",
            (financier_org_id, financier_org_id),
        ).fetchall()


@dataclass(frozen=True)
class OpenCall:
    """An open margin call, for the aging report."""

    id: int
    financier: str
    borrower: str
    currency: str
    amount_minor: int
    raised_at: datetime
    due_at: datetime


def open_margin_calls(conn: Conn, financier_org_id: int | None) -> list[OpenCall]:
    with conn.cursor(row_factory=class_row(OpenCall)) as cur:
        return cur.execute(
            "SELECT m.id, f.slug AS financier, b.slug AS borrower, m.currency, m.amount_minor,"
            " m.raised_at, m.due_at FROM margin_calls m"
            " JOIN credit_lines c ON c.id = m.line_id"
            " JOIN orgs f ON f.id = c.financier_org_id"
            " JOIN orgs b ON b.id = c.borrower_org_id"
            " WHERE m.state <> 'cured' AND (%s::bigint IS NULL OR c.financier_org_id = %s)"
            " ORDER BY m.id",
            (financier_org_id, financier_org_id),
        ).fetchall()
