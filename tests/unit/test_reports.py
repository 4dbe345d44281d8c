"""The pure portfolio reports: grouping by currency, shares, buckets, run-off order."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from finance.reports import (
    LoanPosition,
    MarginCallPosition,
    aging,
    concentration,
    exposure,
    run_off,
)

BASE = LoanPosition(
    loan=1,
    line=1,
    financier="bank",
    borrower="acme",
    category="frozen",
    currency="CNY",
    lot="https://id.gs1.org/01/09506000134352/10/A",
    principal_outstanding_minor=1000,
    owed_minor=1010,
    status="current",
    days_overdue=0,
    overdue_principal_minor=0,
    maturity_on=date(2027, 1, 1),
    pledged_quantity=5,
    lot_quantity=5,
    custody="warehouse",
    location="https://id.gs1.org/414/9506000134352",
    line_status="active",
)


def position(**changes: object) -> LoanPosition:
    return replace(BASE, **changes)  # type: ignore[arg-type]


def test_exposure_adds_within_a_currency_and_leaves_repaid_loans_out() -> None:
    rows = exposure(
        [
            position(loan=1),
            position(loan=2, principal_outstanding_minor=500, owed_minor=500),
            position(loan=3, currency="USD", category=None),
            position(loan=4, principal_outstanding_minor=0, owed_minor=0, status="repaid"),
        ],
        "category",
    )
    assert [
        (r.group, r.currency, r.loans, r.principal_outstanding_minor, r.owed_minor) for r in rows
    ] == [
        ("(uncategorised)", "USD", 1, 1000, 1010),
        ("frozen", "CNY", 2, 1500, 1510),
    ]


def test_concentration_shares_round_half_even_and_ties_go_by_name() -> None:
    rows = concentration(
        [
            position(borrower="b", principal_outstanding_minor=1),
            position(borrower="a", principal_outstanding_minor=1),
            position(borrower="c", principal_outstanding_minor=1),
        ],
        top=2,
    )
    assert [(r.rank, r.borrower, r.share, r.cumulative_share) for r in rows] == [
        (1, "a", Decimal("0.3333"), Decimal("0.3333")),
        (2, "b", Decimal("0.3333"), Decimal("0.6667")),
    ]
    assert {r.financier_total_minor for r in rows} == {3}
    # 1/8 = 0.125 exactly; 0.00005 cases round half-even: 1/20000 = 0.00005 -> 0.0000.
    tiny = concentration(
        [
            position(borrower="x", principal_outstanding_minor=1),
            position(borrower="y", principal_outstanding_minor=19999),
        ],
        top=2,
    )
    assert [r.share for r in tiny] == [Decimal("1.0000"), Decimal("0.0000")]
    with pytest.raises(ValueError, match="top must be at least 1"):
        concentration([BASE], top=0)


@pytest.mark.parametrize(
    ("days_overdue", "bucket"),
    [
        (0, "1-30"),
        (29, "1-30"),
        (30, "31-60"),
        (59, "31-60"),
        (60, "61-90"),
        (89, "61-90"),
        (90, "91+"),
        (1000, "91+"),
    ],
)
def test_an_overdue_loan_is_aged_from_its_first_overdue_day_as_day_one(
    days_overdue: int, bucket: str
) -> None:
    overdue = position(status="overdue", days_overdue=days_overdue, overdue_principal_minor=400)
    [row] = aging([overdue, BASE], [], date(2027, 6, 1))
    assert (row.kind, row.bucket, row.count, row.amount_minor) == ("overdue_loan", bucket, 1, 400)


def test_margin_calls_are_aged_by_days_since_raised() -> None:
    calls = [
        MarginCallPosition(1, "bank", "acme", "CNY", 300, date(2027, 6, 1)),  # today: 1-30
        MarginCallPosition(2, "bank", "acme", "CNY", 200, date(2027, 5, 2)),  # 30 days: 1-30
        MarginCallPosition(3, "bank", "acme", "CNY", 100, date(2027, 5, 1)),  # 31 days
    ]
    rows = aging([], calls, date(2027, 6, 1))
    assert [(r.bucket, r.count, r.amount_minor) for r in rows] == [
        ("1-30", 2, 500),
        ("31-60", 1, 100),
    ]


def test_run_off_lists_what_still_owes_by_financier_and_expected_end() -> None:
    rows = run_off(
        [
            position(loan=1, maturity_on=date(2027, 3, 1)),
            position(loan=2, maturity_on=date(2027, 2, 1)),
            position(loan=3, financier="another", maturity_on=date(2028, 1, 1)),
            position(loan=4, principal_outstanding_minor=0, owed_minor=0, status="repaid"),
            position(loan=5, principal_outstanding_minor=0, owed_minor=7),  # fees left; 2027-01-01
        ]
    )
    assert [r.loan for r in rows] == [3, 5, 2, 1]
    assert rows[2].expected_end == date(2027, 2, 1)
