"""SQL of credit: lines, pledges, money movements, applications and decisions, flags, calls."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import date, datetime
from decimal import Decimal

from psycopg.rows import class_row

from finance.store import KEYS
from records.db import Conn


@dataclass(frozen=True)
class Line:
    id: int
    financier_org_id: int
    borrower_org_id: int
    currency: str
    limit_minor: int
    drawn_minor: int
    status: str


@dataclass(frozen=True)
class Pledge:
    lot_uri: str
    line_id: int
    lot_key: bytes
    location: str
    pledged_at: datetime
    quantity: int  # the units pledged: the lot's at pledging, less partial releases


@dataclass(frozen=True)
class Receivable:
    """Goods delivered with a purchase order: an amount due, and what may be advanced on it;
    `seller` owns the goods (GS1 Company Prefix), `buyer` attested accepting them."""

    lot_uri: str
    purchase_order: str
    amount_minor: int
    currency: str
    advance_minor: int
    event_hash: bytes
    seller: str | None = None
    buyer: str | None = None


@dataclass(frozen=True)
class RiskFlagRow:
    id: int
    lot_uri: str | None
    line_id: int | None
    kind: str
    detail: str
    raised_at: datetime


@dataclass(frozen=True)
class RecordedDecision:
    """The ids an application and its decision were stored under."""

    application_id: int
    decision_id: int


_LINE_COLUMNS = "id, financier_org_id, borrower_org_id, currency, limit_minor, drawn_minor, status"
# Of `pledges p` (aliased: the lots and lines some queries join have columns of these names).
_PLEDGE_COLUMNS = "p.lot_uri, p.line_id, p.lot_key, p.location, p.pledged_at, p.quantity"


# --- lines -----------------------------------------------------------------------------------


def open_line(
    conn: Conn, financier_org_id: int, borrower_org_id: int, currency: str, limit_minor: int
) -> Line | None:
    """Open the line, or re-limit it; None (nothing changed) when it has drawn more than the
    new limit."""
    with conn.cursor(row_factory=class_row(Line)) as cur:
        return cur.execute(
            "INSERT INTO credit_lines (financier_org_id, borrower_org_id, currency, limit_minor)"  # noqa: S608
            " VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (financier_org_id, borrower_org_id, currency)"
            " DO UPDATE SET limit_minor = excluded.limit_minor"
            " WHERE credit_lines.drawn_minor <= excluded.limit_minor"
            f" RETURNING {_LINE_COLUMNS}",
            (financier_org_id, borrower_org_id, currency, limit_minor),
        ).fetchone()


def get_line(conn: Conn, line_id: int, *, for_update: bool = False) -> Line | None:
    lock = " FOR UPDATE" if for_update else ""
    with conn.cursor(row_factory=class_row(Line)) as cur:
        return cur.execute(
            f"SELECT {_LINE_COLUMNS} FROM credit_lines WHERE id = %s{lock}",  # noqa: S608
            (line_id,),
        ).fetchone()


def lines_of_party(conn: Conn, org_id: int | None) -> list[Line]:
    """Lines the org lends on or borrows on (None: every line), oldest first."""
    with conn.cursor(row_factory=class_row(Line)) as cur:
        return cur.execute(
            f"SELECT {_LINE_COLUMNS} FROM credit_lines"  # noqa: S608 - constant columns
            " WHERE %s::bigint IS NULL OR %s IN (financier_org_id, borrower_org_id) ORDER BY id",
            (org_id, org_id),
        ).fetchall()


def line_between(conn: Conn, financier_org_id: int, borrower_org_id: int) -> Line | None:
    """The first line the financier opened to the borrower, locked for update."""
    with conn.cursor(row_factory=class_row(Line)) as cur:
        return cur.execute(
            f"SELECT {_LINE_COLUMNS} FROM credit_lines"  # noqa: S608 - constant columns
            " WHERE financier_org_id = %s AND borrower_org_id = %s ORDER BY id LIMIT 1"
            " FOR UPDATE",
            (financier_org_id, borrower_org_id),
        ).fetchone()


def lines_of_financier(conn: Conn, financier_org_id: int) -> list[Line]:
    with conn.cursor(row_factory=class_row(Line)) as cur:
        return cur.execute(
            f"SELECT {_LINE_COLUMNS} FROM credit_lines"  # noqa: S608 - constant columns
            " WHERE financier_org_id = %s ORDER BY id",
            (financier_org_id,),
        ).fetchall()


def set_line_status(conn: Conn, line_id: int, status: str) -> bool:
    """Change the status; False when it already was that (so callers journal only changes)."""
    row = conn.execute(
        "UPDATE credit_lines SET status = %s WHERE id = %s AND status <> %s RETURNING id",
        (status, line_id, status),
    ).fetchone()
    return row is not None


def move_money(
    conn: Conn, line_id: int, kind: str, amount_minor: int, decision_id: int | None = None
) -> int:
    """Record a drawdown, repayment or proceeds (returns its id). A drawdown adds to `drawn`;
    a repayment's cash reduces it only by the principal it repays (`repay_principal`)."""
    row = conn.execute(
        "INSERT INTO line_movements (line_id, kind, amount_minor, decision_id)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (line_id, kind, amount_minor, decision_id),
    ).fetchone()
    assert row is not None
    if kind == "drawdown":
        conn.execute(
            "UPDATE credit_lines SET drawn_minor = drawn_minor + %s WHERE id = %s",
            (amount_minor, line_id),
        )
    return int(row[0])


# --- loans -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loan:
    """Money drawn on a line, secured by one pledged lot, on the terms of its drawdown.

    `outstanding_minor` is its principal not yet repaid (what `drawn` and exposure count);
    what it owes in all, interest and fees included, is its statement's."""

    id: int
    line_id: int
    lot_uri: str
    principal_minor: int
    outstanding_minor: int
    currency: str
    drawn_at: datetime
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


_LOAN_TERMS = (
    "annual_rate, day_count, schedule_kind, instalment_count, fee_rate, tenor_days, grace_days,"
    " penalty_rate, default_after_days"
)
_LOAN_COLUMNS = (
    "l.id, l.line_id, l.lot_uri, l.principal_minor, l.outstanding_minor, l.currency, l.drawn_at,"
    " l.drawn_on, l.annual_rate, l.day_count, l.schedule_kind, l.instalment_count, l.fee_rate,"
    " l.tenor_days, l.grace_days, l.penalty_rate, l.default_after_days"
)


@dataclass(frozen=True)
class StoredTerms:
    """A loan's terms as stored (the columns of `_LOAN_TERMS`, in order)."""

    annual_rate: Decimal
    day_count: str
    schedule_kind: str
    instalment_count: int
    fee_rate: Decimal
    tenor_days: int
    grace_days: int
    penalty_rate: Decimal
    default_after_days: int


def add_loan(
    conn: Conn,
    line_id: int,
    lot_uri: str,
    decision_id: int | None,
    principal_minor: int,
    currency: str,
    terms: StoredTerms,
) -> Loan:
    """A loan drawn now; its drawn date is today's UTC date (the database's clock, as
    `drawn_at`), so the two never disagree."""
    with conn.cursor(row_factory=class_row(Loan)) as cur:
        loan = cur.execute(
            "INSERT INTO loans AS l (line_id, lot_uri, decision_id, principal_minor,"  # noqa: S608
            f" outstanding_minor, currency, drawn_on, {_LOAN_TERMS})"
            " VALUES (%s, %s, %s, %s, %s, %s, (now() AT TIME ZONE 'UTC')::date,"
            " %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {_LOAN_COLUMNS}",
            (
                line_id,
                lot_uri,
                decision_id,
                principal_minor,
                principal_minor,
                currency,
                *astuple(terms),
            ),
        ).fetchone()
    assert loan is not None
    return loan


@dataclass(frozen=True)
class LoanPayment:
    """A payment applied to a loan, with the split the waterfall gave it."""

    id: int
    loan_id: int
    movement_id: int
    paid_on: date
    source: str
    amount_minor: int
    fees_minor: int
    penalty_minor: int
    interest_minor: int
    principal_minor: int
    recorded_at: datetime


def payments_of_loan(conn: Conn, loan_id: int) -> list[LoanPayment]:
    """The loan's payments in the order they were applied."""
    with conn.cursor(row_factory=class_row(LoanPayment)) as cur:
        return cur.execute(
            "SELECT id, loan_id, movement_id, paid_on, source, amount_minor, fees_minor,"
            " penalty_minor, interest_minor, principal_minor, recorded_at"
            " FROM loan_payments WHERE loan_id = %s ORDER BY paid_on, id",
            (loan_id,),
        ).fetchall()


def every_payment(conn: Conn) -> list[LoanPayment]:
    """Every loan payment, by loan and in the order each loan's were applied."""
    with conn.cursor(row_factory=class_row(LoanPayment)) as cur:
        return cur.execute(
            "SELECT id, loan_id, movement_id, paid_on, source, amount_minor, fees_minor,"
            " penalty_minor, interest_minor, principal_minor, recorded_at"
            " FROM loan_payments ORDER BY loan_id, paid_on, id"
        ).fetchall()


@dataclass(frozen=True)
class NewPayment:
    """A payment to apply to a loan (its split computed by finance/servicing.py)."""

    loan_id: int
    movement_id: int
    paid_on: date
    source: str
    amount_minor: int
    fees_minor: int
    penalty_minor: int
    interest_minor: int
    principal_minor: int


def add_payment(conn: Conn, payment: NewPayment, line_id: int) -> None:
    """Record a payment; the principal it repays comes off the loan and the line's `drawn`."""
    conn.execute(
        "INSERT INTO loan_payments (loan_id, movement_id, paid_on, source, amount_minor,"
        " fees_minor, penalty_minor, interest_minor, principal_minor)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        astuple(payment),
    )
    if payment.principal_minor:
        conn.execute(
            "UPDATE loans SET outstanding_minor = outstanding_minor - %s WHERE id = %s",
            (payment.principal_minor, payment.loan_id),
        )
        conn.execute(
            "UPDATE credit_lines SET drawn_minor = drawn_minor - %s WHERE id = %s",
            (payment.principal_minor, line_id),
        )


def utc_today(conn: Conn) -> date:
    """Today's UTC date by the database's clock (the one `drawn_at` and `at` are stamped by)."""
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    today = row[0]
    assert isinstance(today, date)
    return today


@dataclass(frozen=True)
class Offer:
    """An approval the borrower may accept until `expires_at`: then money is drawn."""

    id: int
    application_id: int
    decision_id: int
    line_id: int
    lot_uri: str
    amount_minor: int
    currency: str
    state: str
    made_at: datetime
    expires_at: datetime
    settled_at: datetime | None
    loan_id: int | None
    guaranteed_minor: int | None  # the largest guarantee given for its application
    annual_rate: Decimal | None  # set for this loan by the financier; None: its policy's


_OFFER_COLUMNS = (
    "o.id, o.application_id, o.decision_id, o.line_id, o.lot_uri, o.amount_minor, o.currency,"
    " o.state, o.made_at, o.expires_at, o.settled_at, o.loan_id,"
    " (SELECT max(g.amount_minor) FROM guarantees g WHERE g.application_id = a.id)"
    " AS guaranteed_minor, o.annual_rate"
)


def _party_to_line(alias: str) -> str:
    """The one rule of who sees a line's offers, loans, decisions and margin calls: its
    financier and its borrower, and the regulator every line (`alias` names the joined table,
    which has `line_id`; two `%s`: the org's id twice, None for every line)."""
    return (
        f" JOIN credit_lines c ON c.id = {alias}.line_id"
        " WHERE %s::bigint IS NULL OR %s IN (c.financier_org_id, c.borrower_org_id)"
    )


def add_offer(
    conn: Conn,
    decided: RecordedDecision,
    line_id: int,
    lot_uri: str,
    amount_minor: int,
    currency: str,
    expires_at: datetime,
    annual_rate: Decimal | None = None,
) -> int:
    row = conn.execute(
        "INSERT INTO offers (application_id, decision_id, line_id, lot_uri, amount_minor,"
        " currency, expires_at, annual_rate) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            decided.application_id,
            decided.decision_id,
            line_id,
            lot_uri,
            amount_minor,
            currency,
            expires_at,
            annual_rate,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def get_offer(conn: Conn, offer_id: int, *, for_update: bool = False) -> Offer | None:
    lock = " FOR UPDATE OF o" if for_update else ""
    with conn.cursor(row_factory=class_row(Offer)) as cur:
        return cur.execute(
            f"SELECT {_OFFER_COLUMNS} FROM offers o"  # noqa: S608 - constant columns
            f" JOIN applications a ON a.id = o.application_id WHERE o.id = %s{lock}",
            (offer_id,),
        ).fetchone()


def settle_offer(conn: Conn, offer_id: int, state: str, loan_id: int | None = None) -> None:
    """An open offer accepted (with its loan), expired or withdrawn."""
    conn.execute(
        "UPDATE offers SET state = %s, settled_at = now(), loan_id = %s"
        " WHERE id = %s AND state = 'open'",
        (state, loan_id, offer_id),
    )


def offers_of_org(conn: Conn, org_id: int | None) -> list[Offer]:
    """Offers on lines where the org is the financier or the borrower, newest first."""
    with conn.cursor(row_factory=class_row(Offer)) as cur:
        return cur.execute(
            f"SELECT {_OFFER_COLUMNS} FROM offers o"  # noqa: S608 - constant columns
            " JOIN applications a ON a.id = o.application_id"
            f"{_party_to_line('o')} ORDER BY o.id DESC",
            (org_id, org_id),
        ).fetchall()


def exposure_on_lot(conn: Conn, lot_uri: str, currency: str) -> int:
    """Minor units outstanding in `currency` on loans the lot secures, across every line."""
    row = conn.execute(
        "SELECT coalesce(sum(outstanding_minor), 0) FROM loans"
        " WHERE lot_uri = %s AND currency = %s AND outstanding_minor > 0",
        (lot_uri, currency),
    ).fetchone()
    return int(row[0]) if row else 0


def get_loan(conn: Conn, loan_id: int, *, for_update: bool = False) -> Loan | None:
    lock = " FOR UPDATE" if for_update else ""
    with conn.cursor(row_factory=class_row(Loan)) as cur:
        return cur.execute(
            f"SELECT {_LOAN_COLUMNS} FROM loans l WHERE l.id = %s{lock}",  # noqa: S608
            (loan_id,),
        ).fetchone()


def owing_loans(
    conn: Conn, line_id: int, *, first: int | None = None, lot_uri: str | None = None
) -> list[Loan]:
    """The line's loans with principal outstanding (those the lot secures, if named), locked:
    loan `first` first, then oldest first (the order a repayment is allocated in)."""
    with conn.cursor(row_factory=class_row(Loan)) as cur:
        return cur.execute(
            f"SELECT {_LOAN_COLUMNS} FROM loans l"  # noqa: S608 - constant columns
            " WHERE l.line_id = %s AND l.outstanding_minor > 0"
            " AND (%s::text IS NULL OR l.lot_uri = %s)"
            " ORDER BY l.id = %s DESC, l.id FOR UPDATE",
            (line_id, lot_uri, lot_uri, first if first is not None else -1),
        ).fetchall()


def loans_of_org(conn: Conn, org_id: int | None) -> list[Loan]:
    """Loans on lines where the org is the financier or the borrower (None: every loan),
    oldest first."""
    with conn.cursor(row_factory=class_row(Loan)) as cur:
        return cur.execute(
            f"SELECT {_LOAN_COLUMNS} FROM loans l"  # noqa: S608 - constant columns
            f"{_party_to_line('l')} ORDER BY l.id",
            (org_id, org_id),
        ).fetchall()


# --- applications and decisions --------------------------------------------------------------


def record_decision(
    conn: Conn,
    line_id: int,
    lot_uri: str,
    requested_minor: int,
    guarantor: bool,
    *,
    kind: str,
    approved_minor: int,
    reasons: Sequence[str],
    evidence: Sequence[bytes],
    collateral_minor: int,
) -> RecordedDecision:
    """An application and the decision taken on it (a referral waits for review)."""
    application = conn.execute(
        "INSERT INTO applications (line_id, lot_uri, requested_minor, guarantor, review_state)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (line_id, lot_uri, requested_minor, guarantor, "pending" if kind == "refer" else None),
    ).fetchone()
    assert application is not None
    return add_decision(
        conn,
        int(application[0]),
        kind=kind,
        approved_minor=approved_minor,
        reasons=reasons,
        evidence=evidence,
        collateral_minor=collateral_minor,
    )


def add_decision(
    conn: Conn,
    application_id: int,
    *,
    kind: str,
    approved_minor: int,
    reasons: Sequence[str],
    evidence: Sequence[bytes],
    collateral_minor: int,
) -> RecordedDecision:
    """A decision on an application (the first, or one taken again at review)."""
    decision = conn.execute(
        "INSERT INTO decisions (application_id, kind, approved_minor, reasons, evidence,"
        " collateral_minor) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (application_id, kind, approved_minor, list(reasons), list(evidence), collateral_minor),
    ).fetchone()
    assert decision is not None
    return RecordedDecision(application_id, int(decision[0]))


@dataclass(frozen=True)
class ApplicationRow:
    """An application as stored, with its review and any guarantee given for it."""

    id: int
    line_id: int
    lot_uri: str
    requested_minor: int
    review_state: str | None
    review_reason: str | None
    created_at: datetime
    last_reasons: list[str]
    guaranteed_minor: int | None
    guarantor: str | None


_APPLICATION_QUERY = (
    "SELECT a.id, a.line_id, a.lot_uri, a.requested_minor, a.review_state, a.review_reason,"
    " a.created_at,"
    " (SELECT d.reasons FROM decisions d WHERE d.application_id = a.id ORDER BY d.id DESC"
    "  LIMIT 1) AS last_reasons,"
    " g.amount_minor AS guaranteed_minor, g.slug AS guarantor"
    " FROM applications a LEFT JOIN LATERAL ("
    "   SELECT g.amount_minor, o.slug FROM guarantees g JOIN orgs o ON o.id = g.guarantor_org_id"
    "   WHERE g.application_id = a.id ORDER BY g.amount_minor DESC LIMIT 1) g ON true"
)


def get_application(
    conn: Conn, application_id: int, *, for_update: bool = False
) -> ApplicationRow | None:
    lock = " FOR UPDATE OF a" if for_update else ""
    with conn.cursor(row_factory=class_row(ApplicationRow)) as cur:
        return cur.execute(
            f"{_APPLICATION_QUERY} WHERE a.id = %s{lock}",
            (application_id,),
        ).fetchone()


def pending_reviews(conn: Conn, financier_org_id: int) -> list[ApplicationRow]:
    """Referred applications on the financier's lines waiting for its review, oldest first."""
    with conn.cursor(row_factory=class_row(ApplicationRow)) as cur:
        return cur.execute(
            f"{_APPLICATION_QUERY} JOIN credit_lines c ON c.id = a.line_id"
            " WHERE c.financier_org_id = %s AND a.review_state = 'pending' ORDER BY a.id",
            (financier_org_id,),
        ).fetchall()


@dataclass(frozen=True)
class DecisionRow:
    """A financing decision on an application, as its parties (and the regulator) read it."""

    id: int
    application_id: int
    line_id: int
    lot_uri: str
    requested_minor: int
    kind: str
    approved_minor: int
    reasons: list[str]
    collateral_minor: int
    decided_at: datetime


def decisions_seen_by(conn: Conn, org_id: int | None) -> list[DecisionRow]:
    """Decisions on lines where the org lends or borrows (None: every line), newest first."""
    with conn.cursor(row_factory=class_row(DecisionRow)) as cur:
        return cur.execute(
            "SELECT d.id, d.application_id, a.line_id, a.lot_uri, a.requested_minor, d.kind,"  # noqa: S608
            " d.approved_minor, d.reasons, d.collateral_minor, d.decided_at"
            " FROM decisions d JOIN applications a ON a.id = d.application_id"
            f"{_party_to_line('a')}"
            " ORDER BY d.id DESC LIMIT 1000",
            (org_id, org_id),
        ).fetchall()


def set_review(conn: Conn, application_id: int, state: str, reason: str) -> None:
    conn.execute(
        "UPDATE applications SET review_state = %s, review_reason = %s, reviewed_at = now()"
        " WHERE id = %s",
        (state, reason, application_id),
    )


def invite_guarantor(conn: Conn, application_id: int, guarantor_org_id: int) -> None:
    conn.execute(
        "INSERT INTO application_guarantors (application_id, guarantor_org_id)"
        " VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (application_id, guarantor_org_id),
    )


def is_invited(conn: Conn, application_id: int, guarantor_org_id: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM application_guarantors WHERE application_id = %s AND guarantor_org_id = %s",
        (application_id, guarantor_org_id),
    ).fetchone()
    return row is not None


def add_guarantee(
    conn: Conn, application_id: int, guarantor_org_id: int, amount_minor: int, currency: str
) -> None:
    """A guarantor's guarantee for an application (its earlier one for it replaced)."""
    conn.execute(
        "INSERT INTO guarantees (application_id, guarantor_org_id, amount_minor, currency)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (application_id, guarantor_org_id) DO UPDATE"
        " SET amount_minor = excluded.amount_minor, given_at = now()",
        (application_id, guarantor_org_id, amount_minor, currency),
    )


# --- pledges ---------------------------------------------------------------------------------


def live_pledge(conn: Conn, lot_uri: str) -> Pledge | None:
    with conn.cursor(row_factory=class_row(Pledge)) as cur:
        return cur.execute(
            f"SELECT {_PLEDGE_COLUMNS} FROM pledges p"  # noqa: S608 - constant columns
            " WHERE p.lot_uri = %s AND p.released_at IS NULL",
            (lot_uri,),
        ).fetchone()


def live_pledges(conn: Conn, lot_uris: Iterable[str]) -> dict[str, Pledge]:
    with conn.cursor(row_factory=class_row(Pledge)) as cur:
        rows = cur.execute(
            f"SELECT {_PLEDGE_COLUMNS} FROM {KEYS}"  # noqa: S608 - constant columns
            " JOIN pledges p ON p.lot_uri = k.key WHERE p.released_at IS NULL",
            (list(lot_uris),),
            prepare=False,
        ).fetchall()
    return {row.lot_uri: row for row in rows}


def pledges_of_line(conn: Conn, line_id: int) -> list[Pledge]:
    with conn.cursor(row_factory=class_row(Pledge)) as cur:
        return cur.execute(
            f"SELECT {_PLEDGE_COLUMNS} FROM pledges p"  # noqa: S608 - constant columns
            " WHERE p.line_id = %s AND p.released_at IS NULL ORDER BY p.pledged_at",
            (line_id,),
        ).fetchall()


def pledges_priced_by(conn: Conn, financier_org_id: int, gtin: str) -> list[Pledge]:
    """Live pledges on the financier's lines of lots of `gtin` (what a price change revalues)."""
    with conn.cursor(row_factory=class_row(Pledge)) as cur:
        return cur.execute(
            f"SELECT {_PLEDGE_COLUMNS} FROM pledges p"  # noqa: S608 - constant columns
            " JOIN credit_lines c ON c.id = p.line_id JOIN lots l ON l.lot_uri = p.lot_uri"
            " WHERE p.released_at IS NULL AND c.financier_org_id = %s AND l.gtin = %s"
            " ORDER BY p.line_id, p.lot_uri",
            (financier_org_id, gtin),
        ).fetchall()


def add_pledge(
    conn: Conn,
    lot_uri: str,
    line_id: int,
    lot_key: bytes,
    location: str,
    chain_tx: bytes,
    quantity: int,
) -> None:
    conn.execute(
        "INSERT INTO pledges (lot_uri, line_id, lot_key, location, chain_tx, quantity)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (lot_uri, line_id, lot_key, location, chain_tx, quantity),
    )


def reduce_pledge(conn: Conn, lot_uri: str, quantity: int) -> None:
    """A partial release: the live pledge of `lot_uri` covers `quantity` fewer units."""
    conn.execute(
        "UPDATE pledges SET quantity = quantity - %s WHERE lot_uri = %s AND released_at IS NULL",
        (quantity, lot_uri),
    )


def set_pledge_tx(conn: Conn, lot_uri: str, chain_tx: bytes) -> None:
    """The transaction that put the live pledge of `lot_uri` on the current registry."""
    conn.execute(
        "UPDATE pledges SET chain_tx = %s WHERE lot_uri = %s AND released_at IS NULL",
        (chain_tx, lot_uri),
    )


def release_pledge(conn: Conn, lot_uri: str, release_tx: bytes) -> bool:
    row = conn.execute(
        "UPDATE pledges SET released_at = now(), release_tx = %s"
        " WHERE lot_uri = %s AND released_at IS NULL RETURNING lot_uri",
        (release_tx, lot_uri),
    ).fetchone()
    return row is not None


# --- risk flags, margin calls, receivables ---------------------------------------------------


def raise_flag(
    conn: Conn,
    kind: str,
    detail: str,
    *,
    lot_uri: str | None = None,
    line_id: int | None = None,
    event_hash: bytes | None = None,
) -> bool:
    """Raise a risk flag unless the same one is open; True when it was raised now."""
    row = conn.execute(
        "INSERT INTO risk_flags (lot_uri, line_id, kind, detail, event_hash)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        (lot_uri, line_id, kind, detail, event_hash),
    ).fetchone()
    return row is not None


def clear_flag(
    conn: Conn, lot_uri: str, kind: str, reason: str, event_hash: bytes | None = None
) -> bool:
    """Close the lot's open flag of `kind` on evidence; True when one was open."""
    row = conn.execute(
        "UPDATE risk_flags SET cleared_at = now(), cleared_reason = %s, cleared_event_hash = %s"
        " WHERE lot_uri = %s AND kind = %s AND cleared_at IS NULL RETURNING id",
        (reason, event_hash, lot_uri, kind),
    ).fetchone()
    return row is not None


def last_cleared(conn: Conn, lot_uri: str, kind: str) -> datetime | None:
    """When the lot's flag of `kind` was last closed (None: never)."""
    row = conn.execute(
        "SELECT max(cleared_at) FROM risk_flags WHERE lot_uri = %s AND kind = %s",
        (lot_uri, kind),
    ).fetchone()
    return row[0] if row else None


def open_flags_of(conn: Conn, lot_uris: Iterable[str]) -> dict[str, set[str]]:
    """The open flag kinds of each lot that has any."""
    rows = conn.execute(
        f"SELECT f.lot_uri, f.kind FROM {KEYS} JOIN risk_flags f ON f.lot_uri = k.key"  # noqa: S608
        " WHERE f.cleared_at IS NULL",
        (list(lot_uris),),
        prepare=False,
    ).fetchall()
    out: dict[str, set[str]] = {}
    for lot_uri, kind in rows:
        out.setdefault(str(lot_uri), set()).add(str(kind))
    return out


def open_flags(conn: Conn, lot_uri: str) -> set[str]:
    rows = conn.execute(
        "SELECT kind FROM risk_flags WHERE lot_uri = %s AND cleared_at IS NULL", (lot_uri,)
    ).fetchall()
    return {str(kind) for (kind,) in rows}


def every_risk_flag(conn: Conn, since: datetime | None) -> list[RiskFlagRow]:
    """Every flag (the regulator's read), oldest first."""
    with conn.cursor(row_factory=class_row(RiskFlagRow)) as cur:
        return cur.execute(
            "SELECT f.id, f.lot_uri, f.line_id, f.kind, f.detail, f.raised_at FROM risk_flags f"
            " WHERE %s::timestamptz IS NULL OR f.raised_at >= %s"
            " ORDER BY f.raised_at, f.id LIMIT 1000",
            (since, since),
        ).fetchall()


def risk_flags_for_financier(
    conn: Conn, financier_org_id: int, since: datetime | None
) -> list[RiskFlagRow]:
    """Flags on the financier's lines and on lots pledged to it, oldest first."""
    with conn.cursor(row_factory=class_row(RiskFlagRow)) as cur:
        return cur.execute(
            "SELECT DISTINCT f.id, f.lot_uri, f.line_id, f.kind, f.detail, f.raised_at"
            " FROM risk_flags f"
            " LEFT JOIN pledges p ON p.lot_uri = f.lot_uri AND p.released_at IS NULL"
            " JOIN credit_lines c ON c.id = coalesce(f.line_id, p.line_id)"
            " WHERE c.financier_org_id = %s AND (%s::timestamptz IS NULL OR f.raised_at >= %s)"
            " ORDER BY f.raised_at, f.id LIMIT 1000",
            (financier_org_id, since, since),
        ).fetchall()


@dataclass(frozen=True)
class MarginCall:
    """A line's call for cover: `amount_minor` is its shortfall now (`shortfall_minor`: when
    raised); `state` open, cured or escalated (past due, the line frozen)."""

    id: int
    line_id: int
    lot_uri: str | None
    amount_minor: int
    shortfall_minor: int
    currency: str
    state: str
    reason: str
    raised_at: datetime
    due_at: datetime
    settled_at: datetime | None


_CALL_COLUMNS = (
    "m.id, m.line_id, m.lot_uri, m.amount_minor, m.shortfall_minor, m.currency, m.state,"
    " m.reason, m.raised_at, m.due_at, m.settled_at"
)


def live_margin_call(conn: Conn, line_id: int) -> MarginCall | None:
    """The line's open or escalated call, row-locked until the transaction ends."""
    with conn.cursor(row_factory=class_row(MarginCall)) as cur:
        return cur.execute(
            f"SELECT {_CALL_COLUMNS} FROM margin_calls m"  # noqa: S608 - constant columns
            " WHERE m.line_id = %s AND m.state IN ('open', 'escalated') FOR UPDATE",
            (line_id,),
        ).fetchone()


def open_margin_call(
    conn: Conn,
    line_id: int,
    lot_uri: str | None,
    amount_minor: int,
    currency: str,
    reason: str,
    due_at: datetime,
) -> MarginCall:
    with conn.cursor(row_factory=class_row(MarginCall)) as cur:
        call = cur.execute(
            "INSERT INTO margin_calls AS m (line_id, lot_uri, shortfall_minor, amount_minor,"  # noqa: S608
            " currency, reason, due_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {_CALL_COLUMNS}",
            (line_id, lot_uri, amount_minor, amount_minor, currency, reason, due_at),
        ).fetchone()
    assert call is not None
    return call


def set_margin_call_amount(conn: Conn, call_id: int, amount_minor: int) -> None:
    conn.execute(
        "UPDATE margin_calls SET amount_minor = %s, updated_at = now() WHERE id = %s",
        (amount_minor, call_id),
    )


def cure_margin_call(conn: Conn, call_id: int) -> None:
    conn.execute(
        "UPDATE margin_calls SET state = 'cured', settled_at = now(), updated_at = now()"
        " WHERE id = %s",
        (call_id,),
    )


def due_margin_calls(conn: Conn, now: datetime) -> list[MarginCall]:
    """Open calls past their due time (not locked: `escalate_margin_call` decides)."""
    with conn.cursor(row_factory=class_row(MarginCall)) as cur:
        return cur.execute(
            f"SELECT {_CALL_COLUMNS} FROM margin_calls m"  # noqa: S608 - constant columns
            " WHERE m.state = 'open' AND m.due_at <= %s ORDER BY m.id",
            (now,),
        ).fetchall()


def escalate_margin_call(conn: Conn, call_id: int, now: datetime) -> bool:
    """An open call past due becomes escalated; False when it no longer is one."""
    row = conn.execute(
        "UPDATE margin_calls SET state = 'escalated', updated_at = now()"
        " WHERE id = %s AND state = 'open' AND due_at <= %s RETURNING id",
        (call_id, now),
    ).fetchone()
    return row is not None


def movement_reacted(conn: Conn, lot_uri: str, log_index: int) -> bool:
    """Whether finance already reacted to the claim at `log_index` that the lot's pledged goods
    moved (its flag, the freeze, or the note that it saw it): folded again, it must not freeze
    again a line the financier has reopened since. (Journal entries of an event carry its log
    index, which an index leads with.)"""
    row = conn.execute(
        "SELECT 1 FROM finance_journal WHERE log_index = %s"
        " AND ((action IN ('flag_unauthorized_movement', 'movement_seen') AND subject = %s)"
        "      OR (action = 'line_frozen' AND detail->>'lot' = %s)) LIMIT 1",
        (log_index, lot_uri, lot_uri),
    ).fetchone()
    return row is not None


def margin_calls_of_org(conn: Conn, org_id: int | None) -> list[MarginCall]:
    """Calls on lines where the org is the financier or the borrower (None: every call),
    newest first."""
    with conn.cursor(row_factory=class_row(MarginCall)) as cur:
        return cur.execute(
            f"SELECT {_CALL_COLUMNS} FROM margin_calls m"  # noqa: S608 - constant columns
            f"{_party_to_line('m')} ORDER BY m.id DESC",
            (org_id, org_id),
        ).fetchall()


def add_receivables(conn: Conn, rows: Sequence[Receivable]) -> None:
    """Receivables to record; one already known by (lot, PO) is skipped."""
    if rows:
        conn.cursor().executemany(
            "INSERT INTO receivables (lot_uri, purchase_order, amount_minor, currency,"
            " advance_minor, event_hash, seller_org_id, buyer_org_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, (SELECT id FROM orgs WHERE slug = %s),"
            " (SELECT id FROM orgs WHERE slug = %s)) ON CONFLICT DO NOTHING",
            [
                (
                    r.lot_uri,
                    r.purchase_order,
                    r.amount_minor,
                    r.currency,
                    r.advance_minor,
                    r.event_hash,
                    r.seller,
                    r.buyer,
                )
                for r in rows
            ],
        )


@dataclass(frozen=True)
class ReceivableRow:
    """A receivable as its parties see it."""

    id: int
    lot_uri: str
    purchase_order: str
    amount_minor: int
    currency: str
    advance_minor: int
    seller: str | None
    buyer: str | None
    seller_org_id: int | None
    buyer_org_id: int | None
    state: str
    financier: str | None
    financier_org_id: int | None
    loan_id: int | None
    paid_minor: int
    created_at: datetime
    confirmed_at: datetime | None
    financed_at: datetime | None
    paid_at: datetime | None


_RECEIVABLE = (
    "SELECT r.id, r.lot_uri, r.purchase_order, r.amount_minor, r.currency, r.advance_minor,"
    " s.slug AS seller, b.slug AS buyer, r.seller_org_id, r.buyer_org_id, r.state,"
    " f.slug AS financier, r.financier_org_id, r.loan_id, r.paid_minor, r.created_at,"
    " r.confirmed_at, r.financed_at, r.paid_at FROM receivables r"
    " LEFT JOIN orgs s ON s.id = r.seller_org_id LEFT JOIN orgs b ON b.id = r.buyer_org_id"
    " LEFT JOIN orgs f ON f.id = r.financier_org_id"
)


def get_receivable(
    conn: Conn, receivable_id: int, *, for_update: bool = False
) -> ReceivableRow | None:
    lock = " FOR UPDATE OF r" if for_update else ""
    with conn.cursor(row_factory=class_row(ReceivableRow)) as cur:
        return cur.execute(
            f"{_RECEIVABLE} WHERE r.id = %s{lock}",
            (receivable_id,),
        ).fetchone()


def receivables_seen_by(conn: Conn, org_id: int | None) -> list[ReceivableRow]:
    """Receivables the org sells, buys or financed, and confirmed ones of sellers it has a
    line to (those it may finance); None: every receivable. Newest first."""
    with conn.cursor(row_factory=class_row(ReceivableRow)) as cur:
        return cur.execute(
            f"{_RECEIVABLE} WHERE %s::bigint IS NULL"  # noqa: S608 - constant columns
            " OR %s IN (r.seller_org_id, r.buyer_org_id, r.financier_org_id)"
            " OR (r.state = 'confirmed' AND EXISTS (SELECT 1 FROM credit_lines c"
            "  WHERE c.financier_org_id = %s AND c.borrower_org_id = r.seller_org_id))"
            " ORDER BY r.id DESC",
            (org_id, org_id, org_id),
        ).fetchall()


def confirm_receivable(conn: Conn, receivable_id: int) -> None:
    conn.execute(
        "UPDATE receivables SET state = 'confirmed', confirmed_at = now()"
        " WHERE id = %s AND state = 'open'",
        (receivable_id,),
    )


def finance_receivable(
    conn: Conn, receivable_id: int, financier_org_id: int, loan_id: int, advance_minor: int
) -> None:
    conn.execute(
        "UPDATE receivables SET state = 'financed', financed_at = now(), financier_org_id = %s,"
        " loan_id = %s, advance_minor = %s WHERE id = %s AND state = 'confirmed'",
        (financier_org_id, loan_id, advance_minor, receivable_id),
    )


def receivable_paid(conn: Conn, receivable_id: int, amount_minor: int) -> None:
    """The buyer paid `amount_minor` more; paid in full, the receivable is `paid`."""
    conn.execute(
        "UPDATE receivables SET paid_minor = paid_minor + %s,"
        " state = CASE WHEN paid_minor + %s = amount_minor THEN 'paid' ELSE state END,"
        " paid_at = CASE WHEN paid_minor + %s = amount_minor THEN now() ELSE paid_at END"
        " WHERE id = %s",
        (amount_minor, amount_minor, amount_minor, receivable_id),
    )
