"""Loan economics: day counts, interest spans, fee, schedule, penalty, default, waterfall."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import finance.servicing
from finance.money import Rate
from finance.servicing import (
    AppliedRepayment,
    Components,
    DayCount,
    Instalment,
    LoanStatus,
    LoanTerms,
    NextDue,
    Repayment,
    RepaymentSource,
    ScheduleKind,
    Statement,
    schedule,
    statement,
)
from tests.support.examples import examples

ACT365 = DayCount.ACT_365F
ACT360 = DayCount.ACT_360
BULLET = ScheduleKind.BULLET
INSTALMENTS = ScheduleKind.INSTALMENTS
D = date.fromisoformat


def rate(value: str) -> Rate:
    return Rate.of(value)


# A loan with no cost and no tolerance; each test changes what it is about.
PLAIN = LoanTerms(
    annual_rate=rate("0"),
    day_count=ACT365,
    tenor_days=365,
    schedule_kind=BULLET,
    instalment_count=1,
    fee_rate=rate("0"),
    grace_days=0,
    penalty_rate=rate("0"),
    default_after_days=90,
)


def terms(**changes: Any) -> LoanTerms:
    return replace(PLAIN, **changes)


def paid(on: str, amount_minor: int) -> Repayment:
    return Repayment(D(on), amount_minor)


# ---------------------------------------------------------------------------------------------
# Terms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"tenor_days": 0}, "tenor_days must be between 1 and 3650", id="tenor-0"),
        pytest.param({"tenor_days": 3651}, "tenor_days must be between 1 and 3650", id="tenor-big"),
        pytest.param(
            {"schedule_kind": INSTALMENTS, "instalment_count": 0},
            "instalment_count must be between 1 and 365",
            id="no-instalments",
        ),
        pytest.param(
            {"schedule_kind": INSTALMENTS, "tenor_days": 10, "instalment_count": 11},
            "instalment_count must be between 1 and 10",
            id="more-instalments-than-days",
        ),
        pytest.param({"instalment_count": 2}, "a bullet loan has one instalment", id="bullet-2"),
        pytest.param({"grace_days": -1}, "grace_days must be between 0 and 365", id="grace-neg"),
        pytest.param({"grace_days": 366}, "grace_days must be between 0 and 365", id="grace-big"),
        pytest.param(
            {"default_after_days": 0}, "default_after_days must be between 1 and 3650", id="dflt-0"
        ),
        pytest.param(
            {"default_after_days": 3651},
            "default_after_days must be between 1 and 3650",
            id="default-big",
        ),
    ],
)
def test_terms_out_of_range_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        terms(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"annual_rate": Decimal("0.05")}, id="decimal-rate"),
        pytest.param({"fee_rate": 0.01}, id="float-fee"),
        pytest.param({"tenor_days": 30.0}, id="float-tenor"),
        pytest.param({"grace_days": True}, id="bool-grace"),
        pytest.param({"day_count": "ACT/365F"}, id="day-count-string"),
    ],
)
def test_terms_of_the_wrong_type_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        terms(**changes)


def test_rates_above_one_are_refused_by_rate() -> None:
    # The 0..1 range of annual, fee and penalty rates is Rate's own.
    with pytest.raises(ValueError, match="between 0 and 1"):
        rate("1.01")


def test_day_count_bases() -> None:
    assert (ACT365.basis_days, ACT360.basis_days) == (365, 360)
    assert (DayCount("ACT/365F"), DayCount("ACT/360")) == (ACT365, ACT360)


# ---------------------------------------------------------------------------------------------
# Schedule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "drawn_on", "tenor", "count", "expected"),
    [
        # Bullet: everything at maturity, 2025-01-01 + 90 days = 2025-04-01.
        pytest.param(1_000_000, "2025-01-01", 90, 1, [("2025-04-01", 1_000_000)], id="bullet"),
        # 100 001 // 3 = 33 333 remainder 2, which goes to the last: 33 333, 33 333, 33 335.
        # Days floor(k*90/3) = 30, 60, 90 from 2028-02-27 (2028 is a leap year): 03-28, 04-27,
        # 05-27.
        pytest.param(
            100_001,
            "2028-02-27",
            90,
            3,
            [("2028-03-28", 33_333), ("2028-04-27", 33_333), ("2028-05-27", 33_335)],
            id="three-with-remainder",
        ),
        # Days floor(k*100/3) = 33, 66, 100 from 2025-01-01: 02-03, 03-08, 04-11.
        pytest.param(
            90_000,
            "2025-01-01",
            100,
            3,
            [("2025-02-03", 30_000), ("2025-03-08", 30_000), ("2025-04-11", 30_000)],
            id="tenor-not-divisible",
        ),
        # One instalment a day: 10 // 3 = 3 remainder 1 -> 3, 3, 4.
        pytest.param(
            10,
            "2025-12-30",
            3,
            3,
            [("2025-12-31", 3), ("2026-01-01", 3), ("2026-01-02", 4)],
            id="daily",
        ),
        # Less principal than instalments: 2 // 3 = 0 remainder 2 -> 0, 0, 2.
        pytest.param(
            2,
            "2025-01-01",
            3,
            3,
            [("2025-01-02", 0), ("2025-01-03", 0), ("2025-01-04", 2)],
            id="tiny-principal",
        ),
    ],
)
def test_schedule(
    principal: int, drawn_on: str, tenor: int, count: int, expected: list[tuple[str, int]]
) -> None:
    kind = BULLET if count == 1 else INSTALMENTS
    loan = terms(tenor_days=tenor, schedule_kind=kind, instalment_count=count)
    assert schedule(principal, D(drawn_on), loan) == [
        Instalment(number, D(due), amount) for number, (due, amount) in enumerate(expected, 1)
    ]


def test_schedule_refuses_bad_loans() -> None:
    with pytest.raises(ValueError, match="principal_minor must be between 1"):
        schedule(0, D("2025-01-01"), PLAIN)
    with pytest.raises(TypeError, match="no time of day"):
        schedule(1, datetime(2025, 1, 1), PLAIN)


# ---------------------------------------------------------------------------------------------
# Interest and the day counts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "annual", "day_count", "drawn_on", "as_of", "interest"),
    [
        # 2028-02-27 .. 2028-03-02 excluded: 27, 28, 29 Feb, 1 Mar = 4 days (leap day, month end).
        # 1 000 000 x 0.05 x 4 / 365 = 200 000 / 365 = 547.945... -> 548
        pytest.param(1_000_000, "0.05", ACT365, "2028-02-27", "2028-03-02", 548, id="leap-365"),
        # 200 000 / 360 = 555.555... -> 556
        pytest.param(1_000_000, "0.05", ACT360, "2028-02-27", "2028-03-02", 556, id="leap-360"),
        # The same dates a year earlier: 27, 28 Feb, 1 Mar = 3 days.
        # 1 000 000 x 0.05 x 3 / 365 = 150 000 / 365 = 410.958... -> 411
        pytest.param(1_000_000, "0.05", ACT365, "2027-02-27", "2027-03-02", 411, id="no-leap-365"),
        # 150 000 / 360 = 416.666... -> 417
        pytest.param(1_000_000, "0.05", ACT360, "2027-02-27", "2027-03-02", 417, id="no-leap-360"),
        # 30, 31 Jan, 1 Feb = 3 days: 2 500 000 x 0.08 x 3 / 365 = 600 000 / 365 = 1643.83 -> 1644
        pytest.param(2_500_000, "0.08", ACT365, "2025-01-30", "2025-02-02", 1644, id="month-365"),
        # 600 000 / 360 = 1666.66... -> 1667
        pytest.param(2_500_000, "0.08", ACT360, "2025-01-30", "2025-02-02", 1667, id="month-360"),
        # Exact, nothing to round: 7 300 000 x 0.05 x 1 / 365 = 365 000 / 365 = 1000
        pytest.param(7_300_000, "0.05", ACT365, "2025-06-01", "2025-06-02", 1000, id="exact-365"),
        # 3 600 000 x 0.10 x 1 / 360 = 360 000 / 360 = 1000
        pytest.param(3_600_000, "0.10", ACT360, "2025-06-01", "2025-06-02", 1000, id="exact-360"),
        # The smallest fraction still rounds up: 1 000 001 x 0.0365 / 365 = 100.0001 -> 101
        pytest.param(1_000_001, "0.0365", ACT365, "2025-06-01", "2025-06-02", 101, id="ceiling"),
        # The drawn day itself is not yet accrued.
        pytest.param(1_000_000, "0.05", ACT365, "2025-06-01", "2025-06-01", 0, id="same-day"),
    ],
)
def test_interest_day_counts(
    principal: int, annual: str, day_count: DayCount, drawn_on: str, as_of: str, interest: int
) -> None:
    loan = terms(annual_rate=rate(annual), day_count=day_count)
    result = statement(principal, D(drawn_on), loan, [], D(as_of))
    assert result.interest_accrued_minor == interest
    assert result.outstanding == Components(interest_minor=interest, principal_minor=principal)
    assert result.status is LoanStatus.CURRENT


def test_a_principal_repayment_ends_the_span() -> None:
    # 1 000 000 at 5% ACT/365F from 2025-01-01. On 01-11 (10 days accrued):
    #   1 000 000 x 0.05 x 10 / 365 = 500 000 / 365 = 1369.86 -> 1370 interest,
    #   500 000 - 1370 = 498 630 principal, leaving 501 370.
    # 01-11 .. 01-21 on 501 370: 501 370 x 0.05 x 10 / 365 = 250 685 / 365 = 686.81 -> 687.
    loan = terms(annual_rate=rate("0.05"))
    result = statement(
        1_000_000, D("2025-01-01"), loan, [paid("2025-01-11", 500_000)], D("2025-01-21")
    )
    assert result.applied == (
        AppliedRepayment(
            paid("2025-01-11", 500_000),
            Components(interest_minor=1370, principal_minor=498_630),
            unapplied_minor=0,
        ),
    )
    assert result.interest_accrued_minor == 1370 + 687
    assert result.outstanding == Components(interest_minor=687, principal_minor=501_370)


def test_a_repayment_that_pays_no_principal_does_not_cut_the_span() -> None:
    # 1 000 001 at 3.65% ACT/365F: one day is 1 000 001 x 0.0365 / 365 = 100.0001.
    # Fee 1%: 1 000 001 x 0.01 = 10 000.01 -> 10 001. A repayment of exactly the fee on 01-02
    # leaves the principal as it was, so 01-01 .. 01-03 is one span:
    #   ceil(200.0002) = 201, where cutting at the repayment would give 101 + 101 = 202.
    loan = terms(annual_rate=rate("0.0365"), fee_rate=rate("0.01"))
    result = statement(
        1_000_001, D("2025-01-01"), loan, [paid("2025-01-02", 10_001)], D("2025-01-03")
    )
    assert result.paid == Components(fees_minor=10_001)
    assert result.interest_accrued_minor == 201


# ---------------------------------------------------------------------------------------------
# Fee
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "fee_rate", "fee"),
    [
        pytest.param(1_000_000, "0.01", 10_000, id="exact"),  # 1 000 000 x 0.01
        pytest.param(1_000_001, "0.01", 10_001, id="ceiling"),  # 10 000.01 -> 10 001
        pytest.param(999, "0.015", 15, id="small"),  # 999 x 0.015 = 14.985 -> 15
        pytest.param(1_000_000, "0", 0, id="none"),
    ],
)
def test_fee_is_owed_at_drawdown_apart_from_principal(
    principal: int, fee_rate: str, fee: int
) -> None:
    result = statement(
        principal, D("2025-01-01"), terms(fee_rate=rate(fee_rate)), [], D("2025-01-01")
    )
    assert result.fees_minor == fee
    assert result.outstanding == Components(fees_minor=fee, principal_minor=principal)
    assert result.principal_minor == principal


# ---------------------------------------------------------------------------------------------
# Overdue, penalty, default
# ---------------------------------------------------------------------------------------------

# 1 000 000 bullet drawn 2025-01-01, tenor 30: due 2025-01-31. Grace 3 days: the last grace day
# is 02-03, overdue from 02-04. No interest; penalty 36.5% ACT/365F = 0.001 a day, so 1000 a
# day on 1 000 000 (36% under ACT/360 is the same 0.001 a day). Default after 10 overdue days.
OVERDUE_TERMS = terms(
    tenor_days=30, grace_days=3, penalty_rate=rate("0.365"), default_after_days=10
)
DRAWN = D("2025-01-01")


@pytest.mark.parametrize("day_count", [ACT365, ACT360], ids=["act365", "act360"])
@pytest.mark.parametrize(
    ("as_of", "status", "days_overdue", "penalty"),
    [
        pytest.param("2025-01-31", LoanStatus.CURRENT, 0, 0, id="due-date"),
        pytest.param("2025-02-03", LoanStatus.CURRENT, 0, 0, id="last-grace-day"),
        # Overdue from 02-04; that day's penalty is counted from 02-05 on (days before as_of).
        pytest.param("2025-02-04", LoanStatus.OVERDUE, 0, 0, id="first-overdue-day"),
        pytest.param("2025-02-05", LoanStatus.OVERDUE, 1, 1000, id="day-after"),
        pytest.param("2025-02-13", LoanStatus.OVERDUE, 9, 9000, id="day-before-default"),
        pytest.param("2025-02-14", LoanStatus.DEFAULT, 10, 10_000, id="default"),
    ],
)
def test_overdue_penalty_and_default_boundaries(
    day_count: DayCount, as_of: str, status: LoanStatus, days_overdue: int, penalty: int
) -> None:
    penalty_rate = rate("0.365") if day_count is ACT365 else rate("0.36")
    loan = replace(OVERDUE_TERMS, day_count=day_count, penalty_rate=penalty_rate)
    result = statement(1_000_000, DRAWN, loan, [], D(as_of))
    assert (result.status, result.days_overdue) == (status, days_overdue)
    assert result.penalty_accrued_minor == penalty
    late = status in (LoanStatus.OVERDUE, LoanStatus.DEFAULT)
    assert result.overdue_principal_minor == (1_000_000 if late else 0)


@pytest.mark.parametrize(
    ("repaid_on", "penalty"),
    [
        pytest.param("2025-02-03", 0, id="last-grace-day"),
        # Unpaid at the end of 02-03, so overdue on 02-04; but a repayment is applied at the
        # start of its day, so 02-04 accrues on nothing.
        pytest.param("2025-02-04", 0, id="first-overdue-day"),
        # 02-04 accrued on 1 000 000: 1000; the repayment's first 1000 pay it.
        pytest.param("2025-02-05", 1000, id="day-after"),
    ],
)
def test_repaying_around_the_grace_boundary(repaid_on: str, penalty: int) -> None:
    repayment = paid(repaid_on, 1_000_000 + penalty)
    result = statement(1_000_000, DRAWN, OVERDUE_TERMS, [repayment], D("2025-03-01"))
    assert result.status is LoanStatus.REPAID
    assert result.paid == Components(penalty_minor=penalty, principal_minor=1_000_000)
    assert result.penalty_accrued_minor == penalty
    assert result.next_due is None


def test_penalty_base_is_the_unpaid_overdue_principal() -> None:
    # 02-04 .. 02-08 overdue on 1 000 000: 5 days x 1000 = 5000 penalty.
    # 400 000 on 02-09: penalty 5000, principal 395 000 -> 605 000 overdue.
    # 02-09 .. 02-11 on 605 000: 605 000 x 0.365 x 3 / 365 = 1815 (exact).
    result = statement(
        1_000_000, DRAWN, OVERDUE_TERMS, [paid("2025-02-09", 400_000)], D("2025-02-12")
    )
    assert result.penalty_accrued_minor == 5000 + 1815
    assert result.paid == Components(penalty_minor=5000, principal_minor=395_000)
    assert result.outstanding == Components(penalty_minor=1815, principal_minor=605_000)
    assert result.overdue_principal_minor == 605_000
    # Still the same instalment, overdue since 02-04: 8 days before 02-12.
    assert (result.status, result.days_overdue) == (LoanStatus.OVERDUE, 8)


def test_paying_the_arrears_cures_a_default() -> None:
    # 3 x 300 000 over 90 days from 2025-01-01: due 01-31, 03-02, 04-01. No grace: the first is
    # overdue from 02-01; 5 overdue days (02-01 .. 02-05) by 02-06 is the default threshold.
    # Penalty 300 000 x 0.001 x 5 = 1500.
    loan = terms(
        tenor_days=90,
        schedule_kind=INSTALMENTS,
        instalment_count=3,
        penalty_rate=rate("0.365"),
        default_after_days=5,
    )
    defaulted = statement(900_000, DRAWN, loan, [], D("2025-02-06"))
    assert (defaulted.status, defaulted.days_overdue) == (LoanStatus.DEFAULT, 5)
    assert defaulted.penalty_accrued_minor == 1500
    cured = statement(900_000, DRAWN, loan, [paid("2025-02-06", 301_500)], D("2025-02-06"))
    assert cured.paid == Components(penalty_minor=1500, principal_minor=300_000)
    assert (cured.status, cured.days_overdue, cured.overdue_principal_minor) == (
        LoanStatus.CURRENT,
        0,
        0,
    )
    assert cured.next_due == NextDue(D("2025-03-02"), amount_minor=300_000, principal_minor=300_000)


# ---------------------------------------------------------------------------------------------
# The waterfall
# ---------------------------------------------------------------------------------------------

# 900 000 in 3 instalments over 90 days from 2025-01-01 (due 01-31, 03-02, 04-01), 10% a year
# ACT/365F, fee 1% = 9000, grace 5 days (the first instalment is overdue from 02-06), penalty
# 20% a year. On 2025-02-16:
#   interest 01-01 .. 02-15, 46 days: 900 000 x 0.10 x 46 / 365 = 4 140 000 / 365 = 11 342.47
#     -> 11 343
#   penalty 02-06 .. 02-15, 10 days on 300 000: 300 000 x 0.20 x 10 / 365 = 600 000 / 365
#     = 1643.84 -> 1644
WATERFALL_TERMS = terms(
    annual_rate=rate("0.10"),
    tenor_days=90,
    schedule_kind=INSTALMENTS,
    instalment_count=3,
    fee_rate=rate("0.01"),
    grace_days=5,
    penalty_rate=rate("0.20"),
    default_after_days=30,
)


@pytest.mark.parametrize(
    ("amount", "applied", "unapplied"),
    [
        # Fees partly: 5000 of 9000.
        pytest.param(5000, Components(fees_minor=5000), 0, id="fees-partly"),
        # 15 000 - 9000 fee - 1644 penalty = 4356 of the 11 343 interest; principal untouched.
        pytest.param(
            15_000,
            Components(fees_minor=9000, penalty_minor=1644, interest_minor=4356),
            0,
            id="interest-partly",
        ),
        # 9000 + 1644 + 11 343 = 21 987, the rest 8013 to the first instalment's principal.
        pytest.param(
            30_000,
            Components(9000, 1644, 11_343, 8013),
            0,
            id="principal-partly",
        ),
        # Everything owed: 21 987 + 900 000 = 921 987; 78 013 left over.
        pytest.param(
            1_000_000,
            Components(9000, 1644, 11_343, 900_000),
            78_013,
            id="everything-and-more",
        ),
    ],
)
def test_waterfall_fees_penalty_interest_principal(
    amount: int, applied: Components, unapplied: int
) -> None:
    repayment = paid("2025-02-16", amount)
    result = statement(900_000, DRAWN, WATERFALL_TERMS, [repayment], D("2025-02-16"))
    assert result.applied == (AppliedRepayment(repayment, applied, unapplied),)
    assert result.paid == applied
    assert result.unapplied_minor == unapplied
    assert (result.interest_accrued_minor, result.penalty_accrued_minor) == (11_343, 1644)


def test_a_repayment_partly_covering_interest_leaves_the_loan_overdue() -> None:
    result = statement(
        900_000, DRAWN, WATERFALL_TERMS, [paid("2025-02-16", 15_000)], D("2025-02-16")
    )
    assert result.outstanding == Components(interest_minor=11_343 - 4356, principal_minor=900_000)
    assert (result.status, result.days_overdue) == (LoanStatus.OVERDUE, 10)
    assert result.overdue_principal_minor == 300_000
    # Projected to the next due date 03-02 with no further payment:
    #   interest 60 days: 900 000 x 0.10 x 60 / 365 = 5 400 000 / 365 = 14 794.52 -> 14 795,
    #     less 4356 paid = 10 439;
    #   penalty 02-06 .. 03-01, 24 days on 300 000: 1 440 000 / 365 = 3945.21 -> 3946, less
    #     1644 paid = 2302;
    #   principal of the instalments due by 03-02: 600 000.
    assert result.next_due == NextDue(
        D("2025-03-02"), amount_minor=10_439 + 2302 + 600_000, principal_minor=600_000
    )


def test_repaid_in_full_accrues_nothing_more() -> None:
    # Bullet 1 000 000 at 10%, fee 1% = 10 000. On 01-31, 30 days:
    #   1 000 000 x 0.10 x 30 / 365 = 3 000 000 / 365 = 8219.18 -> 8220.
    # 1 030 000 pays 10 000 + 8220 + 1 000 000 = 1 018 220; 11 780 is unapplied.
    loan = terms(annual_rate=rate("0.10"), fee_rate=rate("0.01"), tenor_days=90)
    repayment = paid("2025-01-31", 1_030_000)
    for as_of in ("2025-01-31", "2025-06-01", "2035-01-01"):
        result = statement(1_000_000, DRAWN, loan, [repayment], D(as_of))
        assert result.status is LoanStatus.REPAID
        assert result.paid == Components(10_000, 0, 8220, 1_000_000)
        assert result.outstanding == Components()
        assert result.unapplied_minor == 11_780
        assert result.interest_accrued_minor == 8220
        assert result.next_due is None
    # A later repayment finds nothing owed: all of it is unapplied.
    later = statement(1_000_000, DRAWN, loan, [repayment, paid("2025-03-01", 500)], D("2025-03-01"))
    assert later.applied[-1] == AppliedRepayment(paid("2025-03-01", 500), Components(), 500)
    assert later.unapplied_minor == 11_780 + 500


# 900 000 in 3 instalments over 90 days from 2025-01-01 (due 01-31, 03-02, 04-01), 36.5% a
# year ACT/365F = 0.001 a day: 900 a day on 900 000, 500 a day on 500 000. Grace 5.
DAILY_TERMS = terms(
    annual_rate=rate("0.365"),
    tenor_days=90,
    schedule_kind=INSTALMENTS,
    instalment_count=3,
    grace_days=5,
)


@pytest.mark.parametrize(
    ("repayments", "as_of", "outstanding", "next_due"),
    [
        # 10 days x 900 = 9000 so far; due 01-31: 30 days x 900 = 27 000 + 300 000.
        pytest.param(
            [],
            "2025-01-11",
            Components(interest_minor=9000, principal_minor=900_000),
            NextDue(D("2025-01-31"), 327_000, 300_000),
            id="nothing-paid",
        ),
        # 409 000 on 01-11: 9000 interest, 400 000 principal, the oldest instalment first (all
        # of the first, 100 000 of the second). Due 01-31: the interest of 01-11 .. 01-30,
        # 20 days x 500 = 10 000, and no principal.
        pytest.param(
            [paid("2025-01-11", 409_000)],
            "2025-01-11",
            Components(principal_minor=500_000),
            NextDue(D("2025-01-31"), 10_000, 0),
            id="prepaid",
        ),
        # The same, as of 02-01 with that interest (21 days x 500 = 10 500) still unpaid: only
        # unpaid principal makes an instalment overdue, so the loan is current and the
        # arrears are carried to the next due date, 03-02: 50 days x 500 = 25 000 + 200 000.
        pytest.param(
            [paid("2025-01-11", 409_000)],
            "2025-02-01",
            Components(interest_minor=10_500, principal_minor=500_000),
            NextDue(D("2025-03-02"), 225_000, 200_000),
            id="interest-arrears-carried",
        ),
    ],
)
def test_principal_goes_to_the_oldest_instalment_and_next_due(
    repayments: list[Repayment], as_of: str, outstanding: Components, next_due: NextDue
) -> None:
    result = statement(900_000, DRAWN, DAILY_TERMS, repayments, D(as_of))
    assert result.outstanding == outstanding
    assert result.next_due == next_due
    assert result.status is LoanStatus.CURRENT


# ---------------------------------------------------------------------------------------------
# Statements: projection, purity, refusals
# ---------------------------------------------------------------------------------------------


def test_a_future_as_of_projects_accrual_with_no_further_payment() -> None:
    # Bullet 1 000 000 at 3.65% ACT/365F: 100 a day; maturity 2026-01-01. 100 paid on 01-02.
    # As of 2025-12-31: 364 days x 100 = 36 400 accrued, 36 300 outstanding; due at maturity:
    # 365 days x 100 - 100 paid + 1 000 000 = 1 036 400.
    loan = terms(annual_rate=rate("0.0365"))
    result = statement(1_000_000, DRAWN, loan, [paid("2025-01-02", 100)], D("2025-12-31"))
    assert result.maturity_on == D("2026-01-01")
    assert result.interest_accrued_minor == 36_400
    assert result.outstanding == Components(interest_minor=36_300, principal_minor=1_000_000)
    assert result.next_due == NextDue(D("2026-01-01"), 1_036_400, 1_000_000)


def test_repayments_after_as_of_are_not_in_the_statement() -> None:
    loan = terms(annual_rate=rate("0.05"))
    without = statement(1_000_000, DRAWN, loan, [], D("2025-02-01"))
    later = [paid("2025-02-02", 5000)]
    assert statement(1_000_000, DRAWN, loan, later, D("2025-02-01")) == without


def test_a_statement_depends_on_its_inputs_only() -> None:
    repayments = [
        paid("2025-02-16", 15_000),
        Repayment(D("2025-03-01"), 50_000, RepaymentSource.PROCEEDS),
    ]
    kept = list(repayments)
    first = statement(900_000, DRAWN, WATERFALL_TERMS, repayments, D("2025-03-10"))
    again = statement(900_000, DRAWN, WATERFALL_TERMS, tuple(repayments), D("2025-03-10"))
    assert first == again
    assert repayments == kept
    assert isinstance(first, Statement)
    assert first.applied[1].repayment.source is RepaymentSource.PROCEEDS


def test_the_module_is_pure() -> None:
    """Only the standard library and finance.money, and no clock: no today(), no now()."""
    source = Path(finance.servicing.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    stdlib = {"__future__", "bisect", "collections.abc", "dataclasses", "datetime", "enum"}
    assert imported <= stdlib | {"itertools", "typing", "finance.money"}
    called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not called & {"today", "now", "utcnow", "time", "monotonic"}


def test_a_ten_year_loan_is_walked_by_event_days() -> None:
    # 3 650 000 in 3650 daily instalments of 1000, 3.65% interest and 36.5% penalty ACT/365F,
    # no grace. Interest: one span, 3650 days x 365 a day = 1 332 250.
    # Instalment k (due day k) is overdue from day k + 1, so on day j (j >= 2) j - 1 instalments
    # are overdue: penalty (j - 1) x 1000 x 0.001 = j - 1 that day. Days 2 .. 3649 before
    # as_of = day 3650: 1 + 2 + ... + 3648 = 3648 x 3649 / 2 = 6 655 776.
    loan = terms(
        annual_rate=rate("0.0365"),
        tenor_days=3650,
        schedule_kind=INSTALMENTS,
        instalment_count=3650,
        penalty_rate=rate("0.365"),
    )
    result = statement(3_650_000, DRAWN, loan, [], DRAWN + timedelta(days=3650))
    assert result.interest_accrued_minor == 1_332_250
    assert result.penalty_accrued_minor == 6_655_776
    # The first instalment has been overdue from day 2: 3648 days before day 3650.
    assert (result.status, result.days_overdue) == (LoanStatus.DEFAULT, 3648)
    assert result.overdue_principal_minor == 3_649_000


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(
            lambda: statement(1000, DRAWN, PLAIN, [], D("2024-12-31")),
            ValueError,
            "as_of 2024-12-31 is before the loan was drawn on 2025-01-01",
            id="as-of-before-drawn",
        ),
        pytest.param(
            lambda: statement(1000, DRAWN, PLAIN, [paid("2024-12-31", 1)], D("2025-02-01")),
            ValueError,
            "a repayment on 2024-12-31 is before the loan was drawn",
            id="repayment-before-drawn",
        ),
        pytest.param(
            lambda: Repayment(DRAWN, 0),
            ValueError,
            "repayment amount_minor must be between 1",
            id="zero-repayment",
        ),
        pytest.param(
            lambda: Repayment(DRAWN, 1, "bank"),
            TypeError,
            "source must be a RepaymentSource",
            id="unknown-source",
        ),
        pytest.param(
            lambda: statement(1000, DRAWN, PLAIN, [], datetime(2025, 2, 1)),
            TypeError,
            "as_of must be a date",
            id="datetime-as-of",
        ),
        pytest.param(
            lambda: statement(1000, DRAWN, PLAIN, [(DRAWN, 1)], D("2025-02-01")),
            TypeError,
            "repayments must be Repayment",
            id="tuple-repayment",
        ),
    ],
)
def test_refusals(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

rates = st.integers(min_value=0, max_value=10_000).map(lambda bp: Rate(Decimal(bp).scaleb(-4)))


@st.composite
def loans(draw: st.DrawFn) -> LoanTerms:
    tenor = draw(st.integers(min_value=1, max_value=400))
    count = draw(st.integers(min_value=1, max_value=min(tenor, 12)))
    return LoanTerms(
        annual_rate=draw(rates),
        day_count=draw(st.sampled_from(DayCount)),
        tenor_days=tenor,
        schedule_kind=BULLET if count == 1 else INSTALMENTS,
        instalment_count=count,
        fee_rate=draw(rates),
        grace_days=draw(st.integers(min_value=0, max_value=10)),
        penalty_rate=draw(rates),
        default_after_days=draw(st.integers(min_value=1, max_value=60)),
    )


principals = st.integers(min_value=1, max_value=10**9)
offsets = st.integers(min_value=0, max_value=500)
repayment_lists = st.lists(
    st.builds(
        lambda offset, amount: Repayment(DRAWN + timedelta(days=offset), amount),
        offsets,
        st.integers(min_value=1, max_value=10**9),
    ),
    max_size=6,
)


@settings(max_examples=examples(200), deadline=None)
@given(principal=principals, loan=loans(), repayments=repayment_lists, as_of=offsets)
def test_every_minor_unit_is_accounted_for(
    principal: int, loan: LoanTerms, repayments: list[Repayment], as_of: int
) -> None:
    day = DRAWN + timedelta(days=as_of)
    result = statement(principal, DRAWN, loan, repayments, day)
    received = sum(r.amount_minor for r in repayments if r.on <= day)
    assert result.paid.total_minor == received - result.unapplied_minor
    charged = Components(
        result.fees_minor,
        result.penalty_accrued_minor,
        result.interest_accrued_minor,
        principal,
    )
    for name in ("fees_minor", "penalty_minor", "interest_minor", "principal_minor"):
        owed = getattr(result.outstanding, name)
        assert owed >= 0
        assert getattr(result.paid, name) + owed == getattr(charged, name)
    assert (result.status is LoanStatus.REPAID) == (result.outstanding_minor == 0)
    assert result.unapplied_minor == 0 or result.status is LoanStatus.REPAID


@settings(max_examples=examples(200), deadline=None)
@given(
    principal=principals,
    loan=loans(),
    repayments=repayment_lists,
    first=offsets,
    later=st.integers(min_value=0, max_value=400),
)
def test_what_is_owed_never_falls_without_a_payment(
    principal: int, loan: LoanTerms, repayments: list[Repayment], first: int, later: int
) -> None:
    last_paid = max((r.on for r in repayments), default=DRAWN)
    start = max(last_paid, DRAWN + timedelta(days=first))
    before = statement(principal, DRAWN, loan, repayments, start)
    after = statement(principal, DRAWN, loan, repayments, start + timedelta(days=later))
    assert after.outstanding_minor >= before.outstanding_minor
    assert after.interest_accrued_minor >= before.interest_accrued_minor
    assert after.penalty_accrued_minor >= before.penalty_accrued_minor


@settings(max_examples=examples(100), deadline=None)
@given(
    principal=principals,
    loan=loans(),
    on=offsets,
    first_part=st.integers(min_value=1, max_value=10**9),
    second_part=st.integers(min_value=1, max_value=10**9),
    as_of=offsets,
)
def test_splitting_a_days_repayment_changes_nothing(
    principal: int, loan: LoanTerms, on: int, first_part: int, second_part: int, as_of: int
) -> None:
    day = DRAWN + timedelta(days=on)
    until = DRAWN + timedelta(days=as_of)
    whole = statement(principal, DRAWN, loan, [Repayment(day, first_part + second_part)], until)
    parts = [Repayment(day, first_part), Repayment(day, second_part)]
    split = statement(principal, DRAWN, loan, parts, until)
    assert replace(split, applied=()) == replace(whole, applied=())
