"""Pure loan economics (issue 15): schedule, interest, fee, penalty, default, waterfall, statement.

Nothing here reads a clock, a database or a chain: a statement is a function of the loan's
principal, drawn date, terms, repayments and the as-of date alone. Amounts are integer minor
units; rates are exact (`finance.money.Rate`) and every product is computed exactly, in integers,
and rounded once. The rules (docs/finance.md, "Loan economics", states them for readers):

* **Days.** A statement as of D counts the days from the drawn date (included) to D (excluded).
  `ACT/365F` divides the actual number of days by 365, `ACT/360` by 360; 29 February is a day
  like any other.
* **Interest** is owed to the bank, so it is rounded **up** (as `finance.money` rounds what is
  owed): the days are cut into spans, a span being a maximal run of consecutive days over which
  the principal outstanding does not change; each span's interest is
  ceil(principal outstanding x annual rate x days / basis) in minor units. A span still running
  on the as-of date (or on a repayment date) counts the days up to it, rounded up the same way;
  when the span ends its whole interest is rounded up once, so what was accrued never shrinks.
* **Fee**: ceil(principal x fee rate), owed from the drawn date, on its own (not principal).
* **Schedule**: maturity = drawn date + tenor days. A bullet loan repays all the principal at
  maturity. N equal instalments fall on drawn date + floor(k x tenor / N) days, k = 1..N (the
  last exactly at maturity), each principal // N, the remainder of that division going to the
  last. Interest is not scheduled: what has accrued before a due date is due on that date.
* **Repayments** are applied at the start of their day: the interest of the days before it is
  due, and that day accrues on what is left. Each goes fees -> penalty interest -> interest ->
  principal (the oldest instalment's first); what exceeds everything owed then is `unapplied`.
  Repayments dated after the as-of date are not part of that statement.
* **Overdue**: an instalment due on D is overdue from D + grace days + 1 when some of its
  principal is still unpaid at the end of D + grace days (so after the repayments of that day),
  and stays overdue until its principal is paid. `days_overdue` counts the overdue days before
  the as-of date (the days that bore penalty): 0 on the first overdue day.
* **Penalty interest** accrues on each overdue day on the unpaid principal of the overdue
  instalments, at the penalty rate, with the loan's day count and the same span rule (spans cut
  where that base changes), on top of the normal interest.
* **Default**: the oldest overdue instalment has been overdue for at least `default_after_days`
  days. It is a state as of the date, not a sticky flag: paying the arrears cures it.
* **Repaid**: nothing outstanding; nothing accrues any more.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from itertools import accumulate
from typing import Final

from finance.money import MAX_AMOUNT_MINOR, Rate

__all__ = [
    "AppliedRepayment",
    "Components",
    "DayCount",
    "Instalment",
    "LoanStatus",
    "LoanTerms",
    "NextDue",
    "Repayment",
    "RepaymentSource",
    "ScheduleKind",
    "Statement",
    "maturity",
    "schedule",
    "statement",
]

MAX_TENOR_DAYS: Final = 3650
MAX_GRACE_DAYS: Final = 365
MAX_DEFAULT_AFTER_DAYS: Final = 3650


class DayCount(StrEnum):
    """How days become a fraction of a year: actual days over a fixed basis."""

    ACT_365F = "ACT/365F"
    ACT_360 = "ACT/360"

    @property
    def basis_days(self) -> int:
        return 365 if self is DayCount.ACT_365F else 360


class ScheduleKind(StrEnum):
    BULLET = "bullet"
    INSTALMENTS = "instalments"


class RepaymentSource(StrEnum):
    """Who paid: the borrower, the proceeds of a sale of the pledged goods, or the buyer of a
    financed receivable."""

    BORROWER = "borrower"
    PROCEEDS = "proceeds"
    BUYER = "buyer"


class LoanStatus(StrEnum):
    CURRENT = "current"
    OVERDUE = "overdue"
    DEFAULT = "default"
    REPAID = "repaid"


def _require_int(value: object, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def _require_date(value: object, name: str) -> None:
    # A datetime is a date to isinstance, but a time of day would be silently dropped here.
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name} must be a date (no time of day), not {type(value).__name__}")


def _require_rate(value: object, name: str) -> None:
    if not isinstance(value, Rate):
        raise TypeError(f"{name} must be a Rate, not {type(value).__name__}; use Rate.of('0.05')")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanTerms:
    """What a loan costs and when it is due.

    * `annual_rate`, `penalty_rate` (annual, on overdue principal), `fee_rate` (of the
      principal, once, at drawdown): Rates, so 0..1 and exact.
    * `day_count`: ACT/365F or ACT/360, for interest and penalty alike.
    * `tenor_days` (1..3650): maturity = drawn date + tenor days.
    * `schedule_kind`, `instalment_count`: a bullet has one; instalments 1..tenor_days (so no
      two fall on the same day).
    * `grace_days` (0..365): days after a due date before an unpaid instalment is overdue.
    * `default_after_days` (1..3650): overdue days after which the loan is in default.
    """

    annual_rate: Rate
    day_count: DayCount
    tenor_days: int
    schedule_kind: ScheduleKind
    instalment_count: int
    fee_rate: Rate
    grace_days: int
    penalty_rate: Rate
    default_after_days: int

    def __post_init__(self) -> None:
        for name in ("annual_rate", "fee_rate", "penalty_rate"):
            _require_rate(getattr(self, name), name)
        if not isinstance(self.day_count, DayCount):
            raise TypeError(f"day_count must be a DayCount, not {self.day_count!r}")
        if not isinstance(self.schedule_kind, ScheduleKind):
            raise TypeError(f"schedule_kind must be a ScheduleKind, not {self.schedule_kind!r}")
        _require_int(self.tenor_days, "tenor_days", 1, MAX_TENOR_DAYS)
        _require_int(self.instalment_count, "instalment_count", 1, self.tenor_days)
        if self.schedule_kind is ScheduleKind.BULLET and self.instalment_count != 1:
            raise ValueError(
                f"a bullet loan has one instalment, got instalment_count={self.instalment_count}"
            )
        _require_int(self.grace_days, "grace_days", 0, MAX_GRACE_DAYS)
        _require_int(self.default_after_days, "default_after_days", 1, MAX_DEFAULT_AFTER_DAYS)


@dataclass(frozen=True, slots=True)
class Instalment:
    """One scheduled repayment of principal (1-based `number`)."""

    number: int
    due_on: date
    principal_minor: int


@dataclass(frozen=True, slots=True)
class Repayment:
    """A payment received, applied at the start of day `on`."""

    on: date
    amount_minor: int
    source: RepaymentSource = RepaymentSource.BORROWER

    def __post_init__(self) -> None:
        _require_date(self.on, "repayment date")
        _require_int(self.amount_minor, "repayment amount_minor", 1, MAX_AMOUNT_MINOR)
        if not isinstance(self.source, RepaymentSource):
            raise TypeError(f"source must be a RepaymentSource, not {self.source!r}")


@dataclass(frozen=True, slots=True)
class Components:
    """An amount split by what it is for, in minor units."""

    fees_minor: int = 0
    penalty_minor: int = 0
    interest_minor: int = 0
    principal_minor: int = 0

    @property
    def total_minor(self) -> int:
        return self.fees_minor + self.penalty_minor + self.interest_minor + self.principal_minor


@dataclass(frozen=True, slots=True)
class AppliedRepayment:
    """How the waterfall split one repayment."""

    repayment: Repayment
    applied: Components
    unapplied_minor: int


@dataclass(frozen=True, slots=True)
class NextDue:
    """The next due date on or after the as-of date with something due, assuming no further
    payments: the fees, penalty and interest accrued before it plus the unpaid principal of
    every instalment due on or before it (arrears included)."""

    on: date
    amount_minor: int
    principal_minor: int


@dataclass(frozen=True, slots=True)
class Statement:
    """A loan as of a date (see the module docstring for every rule)."""

    as_of: date
    drawn_on: date
    maturity_on: date
    principal_minor: int
    fees_minor: int
    interest_accrued_minor: int
    penalty_accrued_minor: int
    paid: Components
    outstanding: Components
    status: LoanStatus
    days_overdue: int
    overdue_principal_minor: int
    next_due: NextDue | None
    unapplied_minor: int
    applied: tuple[AppliedRepayment, ...] = field(default=())

    @property
    def outstanding_minor(self) -> int:
        return self.outstanding.total_minor


# ---------------------------------------------------------------------------------------------
# Schedule
# ---------------------------------------------------------------------------------------------


def _require_loan(principal_minor: object, drawn_on: object, terms: object) -> None:
    _require_int(principal_minor, "principal_minor", 1, MAX_AMOUNT_MINOR)
    _require_date(drawn_on, "drawn_on")
    if not isinstance(terms, LoanTerms):
        raise TypeError(f"terms must be LoanTerms, not {type(terms).__name__}")


def maturity(drawn_on: date, terms: LoanTerms) -> date:
    return drawn_on + timedelta(days=terms.tenor_days)


def schedule(principal_minor: int, drawn_on: date, terms: LoanTerms) -> list[Instalment]:
    """The principal's due dates: everything at maturity (bullet), or N equal instalments at
    drawn_on + floor(k x tenor / N) days with the division's remainder on the last."""
    _require_loan(principal_minor, drawn_on, terms)
    count = terms.instalment_count
    share, remainder = divmod(principal_minor, count)
    return [
        Instalment(
            number=k,
            due_on=drawn_on + timedelta(days=k * terms.tenor_days // count),
            principal_minor=share + (remainder if k == count else 0),
        )
        for k in range(1, count + 1)
    ]


# ---------------------------------------------------------------------------------------------
# Accrual
# ---------------------------------------------------------------------------------------------


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _ceil_times_rate(amount_minor: int, rate: Rate) -> int:
    numerator, denominator = rate.value.as_integer_ratio()
    return _ceil_div(amount_minor * numerator, denominator)


class _Accrual:
    """Interest on a balance at an annual rate, rounded up once per span of unchanged balance.

    `accrued(day)` is the interest of every day before `day`: the closed spans' plus the running
    span's so far, each rounded up. A span's days only grow, so this never decreases."""

    def __init__(self, rate: Rate, day_count: DayCount, start: date) -> None:
        numerator, denominator = rate.value.as_integer_ratio()
        self._numerator = numerator
        self._denominator = denominator * day_count.basis_days
        self._closed_minor = 0
        self._balance_minor = 0
        self._since = start

    def _running(self, day: date) -> int:
        days = (day - self._since).days
        return _ceil_div(self._balance_minor * self._numerator * days, self._denominator)

    def accrued(self, day: date) -> int:
        return self._closed_minor + self._running(day)

    def set_balance(self, day: date, balance_minor: int) -> None:
        """From `day` on the balance is `balance_minor`; a change ends the running span."""
        if balance_minor != self._balance_minor:
            self._closed_minor += self._running(day)
            self._balance_minor = balance_minor
            self._since = day


class _Loan:
    """The state of one walk through a loan's event days, in date order.

    Principal is repaid oldest instalment first, so the unpaid principal of the first k
    instalments is max(0, their scheduled principal - principal paid): no instalment is
    tracked one by one, and an event costs O(log N) whatever the number of instalments."""

    def __init__(self, principal_minor: int, drawn_on: date, terms: LoanTerms) -> None:
        self.principal_minor = principal_minor
        self.instalments = schedule(principal_minor, drawn_on, terms)
        self.due_on = [instalment.due_on for instalment in self.instalments]
        # scheduled_through[k]: the principal of the first k instalments.
        self.scheduled_through = [
            0,
            *accumulate(instalment.principal_minor for instalment in self.instalments),
        ]
        after_grace = timedelta(days=terms.grace_days + 1)
        self.overdue_from = [due_on + after_grace for due_on in self.due_on]
        self.fees_minor = _ceil_times_rate(principal_minor, terms.fee_rate)
        self.interest = _Accrual(terms.annual_rate, terms.day_count, drawn_on)
        self.penalty = _Accrual(terms.penalty_rate, terms.day_count, drawn_on)
        self.interest.set_balance(drawn_on, principal_minor)
        self.paid = Components()
        self.applied: list[AppliedRepayment] = []
        self.unapplied_minor = 0
        self.day = drawn_on

    def _unpaid_of_first(self, count: int) -> int:
        return max(0, self.scheduled_through[count] - self.paid.principal_minor)

    def principal_due(self, day: date) -> int:
        """Unpaid principal of the instalments due on or before `day`."""
        return self._unpaid_of_first(bisect_right(self.due_on, day))

    def overdue_principal(self, day: date) -> int:
        """Unpaid principal of the instalments overdue on `day`: an instalment still unpaid
        now was unpaid at the end of its last grace day, since unpaid principal only falls."""
        return self._unpaid_of_first(bisect_right(self.overdue_from, day))

    def days_overdue(self, day: date) -> int:
        """Overdue days before `day` of the oldest instalment with principal unpaid."""
        oldest = bisect_right(self.scheduled_through, self.paid.principal_minor) - 1
        if oldest >= len(self.instalments) or self.overdue_from[oldest] > day:
            return 0
        return (day - self.overdue_from[oldest]).days

    def owed(self, day: date) -> Components:
        """What is owed at the start of `day`, before its repayments."""
        return Components(
            fees_minor=self.fees_minor - self.paid.fees_minor,
            penalty_minor=self.penalty.accrued(day) - self.paid.penalty_minor,
            interest_minor=self.interest.accrued(day) - self.paid.interest_minor,
            principal_minor=self.principal_minor - self.paid.principal_minor,
        )

    def advance(self, day: date, repayments: Sequence[Repayment]) -> None:
        """The start of `day`: its repayments, then the balances that bear interest and
        penalty from this day on."""
        self.day = day
        for repayment in repayments:
            self._apply(repayment)
        self.interest.set_balance(day, self.principal_minor - self.paid.principal_minor)
        self.penalty.set_balance(day, self.overdue_principal(day))

    def _apply(self, repayment: Repayment) -> None:
        owed = self.owed(repayment.on)
        left = repayment.amount_minor
        parts: list[int] = []
        for owed_minor in (
            owed.fees_minor,
            owed.penalty_minor,
            owed.interest_minor,
            owed.principal_minor,
        ):
            taken = min(left, owed_minor)
            parts.append(taken)
            left -= taken
        fees, penalty, interest, principal = parts
        self.paid = Components(
            fees_minor=self.paid.fees_minor + fees,
            penalty_minor=self.paid.penalty_minor + penalty,
            interest_minor=self.paid.interest_minor + interest,
            principal_minor=self.paid.principal_minor + principal,
        )
        self.unapplied_minor += left
        applied = Components(fees, penalty, interest, principal)
        self.applied.append(AppliedRepayment(repayment, applied, left))


def _walk(loan: _Loan, until: date, repayments: Sequence[Repayment]) -> None:
    """Advance `loan` through every event day after its current day up to `until` included:
    the repayment days and the first overdue days of its instalments. Nothing else changes a
    balance, so the days between are never visited one by one (a 10-year loan is cheap)."""
    by_day: dict[date, list[Repayment]] = {}
    for repayment in repayments:
        by_day.setdefault(repayment.on, []).append(repayment)
    overdue_days = {day for day in loan.overdue_from if loan.day < day <= until}
    for day in sorted(by_day.keys() | overdue_days):
        loan.advance(day, by_day.get(day, []))


def _next_due(loan: _Loan, as_of: date) -> NextDue | None:
    """Projecting with no further payment, the first due date on or after `as_of` on which
    something is due. Moves `loan` past `as_of`."""
    for due_on in loan.due_on:
        if due_on < as_of:
            continue
        _walk(loan, due_on, [])
        owed = loan.owed(due_on)
        principal = loan.principal_due(due_on)
        amount = owed.fees_minor + owed.penalty_minor + owed.interest_minor + principal
        if amount > 0:
            return NextDue(on=due_on, amount_minor=amount, principal_minor=principal)
    return None


def statement(
    principal_minor: int,
    drawn_on: date,
    terms: LoanTerms,
    repayments: Iterable[Repayment],
    as_of: date,
) -> Statement:
    """The loan as of the start of `as_of`, after that day's repayments; an `as_of` past the
    last repayment projects the accrual with no further payment. Repayments dated after `as_of`
    are left out. ValueError for an `as_of` or a repayment before `drawn_on`."""
    _require_loan(principal_minor, drawn_on, terms)
    _require_date(as_of, "as_of")
    if as_of < drawn_on:
        raise ValueError(f"as_of {as_of} is before the loan was drawn on {drawn_on}")
    received = list(repayments)
    for repayment in received:
        if not isinstance(repayment, Repayment):
            raise TypeError(f"repayments must be Repayment, not {type(repayment).__name__}")
        if repayment.on < drawn_on:
            raise ValueError(
                f"a repayment on {repayment.on} is before the loan was drawn on {drawn_on}"
            )
    # sorted() is stable: one day's repayments keep their order, which changes no total (what
    # is owed does not move between them).
    counted = sorted((r for r in received if r.on <= as_of), key=lambda r: r.on)

    loan = _Loan(principal_minor, drawn_on, terms)
    _walk(loan, as_of, counted)
    owed = loan.owed(as_of)
    overdue_principal = loan.overdue_principal(as_of)
    days_overdue = loan.days_overdue(as_of)
    if owed.total_minor == 0:
        status = LoanStatus.REPAID
    elif overdue_principal > 0:
        in_default = days_overdue >= terms.default_after_days
        status = LoanStatus.DEFAULT if in_default else LoanStatus.OVERDUE
    else:
        status = LoanStatus.CURRENT
    # Read everything as of `as_of` before the projection moves the walk past it.
    result = Statement(
        as_of=as_of,
        drawn_on=drawn_on,
        maturity_on=maturity(drawn_on, terms),
        principal_minor=principal_minor,
        fees_minor=loan.fees_minor,
        interest_accrued_minor=loan.interest.accrued(as_of),
        penalty_accrued_minor=loan.penalty.accrued(as_of),
        paid=loan.paid,
        outstanding=owed,
        status=status,
        days_overdue=days_overdue,
        overdue_principal_minor=overdue_principal,
        next_due=None,
        unapplied_minor=loan.unapplied_minor,
        applied=tuple(loan.applied),
    )
    if status is LoanStatus.REPAID:
        return result
    return replace(result, next_due=_next_due(loan, as_of))
