"""Loan servicing on stored loans: terms at drawdown, statements, payments through the waterfall.

The economics are finance/servicing.py's (pure); this module reads a loan's terms and payments
from the store, asks servicing for the split of a new payment, and stores it with the principal
it repays taken off the loan and the line. Every payment is dated the day it is recorded (UTC,
by the database's clock): a statement already given for an earlier day never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from finance.errors import FinanceError, FinanceErrorCode
from finance.money import Rate
from finance.servicing import (
    AppliedRepayment,
    DayCount,
    LoanTerms,
    Repayment,
    RepaymentSource,
    ScheduleKind,
    Statement,
    statement,
)
from finance.store import credit, goods
from finance.store.credit import Loan, StoredTerms
from records.db import Conn

# A policy that says nothing of economics (and the loans drawn before issue 15): interest-free,
# no fee or penalty, all due at one year, in default 90 days after.
DEFAULT_TERMS = StoredTerms(
    annual_rate=Decimal(0),
    day_count=DayCount.ACT_365F.value,
    schedule_kind=ScheduleKind.BULLET.value,
    instalment_count=1,
    fee_rate=Decimal(0),
    tenor_days=365,
    grace_days=0,
    penalty_rate=Decimal(0),
    default_after_days=90,
)


class _Terms(Protocol):
    """Stored terms: a policy's, a loan's or a portfolio row's (the same columns)."""

    @property
    def annual_rate(self) -> Decimal: ...
    @property
    def day_count(self) -> str: ...
    @property
    def schedule_kind(self) -> str: ...
    @property
    def instalment_count(self) -> int: ...
    @property
    def fee_rate(self) -> Decimal: ...
    @property
    def tenor_days(self) -> int: ...
    @property
    def grace_days(self) -> int: ...
    @property
    def penalty_rate(self) -> Decimal: ...
    @property
    def default_after_days(self) -> int: ...


class _StoredLoan(_Terms, Protocol):
    @property
    def id(self) -> int: ...
    @property
    def principal_minor(self) -> int: ...
    @property
    def drawn_on(self) -> date: ...


def loan_terms(stored: _Terms) -> LoanTerms:
    """The pure terms of stored ones."""
    return LoanTerms(
        annual_rate=Rate.of(stored.annual_rate),
        day_count=DayCount(stored.day_count),
        tenor_days=stored.tenor_days,
        schedule_kind=ScheduleKind(stored.schedule_kind),
        instalment_count=stored.instalment_count,
        fee_rate=Rate.of(stored.fee_rate),
        grace_days=stored.grace_days,
        penalty_rate=Rate.of(stored.penalty_rate),
        default_after_days=stored.default_after_days,
    )


def terms_at_drawdown(conn: Conn, financier_org_id: int, category: str) -> StoredTerms:
    """The terms a loan drawn now takes: its financier's policy for the category (or its
    default '*'), else DEFAULT_TERMS."""
    row = goods.policy_for(conn, financier_org_id, category)
    if row is None:
        return DEFAULT_TERMS
    return StoredTerms(
        annual_rate=row.annual_rate,
        day_count=row.day_count,
        schedule_kind=row.schedule_kind,
        instalment_count=row.instalment_count,
        fee_rate=row.fee_rate,
        tenor_days=row.tenor_days,
        grace_days=row.grace_days,
        penalty_rate=row.penalty_rate,
        default_after_days=row.default_after_days,
    )


def _repayments(payments: Sequence[credit.LoanPayment]) -> list[Repayment]:
    return [Repayment(p.paid_on, p.amount_minor, RepaymentSource(p.source)) for p in payments]


def disagreements(loan: Loan, payments: Sequence[credit.LoanPayment]) -> list[str]:
    """Where the stored loan and its payments differ from what the waterfall makes of the
    payments: each payment's split, and the principal outstanding (for the audit)."""
    if not payments:
        paid_principal, problems = 0, []
    else:
        last = max(payment.paid_on for payment in payments)
        stated = statement(
            loan.principal_minor,
            loan.drawn_on,
            loan_terms(loan),
            _repayments(payments),
            max(last, loan.drawn_on),
        )
        problems = [
            f"payment {stored.id} is stored as fees {stored.fees_minor}, penalty"
            f" {stored.penalty_minor}, interest {stored.interest_minor}, principal"
            f" {stored.principal_minor}; the waterfall gives {computed.applied}"
            for stored, computed in zip(payments, stated.applied, strict=True)
            if (
                stored.fees_minor,
                stored.penalty_minor,
                stored.interest_minor,
                stored.principal_minor,
            )
            != (
                computed.applied.fees_minor,
                computed.applied.penalty_minor,
                computed.applied.interest_minor,
                computed.applied.principal_minor,
            )
        ]
        paid_principal = stated.paid.principal_minor
    if loan.outstanding_minor != loan.principal_minor - paid_principal:
        problems.append(
            f"{loan.outstanding_minor} is recorded outstanding; its payments leave"
            f" {loan.principal_minor - paid_principal}"
        )
    return problems


def loan_statement(conn: Conn, loan: _StoredLoan, as_of: date) -> Statement:
    """The loan as of `as_of`: a function of its terms and stored payments alone."""
    return statement_of(loan, credit.payments_of_loan(conn, loan.id), as_of)


def statement_of(
    loan: _StoredLoan, payments: Sequence[credit.LoanPayment], as_of: date
) -> Statement:
    """The loan as of `as_of` from its payments (read already, e.g. for a whole portfolio)."""
    if as_of < loan.drawn_on:
        raise FinanceError(
            FinanceErrorCode.INVALID_DATE,
            f"loan {loan.id} was drawn on {loan.drawn_on}: no statement as of {as_of}",
        )
    return statement(
        loan.principal_minor, loan.drawn_on, loan_terms(loan), _repayments(payments), as_of
    )


@dataclass(frozen=True)
class Owing:
    """A loan with its payments so far (read once) and all it owes on the day."""

    loan: Loan
    payments: list[credit.LoanPayment]
    owed_minor: int


def owing(conn: Conn, loans: Sequence[Loan], today: date) -> list[Owing]:
    """Each loan with what it owes at `today`, after the payments recorded so far."""
    result = []
    for loan in loans:
        payments = credit.payments_of_loan(conn, loan.id)
        owed = statement_of(loan, payments, today).outstanding_minor
        result.append(Owing(loan, payments, owed))
    return result


@dataclass(frozen=True)
class PaymentApplied:
    """How much of a payment one loan took, split by the waterfall."""

    loan_id: int
    amount_minor: int
    fees_minor: int
    penalty_minor: int
    interest_minor: int
    principal_minor: int


def _apply_payment(
    conn: Conn,
    due: Owing,
    amount_minor: int,
    source: RepaymentSource,
    movement_id: int,
    today: date,
) -> PaymentApplied:
    """Apply `amount_minor` (at most what the loan owes today) to the loan through the
    waterfall, store it, and take the principal it repays off the loan and its line."""
    loan = due.loan
    earlier = _repayments(due.payments)
    paid = Repayment(today, amount_minor, source)
    # Payments are dated the day they are recorded, so this one is the last applied (sorting
    # by date is stable); its split is what the statement of any later day will show for it.
    applied: AppliedRepayment = statement(
        loan.principal_minor, loan.drawn_on, loan_terms(loan), [*earlier, paid], today
    ).applied[-1]
    if applied.repayment is not paid or applied.unapplied_minor:
        raise FinanceError(
            FinanceErrorCode.INVALID_AMOUNT,
            f"loan {loan.id} owes less than {amount_minor} on {today}",
        )
    split = applied.applied
    credit.add_payment(
        conn,
        credit.NewPayment(
            loan_id=loan.id,
            movement_id=movement_id,
            paid_on=today,
            source=source.value,
            amount_minor=amount_minor,
            fees_minor=split.fees_minor,
            penalty_minor=split.penalty_minor,
            interest_minor=split.interest_minor,
            principal_minor=split.principal_minor,
        ),
        loan.line_id,
    )
    return PaymentApplied(
        loan.id,
        amount_minor,
        split.fees_minor,
        split.penalty_minor,
        split.interest_minor,
        split.principal_minor,
    )


def allocate(
    conn: Conn,
    dues: Sequence[Owing],
    amount_minor: int,
    source: RepaymentSource,
    movement_id: int,
    today: date,
) -> tuple[list[PaymentApplied], int]:
    """Apply a payment to the loans of `dues` (see `owing`) in their order, each taking at
    most what it owes today; returns the parts applied and what is left over (nothing owed
    any more)."""
    left, parts = amount_minor, []
    for due in dues:
        if left == 0:
            break
        if due.owed_minor == 0:
            continue
        part = _apply_payment(conn, due, min(left, due.owed_minor), source, movement_id, today)
        parts.append(part)
        left -= part.amount_minor
    return parts, left
