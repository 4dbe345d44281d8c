"""Pure portfolio reports for the regulator and financiers: exposure, concentration, aging, run-off.

Each report is a list of flat rows (one shape per report, the same for JSON and CSV) computed
from loan positions — a loan as its statement stands on the report's day — and open margin
calls. Nothing here reads a clock or a database. Amounts are integer minor units and are only
added within one currency; a share is a ratio (not money), exact to 4 decimals, half-even.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

__all__ = [
    "AGING_BUCKETS",
    "AgingRow",
    "ConcentrationRow",
    "ExposureRow",
    "LoanPosition",
    "MarginCallPosition",
    "RunOffRow",
    "aging",
    "concentration",
    "exposure",
    "run_off",
]

ExposureBy = Literal["financier", "borrower", "category"]
UNCATEGORISED = "(uncategorised)"
# Upper bounds (inclusive) of the aging buckets, in days; the last is open-ended.
AGING_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("1-30", 30),
    ("31-60", 60),
    ("61-90", 90),
    ("91+", None),
)
_SHARE = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class LoanPosition:
    """A loan as its statement stands on the report's day, with its collateral."""

    loan: int
    line: int
    financier: str
    borrower: str
    category: str | None
    currency: str
    lot: str
    principal_outstanding_minor: int
    owed_minor: int  # everything outstanding: fees, penalty, interest and principal
    status: str  # current / overdue / default / repaid
    days_overdue: int  # overdue days before the report's day (0 on the first overdue day)
    overdue_principal_minor: int
    maturity_on: date
    pledged_quantity: int | None  # units pledged while the lot's pledge is live
    lot_quantity: int
    custody: str | None
    location: str | None
    line_status: str

    @property
    def outstanding(self) -> bool:
        return self.owed_minor > 0


@dataclass(frozen=True, slots=True)
class MarginCallPosition:
    call: int
    financier: str
    borrower: str
    currency: str
    amount_minor: int
    raised_on: date


@dataclass(frozen=True, slots=True)
class ExposureRow:
    by: str  # financier, borrower or category
    group: str
    currency: str
    loans: int
    principal_outstanding_minor: int
    owed_minor: int


def exposure(positions: Iterable[LoanPosition], by: ExposureBy) -> list[ExposureRow]:
    """Outstanding loans summed per financier, borrower or product category, and currency."""
    loans: dict[tuple[str, str], list[LoanPosition]] = defaultdict(list)
    for position in positions:
        if position.outstanding:
            group = {
                "financier": position.financier,
                "borrower": position.borrower,
                "category": position.category or UNCATEGORISED,
            }[by]
            loans[(group, position.currency)].append(position)
    return [
        ExposureRow(
            by=by,
            group=group,
            currency=currency,
            loans=len(members),
            principal_outstanding_minor=sum(p.principal_outstanding_minor for p in members),
            owed_minor=sum(p.owed_minor for p in members),
        )
        for (group, currency), members in sorted(loans.items())
    ]


@dataclass(frozen=True, slots=True)
class ConcentrationRow:
    """One of a financier's top borrowers by principal outstanding, in one currency."""

    financier: str
    currency: str
    rank: int
    borrower: str
    principal_outstanding_minor: int
    financier_total_minor: int
    share: Decimal  # of the financier's principal outstanding in that currency
    cumulative_share: Decimal  # of the top `rank` borrowers together


def _share(part: int, whole: int) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(_SHARE, rounding=ROUND_HALF_EVEN)


def concentration(positions: Iterable[LoanPosition], top: int) -> list[ConcentrationRow]:
    """Per financier and currency, its `top` borrowers by principal outstanding (ties by
    name) and their shares of its total."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    by_borrower: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for position in positions:
        if position.principal_outstanding_minor > 0:
            key = (position.financier, position.currency)
            by_borrower[key][position.borrower] += position.principal_outstanding_minor
    rows = []
    for (financier, currency), borrowers in sorted(by_borrower.items()):
        total = sum(borrowers.values())
        ranked = sorted(borrowers.items(), key=lambda item: (-item[1], item[0]))[:top]
        running = 0
        for rank, (borrower, amount) in enumerate(ranked, start=1):
            running += amount
            rows.append(
                ConcentrationRow(
                    financier=financier,
                    currency=currency,
                    rank=rank,
                    borrower=borrower,
                    principal_outstanding_minor=amount,
                    financier_total_minor=total,
                    share=_share(amount, total),
                    cumulative_share=_share(running, total),
                )
            )
    return rows


@dataclass(frozen=True, slots=True)
class AgingRow:
    financier: str
    currency: str
    kind: Literal["overdue_loan", "margin_call"]
    bucket: str  # days overdue (a loan's first overdue day is day 1) or days since raised
    count: int
    amount_minor: int  # overdue principal, or the call's amount


def _bucket(days: int) -> str:
    for label, upper in AGING_BUCKETS:
        if upper is None or days <= upper:
            return label
    raise AssertionError("the last bucket is open-ended")


def aging(
    positions: Iterable[LoanPosition], calls: Iterable[MarginCallPosition], as_of: date
) -> list[AgingRow]:
    """Overdue loans by days overdue and open margin calls by days since raised, bucketed
    (1-30, 31-60, 61-90, 91+; a call raised on the report's day counts in 1-30)."""
    counts: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for position in positions:
        if position.overdue_principal_minor > 0:
            key = (position.financier, position.currency, "overdue_loan")
            cell = counts[(*key, _bucket(position.days_overdue + 1))]
            cell[0] += 1
            cell[1] += position.overdue_principal_minor
    for call in calls:
        age = max((as_of - call.raised_on).days, 1)
        cell = counts[(call.financier, call.currency, "margin_call", _bucket(age))]
        cell[0] += 1
        cell[1] += call.amount_minor
    order = {label: index for index, (label, _) in enumerate(AGING_BUCKETS)}
    return [
        AgingRow(financier, currency, kind, bucket, count, amount)  # type: ignore[arg-type]
        for (financier, currency, kind, bucket), (count, amount) in sorted(
            counts.items(), key=lambda item: (*item[0][:3], order[item[0][3]])
        )
    ]


@dataclass(frozen=True, slots=True)
class RunOffRow:
    """An outstanding loan to run off: what it owes, how it stands, what secures it."""

    loan: int
    financier: str
    borrower: str
    line: int
    line_status: str
    currency: str
    principal_outstanding_minor: int
    owed_minor: int
    status: str
    days_overdue: int
    expected_end: date  # its maturity: the day its last instalment falls due
    lot: str
    pledged_quantity: int | None
    lot_quantity: int
    custody: str | None
    location: str | None


def run_off(positions: Sequence[LoanPosition]) -> list[RunOffRow]:
    """Every loan still owing, by financier, expected end and loan."""
    return [
        RunOffRow(
            loan=p.loan,
            financier=p.financier,
            borrower=p.borrower,
            line=p.line,
            line_status=p.line_status,
            currency=p.currency,
            principal_outstanding_minor=p.principal_outstanding_minor,
            owed_minor=p.owed_minor,
            status=p.status,
            days_overdue=p.days_overdue,
            expected_end=p.maturity_on,
            lot=p.lot,
            pledged_quantity=p.pledged_quantity,
            lot_quantity=p.lot_quantity,
            custody=p.custody,
            location=p.location,
        )
        for p in sorted(
            (p for p in positions if p.outstanding),
            key=lambda p: (p.financier, p.maturity_on, p.loan),
        )
    ]
