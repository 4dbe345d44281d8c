"""The portfolio as the regulator and each financier see it: positions and the reports on them.

Who sees what: the regulator and the operator (the CLI, `viewer` None) every financier's loans
(or one financier's, when they name one);
a financier its own lines' only (naming another is `unknown_org`, as for a slug nobody holds);
any other role none (`wrong_role`). Positions are each loan's statement on the report's day,
computed from its terms and payments (finance/repayments.py), so a report needs no job to have
run and gives the same figures for the same day whenever it is asked.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date

from finance import repayments, reports
from finance.errors import FinanceError, FinanceErrorCode
from finance.reports import LoanPosition, MarginCallPosition
from finance.store import credit
from finance.store import programme as programme_store
from records import registry_store
from records.db import Conn


def _scope(conn: Conn, viewer: str | None, financier: str | None) -> int | None:
    """The financier whose lines `viewer` may report on (None: every financier)."""
    seen = registry_store.get_org(conn, viewer) if viewer is not None else None
    if viewer is not None and seen is None:
        raise FinanceError(FinanceErrorCode.UNKNOWN_ORG, f"no organisation {viewer!r}")
    if seen is not None and seen.role == "financier":
        if financier not in (None, seen.slug):
            raise FinanceError(FinanceErrorCode.UNKNOWN_ORG, f"no financier {financier!r}")
        return seen.id
    if seen is not None and seen.role != "regulator":
        raise FinanceError(
            FinanceErrorCode.WRONG_ROLE, "reports are the regulator's and each financier's"
        )
    if financier is None:
        return None
    named = registry_store.get_org(conn, financier)
    if named is None or named.role != "financier":
        raise FinanceError(FinanceErrorCode.UNKNOWN_ORG, f"no financier {financier!r}")
    return named.id


def positions(conn: Conn, financier_org_id: int | None, as_of: date) -> list[LoanPosition]:
    """Every loan in scope drawn on or before `as_of`, as its statement stands that day."""
    payments: dict[int, list[credit.LoanPayment]] = defaultdict(list)
    for payment in credit.every_payment(conn):
        payments[payment.loan_id].append(payment)
    result = []
    for loan in programme_store.portfolio(conn, financier_org_id):
        if loan.drawn_on > as_of:
            continue
        stated = repayments.statement_of(loan, payments[loan.id], as_of)
        result.append(
            LoanPosition(
                loan=loan.id,
                line=loan.line_id,
                financier=loan.financier,
                borrower=loan.borrower,
                category=loan.category,
                currency=loan.currency,
                lot=loan.lot_uri,
                principal_outstanding_minor=stated.outstanding.principal_minor,
                owed_minor=stated.outstanding_minor,
                status=stated.status.value,
                days_overdue=stated.days_overdue,
                overdue_principal_minor=stated.overdue_principal_minor,
                maturity_on=stated.maturity_on,
                pledged_quantity=loan.pledged_quantity,
                lot_quantity=loan.lot_quantity,
                custody=loan.custody,
                location=loan.location,
                line_status=loan.line_status,
            )
        )
    return result


def _as_of(conn: Conn, as_of: date | None) -> date:
    return as_of if as_of is not None else credit.utc_today(conn)


def exposure(
    conn: Conn,
    viewer: str | None,
    by: reports.ExposureBy,
    financier: str | None = None,
    as_of: date | None = None,
) -> list[reports.ExposureRow]:
    scope = _scope(conn, viewer, financier)
    return reports.exposure(positions(conn, scope, _as_of(conn, as_of)), by)


def concentration(
    conn: Conn,
    viewer: str | None,
    top: int,
    financier: str | None = None,
    as_of: date | None = None,
) -> list[reports.ConcentrationRow]:
    scope = _scope(conn, viewer, financier)
    return reports.concentration(positions(conn, scope, _as_of(conn, as_of)), top)


def aging(
    conn: Conn, viewer: str | None, financier: str | None = None, as_of: date | None = None
) -> list[reports.AgingRow]:
    scope = _scope(conn, viewer, financier)
    day = _as_of(conn, as_of)
    calls = [
        MarginCallPosition(
            call=call.id,
            financier=call.financier,
            borrower=call.borrower,
            currency=call.currency,
            amount_minor=call.amount_minor,
            raised_on=call.raised_at.astimezone(UTC).date(),
        )
        for call in programme_store.open_margin_calls(conn, scope)
    ]
    return reports.aging(positions(conn, scope, day), calls, day)


def run_off(
    conn: Conn, viewer: str | None, financier: str | None = None, as_of: date | None = None
) -> list[reports.RunOffRow]:
    scope = _scope(conn, viewer, financier)
    return reports.run_off(positions(conn, scope, _as_of(conn, as_of)))
