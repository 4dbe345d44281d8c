"""Finance rules and money: eligibility, decisions, LTV boundary, rounding, properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finance.money import CurrencyMismatch, Money, Rate, Rounding, minor_digits
from finance.rules import (
    ELIGIBILITY_CODES,
    Application,
    CreditLine,
    DecisionKind,
    Excursion,
    Inspection,
    LineStatus,
    LotState,
    Policy,
    Reason,
    cold_chain_excursion,
    collateral_value,
    credit_limit,
    decide,
    eligibility,
    receivable_advance,
    revalue,
)
from tests.support.examples import examples

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BANK = "bank-a"
H_COMMISSION = "ni:///sha-256;" + "1" * 64 + "?ver=CBV2.0"
H_INSPECT = "ni:///sha-256;" + "2" * 64 + "?ver=CBV2.0"
H_RECEIVE = "ni:///sha-256;" + "3" * 64 + "?ver=CBV2.0"
POLICY = Policy()
# Wrongly typed inputs, as untyped callers (JSON, settings) could pass them.
FLOAT: Any = 1.5
DECIMAL: Any = Decimal("1.5")


def cny(amount: str | int) -> Money:
    return Money.of(amount, "CNY")


def rate(value: str) -> Rate:
    return Rate.of(value)


def make_lot(**changes: Any) -> LotState:
    """A lot that passes every condition: 1 000 units at CNY 10.00, worth CNY 10 000.00."""
    lot = LotState(
        gtin="09506000134352",
        lot="L1",
        category="frozen_food",
        quantity=1000,
        unit_price=cny("10.00"),
        location="urn:epc:id:sgln:9506000.00001.0",
        in_supervised_warehouse=True,
        last_inspection=Inspection("conformant", NOW - timedelta(days=1), H_INSPECT),
        expiry=date(2026, 1, 1),
        pledged_to=BANK,
        evidence=((H_COMMISSION, True), (H_INSPECT, True), (H_RECEIVE, True)),
    )
    return replace(lot, **changes)


def make_line(limit: str = "1000000.00", drawn: str = "0", **changes: Any) -> CreditLine:
    return replace(CreditLine(BANK, cny(limit), cny(drawn)), **changes)


def inspected(disposition: str | None, age: timedelta = timedelta(days=1)) -> Inspection:
    return Inspection(disposition, NOW - age, H_INSPECT)


# ---------------------------------------------------------------------------------------------
# Money and rates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("major", "currency", "minor"),
    [
        pytest.param("1234.56", "CNY", 123456, id="cny"),
        pytest.param("1234.5", "CNY", 123450, id="cny-one-decimal"),
        pytest.param("1.500", "CNY", 150, id="trailing-zeros-ok"),
        pytest.param(Decimal("0.01"), "CNY", 1, id="decimal"),
        pytest.param(12, "CNY", 1200, id="int"),
        pytest.param("-3.20", "usd", -320, id="negative-lowercase-code"),
        pytest.param("1235", "JPY", 1235, id="jpy-no-minor-unit"),
        pytest.param("1.005", "KWD", 1005, id="kwd-three-digits"),
    ],
)
def test_money_of(major: str | Decimal | int, currency: str, minor: int) -> None:
    money = Money.of(major, currency)
    assert money.minor == minor
    assert money.currency == currency.upper()


@pytest.mark.parametrize(
    ("money", "text"),
    [
        pytest.param(Money(123456, "CNY"), "CNY 1,234.56", id="grouping"),
        pytest.param(Money(5, "CNY"), "CNY 0.05", id="cents"),
        pytest.param(Money(-123456789, "CNY"), "CNY -1,234,567.89", id="negative"),
        pytest.param(Money(1235, "JPY"), "JPY 1,235", id="jpy"),
        pytest.param(Money(1005, "KWD"), "KWD 1.005", id="kwd"),
        pytest.param(Money(0, "EUR"), "EUR 0.00", id="zero"),
    ],
)
def test_money_format(money: Money, text: str) -> None:
    assert money.format() == text
    assert str(money) == text


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(lambda: Money.of(FLOAT, "CNY"), TypeError, id="money-of-float"),
        pytest.param(lambda: Money(FLOAT, "CNY"), TypeError, id="money-minor-float"),
        pytest.param(lambda: Money(True, "CNY"), TypeError, id="money-minor-bool"),
        pytest.param(lambda: cny("1") * FLOAT, TypeError, id="money-times-float"),
        pytest.param(lambda: cny("1") * DECIMAL, TypeError, id="money-times-decimal"),
        pytest.param(lambda: Rate.of(FLOAT), TypeError, id="rate-of-float"),
        pytest.param(lambda: Rate(FLOAT), TypeError, id="rate-float-value"),
        pytest.param(
            lambda: cny("1").times_rate(FLOAT, Rounding.DOWN), TypeError, id="times-float-rate"
        ),
        pytest.param(lambda: Money.of("1.005", "CNY"), ValueError, id="too-many-decimals"),
        pytest.param(lambda: Money.of("1.5", "JPY"), ValueError, id="jpy-fraction"),
        pytest.param(lambda: Money.of("abc", "CNY"), ValueError, id="not-a-number"),
        pytest.param(lambda: Money.of("NaN", "CNY"), ValueError, id="nan"),
        pytest.param(lambda: Money.of("Infinity", "CNY"), ValueError, id="infinity"),
        pytest.param(lambda: Money.of("1", "YUAN"), ValueError, id="bad-currency"),
        pytest.param(lambda: Rate.of("1.01"), ValueError, id="rate-above-one"),
        pytest.param(lambda: Rate.of("-0.01"), ValueError, id="rate-negative"),
        pytest.param(lambda: Rate.of("150%"), ValueError, id="rate-percent-above-one"),
        pytest.param(lambda: Rate.of("NaN"), ValueError, id="rate-nan"),
        pytest.param(lambda: Rate.of("0.1234567890123456789"), ValueError, id="rate-too-precise"),
    ],
)
def test_bad_money_and_rates_raise(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: cny("1") + Money.of("1", "USD"), id="add"),
        pytest.param(lambda: cny("1") - Money.of("1", "USD"), id="subtract"),
        pytest.param(lambda: cny("1") < Money.of("1", "USD"), id="less"),
        pytest.param(lambda: cny("1") >= Money.of("1", "USD"), id="greater-equal"),
        pytest.param(lambda: min(cny("1"), Money.of("1", "USD")), id="min"),
        pytest.param(lambda: CreditLine(BANK, cny("1"), Money.of("0", "USD")), id="line"),
        pytest.param(lambda: revalue(make_lot(), POLICY, Money.of("1", "USD")), id="revalue-drawn"),
        pytest.param(
            lambda: decide(Application(Money.of("1", "USD")), make_lot(), POLICY, make_line(), NOW),
            id="decide-request",
        ),
        pytest.param(
            lambda: decide(
                Application(cny("1"), drawn_on_lot=Money.of("1", "USD")),
                make_lot(),
                POLICY,
                make_line(),
                NOW,
            ),
            id="decide-drawn-on-lot",
        ),
    ],
)
def test_currency_mismatch_raises(call: Any) -> None:
    with pytest.raises(CurrencyMismatch, match="CNY") as info:
        call()
    assert isinstance(info.value, ValueError)


def test_money_arithmetic_and_equality() -> None:
    assert cny("1.10") + cny("2.05") == cny("3.15")
    assert cny("1.10") - cny("2.05") == cny("-0.95")
    assert cny("1.10") * 3 == 3 * cny("1.10") == cny("3.30")
    assert -cny("1") == cny("-1")
    assert cny("1") != Money.of("1", "USD")
    assert cny("1") < cny("1.01") <= cny("1.01") < cny("2")
    assert cny("1").amount == Decimal("1.00")
    assert len({cny("1"), Money(100, "CNY")}) == 1
    assert minor_digits("cny") == 2


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("0.70", Decimal("0.7"), id="fraction"),
        pytest.param("70%", Decimal("0.7"), id="percent"),
        pytest.param("0", Decimal(0), id="zero"),
        pytest.param(1, Decimal(1), id="one-int"),
        pytest.param(Decimal("0.15"), Decimal("0.15"), id="decimal"),
    ],
)
def test_rate_of(text: str | int | Decimal, value: Decimal) -> None:
    assert Rate.of(text).value == value
    assert Rate.of(text).complement().value == 1 - value


# ---------------------------------------------------------------------------------------------
# Rounding: down for what is lent or relied on, up for what is owed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "rate_text", "down", "up"),
    [
        pytest.param(101, "0.70", 70, 71, id="0.70x1.01"),
        pytest.param(100, "0.70", 70, 70, id="exact-no-rounding"),
        pytest.param(1, "0.70", 0, 1, id="one-minor-unit"),
        pytest.param(999, "0.85", 849, 850, id="haircut-0.15"),
        pytest.param(-101, "0.70", -71, -70, id="negative-floor-and-ceiling"),
        pytest.param(10**20 + 1, "0.333333333333333333", 33333333333333333300, 33333333333333333301,
                     id="huge-exact"),
    ],
)  # fmt: skip
def test_times_rate_rounds_once(minor: int, rate_text: str, down: int, up: int) -> None:
    money = Money(minor, "CNY")
    assert money.times_rate(rate(rate_text), Rounding.DOWN) == Money(down, "CNY")
    assert money.times_rate(rate(rate_text), Rounding.UP) == Money(up, "CNY")


@pytest.mark.parametrize(
    ("quantity", "price", "category_haircut", "value", "limit"),
    [
        pytest.param(1, "1.01", "0", "1.01", "0.70", id="limit-0.70x1.01-down"),
        pytest.param(3, "0.01", "0.15", "0.02", "0.01", id="value-0.0255-down"),
        pytest.param(1000, "10.00", "0.15", "8500.00", "5950.00", id="haircut-15"),
        pytest.param(7, "3.33", "0.10", "20.97", "14.67", id="20.979-and-14.679"),
        pytest.param(5, "2.00", "1", "0.00", "0.00", id="full-haircut"),
        pytest.param(0, "2.00", "0", "0.00", "0.00", id="no-quantity"),
    ],
)
def test_collateral_value_and_credit_limit_round_down(
    quantity: int, price: str, category_haircut: str, value: str, limit: str
) -> None:
    policy = Policy(haircuts={"frozen_food": rate(category_haircut)})
    lot = make_lot(quantity=quantity, unit_price=cny(price))
    assert collateral_value(lot, policy) == cny(value)
    assert credit_limit(collateral_value(lot, policy), policy) == cny(limit)


def test_haircut_is_per_category_with_default() -> None:
    policy = Policy(haircuts={"frozen_food": rate("0.15")}, default_haircut=rate("0.05"))
    assert policy.haircut("frozen_food") == rate("0.15")
    assert policy.haircut("electronics") == rate("0.05")
    assert Policy().haircut("anything") == rate("0")
    assert collateral_value(make_lot(category="electronics"), policy) == cny("9500.00")


@pytest.mark.parametrize(
    ("amount", "advance"),
    [
        pytest.param("1000.00", "800.00", id="80-percent"),
        pytest.param("12.34", "9.87", id="9.872-down"),
        pytest.param("0.01", "0.00", id="0.008-down"),
        pytest.param("0", "0.00", id="zero"),
    ],
)
def test_receivable_advance_is_80_percent_rounded_down(amount: str, advance: str) -> None:
    assert receivable_advance(cny(amount), POLICY) == cny(advance)


def test_receivable_advance_follows_policy_and_refuses_negative() -> None:
    assert receivable_advance(cny("100"), Policy(receivable_advance_rate=rate("0.9"))) == cny("90")
    with pytest.raises(ValueError, match="negative"):
        receivable_advance(cny("-1"), POLICY)
    with pytest.raises(ValueError, match="negative"):
        credit_limit(cny("-1"), POLICY)


# ---------------------------------------------------------------------------------------------
# Eligibility: each condition alone, then several together
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "failures"),
    [
        pytest.param({}, (), id="eligible"),
        pytest.param({"last_inspection": None}, ("no_inspection",), id="no-inspection"),
        pytest.param(
            {"last_inspection": inspected("non_conformant")},
            ("inspection_not_conformant",),
            id="non-conformant",
        ),
        pytest.param(
            {"last_inspection": inspected("damaged")},
            ("inspection_not_conformant",),
            id="damaged-inspection",
        ),
        pytest.param(
            {"last_inspection": inspected(None)},
            ("inspection_not_conformant",),
            id="inspection-without-disposition",
        ),
        pytest.param(
            {"last_inspection": inspected("urn:epcglobal:cbv:disp:conformant")}, (), id="urn-form"
        ),
        pytest.param(
            {"last_inspection": inspected("https://ref.gs1.org/cbv/Disp-conformant")},
            (),
            id="web-uri-form",
        ),
        pytest.param(
            {"last_inspection": inspected("conformant", timedelta(days=30))},
            ("inspection_stale",),
            id="stale-exactly-at-freshness",
        ),
        pytest.param(
            {"last_inspection": inspected("conformant", timedelta(days=30) - timedelta(seconds=1))},
            (),
            id="fresh-just-younger",
        ),
        pytest.param(
            {"in_supervised_warehouse": False},
            ("not_in_supervised_warehouse",),
            id="not-supervised",
        ),
        pytest.param(
            {"risk_flags": frozenset({"cold_chain_breach"})},
            ("cold_chain_breach",),
            id="cold-chain-flag",
        ),
        pytest.param(
            {"out_of_range_since": NOW - timedelta(minutes=30, seconds=1)},
            ("cold_chain_breach",),
            id="excursion-beyond-tolerance",
        ),
        pytest.param(
            {"out_of_range_since": NOW - timedelta(minutes=30)}, (), id="excursion-at-tolerance"
        ),
        pytest.param({"risk_flags": frozenset({"damaged"})}, ("quality_flag",), id="quality-flag"),
        pytest.param(
            {"risk_flags": frozenset({"unauthorized_movement"})},
            ("unauthorized_movement",),
            id="unauthorized-movement-flag",
        ),
        pytest.param({"risk_flags": frozenset({"custom_hold"})}, ("risk_flag",), id="other-flag"),
        pytest.param({"expiry": date(2025, 5, 31)}, ("expired",), id="expired"),
        pytest.param({"expiry": date(2025, 6, 1)}, (), id="good-through-expiry-date"),
        pytest.param({"recalled": True}, ("recalled",), id="recalled"),
        pytest.param({"sold": True}, ("sold",), id="sold"),
        pytest.param({"quantity": 0}, ("no_quantity",), id="no-quantity"),
        pytest.param(
            {"evidence": ((H_COMMISSION, True), (H_INSPECT, False), (H_RECEIVE, True))},
            ("evidence_pending",),
            id="evidence-pending",
        ),
        pytest.param(
            {"evidence": ((H_COMMISSION, True), (H_RECEIVE, True))},
            ("evidence_pending",),
            id="inspection-evidence-unknown",
        ),
        pytest.param({"pledged_to": "bank-b"}, ("pledged_elsewhere",), id="pledged-elsewhere"),
        pytest.param({"pledged_to": None}, (), id="not-pledged"),
        pytest.param(
            {"recalled": True, "sold": True, "quantity": 0},
            ("recalled", "sold", "no_quantity"),
            id="three-together",
        ),
        pytest.param(
            {
                "last_inspection": inspected("non_conformant", timedelta(days=90)),
                "in_supervised_warehouse": False,
                "risk_flags": frozenset({"cold_chain_breach", "damaged", "x", "recalled"}),
                "expiry": date(2024, 1, 1),
                "recalled": True,
                "sold": True,
                "quantity": 0,
                "evidence": ((H_INSPECT, False),),
                "pledged_to": "bank-b",
            },
            (
                "inspection_not_conformant",
                "inspection_stale",
                "not_in_supervised_warehouse",
                "cold_chain_breach",
                "quality_flag",
                "risk_flag",
                "expired",
                "recalled",
                "sold",
                "no_quantity",
                "evidence_pending",
                "pledged_elsewhere",
            ),
            id="everything-at-once",
        ),
        pytest.param(
            {"last_inspection": None, "evidence": ()},
            ("no_inspection",),
            id="no-inspection-no-evidence",
        ),
    ],
)
def test_eligibility(changes: dict[str, Any], failures: tuple[str, ...]) -> None:
    result = eligibility(make_lot(**changes), POLICY, NOW, BANK)
    assert result.failures == failures
    assert result.eligible is (failures == ())


def test_eligibility_without_applicant_ignores_pledge_and_reports_pending_hashes() -> None:
    lot = make_lot(pledged_to="bank-b", evidence=((H_INSPECT, True), (H_RECEIVE, False)))
    result = eligibility(lot, POLICY, NOW, None)
    assert result.failures == ("evidence_pending",)
    assert result.hard_failures == ()
    assert result.pending_evidence == (H_RECEIVE,)


def test_eligibility_refuses_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        eligibility(make_lot(), POLICY, datetime(2025, 6, 1), BANK)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"quantity": -1}, ValueError, id="negative-quantity"),
        pytest.param({"quantity": 1.5}, TypeError, id="float-quantity"),
        pytest.param({"unit_price": cny("-1")}, ValueError, id="negative-price"),
        pytest.param({"gtin": ""}, ValueError, id="empty-gtin"),
        pytest.param({"evidence": (("", True),)}, ValueError, id="empty-hash"),
        pytest.param({"evidence": ((H_INSPECT, "yes"),)}, TypeError, id="anchored-not-bool"),
        pytest.param(
            {"out_of_range_since": datetime(2025, 1, 1)},
            ValueError,
            id="naive-excursion-start",
        ),
    ],
)
def test_bad_lot_state_raises(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        make_lot(**changes)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"advance_rate": "0.7"}, TypeError, id="rate-as-string"),
        pytest.param({"haircuts": {"x": Decimal("0.1")}}, TypeError, id="haircut-not-rate"),
        pytest.param({"breach_tolerance": timedelta(-1)}, ValueError, id="negative-tolerance"),
        pytest.param({"inspection_freshness": timedelta(0)}, ValueError, id="zero-freshness"),
    ],
)
def test_bad_policy_raises(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Policy(**kwargs)


def test_policy_is_an_immutable_value() -> None:
    haircuts = {"frozen_food": rate("0.1")}
    policy = Policy(haircuts=haircuts)
    haircuts["frozen_food"] = rate("0.9")
    assert policy.haircut("frozen_food") == rate("0.1")
    assert policy == Policy(haircuts={"frozen_food": rate("0.1")})
    assert hash(policy) == hash(Policy(haircuts={"frozen_food": rate("0.1")}))


# ---------------------------------------------------------------------------------------------
# Cold chain excursions from telemetry
# ---------------------------------------------------------------------------------------------


def at(minutes: int) -> datetime:
    return NOW - timedelta(hours=2) + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("temperatures", "expected"),
    [
        pytest.param([(0, -18), (10, -17), (20, -20)], None, id="always-in-range"),
        pytest.param([(0, -18), (10, -12), (40, -18)], None, id="30-min-out-is-tolerated"),
        pytest.param(
            [(0, -18), (10, -12), (41, -18)], Excursion(at(10), at(41)), id="31-min-closed"
        ),
        pytest.param([(0, -18), (100, -10)], None, id="open-20-min-until-now"),
        pytest.param([(0, -18), (80, -10)], Excursion(at(80), None), id="open-40-min-until-now"),
        pytest.param([(50, -30), (0, -30), (20, -18)], Excursion(at(50), None),
                     id="too-cold-20-min-tolerated-then-open-70"),
        pytest.param([(41, -18), (10, -30), (0, -18)], Excursion(at(10), at(41)),
                     id="unordered-too-cold"),
        pytest.param([(0, -15.0), (40, -25.0), (60, -15)], None, id="bounds-inclusive"),
    ],
)  # fmt: skip
def test_cold_chain_excursion(
    temperatures: list[tuple[int, float]], expected: Excursion | None
) -> None:
    readings = [(at(minute), value) for minute, value in temperatures]
    assert cold_chain_excursion(readings, -25, -15, POLICY, NOW) == expected


def test_cold_chain_excursion_open_bounds_and_nan() -> None:
    readings = [(at(0), 50.0), (at(60), 50.0)]
    assert cold_chain_excursion(readings, None, None, POLICY, NOW) is None
    assert cold_chain_excursion(readings, None, Decimal("8"), POLICY, NOW) == Excursion(at(0), None)
    with pytest.raises(ValueError, match="NaN"):
        cold_chain_excursion([(at(0), float("nan"))], -25, -15, POLICY, NOW)
    with pytest.raises(ValueError, match="empty"):
        cold_chain_excursion([], 5, -5, POLICY, NOW)


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------

LEND_80 = Policy(advance_rate=rate("0.80"))  # lends past the 75% cap, so the cap can bind


@pytest.mark.parametrize(
    ("requested", "lot_changes", "line", "policy", "guarantor", "drawn_on_lot", "kind", "amount",
     "reasons"),
    [
        pytest.param("5000.00", {}, make_line(), POLICY, False, "0", "approve", "5000.00",
                     ("within_limits",), id="approve"),
        pytest.param("7000.00", {}, make_line(), POLICY, False, "0", "approve", "7000.00",
                     ("within_limits",), id="approve-exactly-the-limit"),
        # A request above the 75% LTV cap refers even where the 70% advance would cut it:
        # the loan's LTV is judged on what is asked (issue 14).
        pytest.param("8000.00", {}, make_line(), POLICY, False, "0", "refer", "0",
                     ("guarantor_required",), id="request-over-cap-at-default-advance-refers"),
        pytest.param("8000.00", {}, make_line(), POLICY, True, "0", "partial", "7000.00",
                     ("limited_by_collateral", "guarantor_accepted"), id="partial-by-collateral"),
        pytest.param("2400.00", {}, make_line(), POLICY, False, "5000.00", "partial", "2000.00",
                     ("limited_by_collateral",), id="partial-by-collateral-already-drawn"),
        pytest.param("8000.00", {}, make_line(), POLICY, True, "3000.00", "partial", "4000.00",
                     ("limited_by_collateral", "guarantor_accepted"),
                     id="partial-by-collateral-already-drawn-guaranteed"),
        pytest.param("5000.00", {}, make_line("10000.00", "6000.00"), POLICY, False, "0",
                     "partial", "4000.00", ("limited_by_line",), id="partial-by-line"),
        pytest.param("8000.00", {}, make_line("7000.00"), POLICY, True, "0", "partial",
                     "7000.00", ("limited_by_collateral", "limited_by_line", "guarantor_accepted"),
                     id="partial-by-both"),
        pytest.param("100.00", {}, make_line("10000.00", "10000.00"), POLICY, False, "0",
                     "decline", "0", ("no_availability",), id="line-exhausted"),
        pytest.param("100.00", {}, make_line("10000.00", "12000.00"), POLICY, False, "0",
                     "decline", "0", ("no_availability",), id="line-overdrawn"),
        pytest.param("100.00", {}, make_line(), POLICY, False, "7000.00", "decline", "0",
                     ("no_availability",), id="collateral-exhausted"),
        pytest.param("100.00", {"recalled": True}, make_line(), POLICY, False, "0", "decline",
                     "0", ("recalled",), id="decline-ineligible"),
        pytest.param("100.00", {"sold": True, "pledged_to": "bank-b",
                                "evidence": ((H_INSPECT, False),)},
                     make_line(), POLICY, False, "0", "decline", "0",
                     ("sold", "evidence_pending", "pledged_elsewhere"),
                     id="decline-names-every-failure"),
        pytest.param("100.00", {"evidence": ((H_INSPECT, True), (H_RECEIVE, False))},
                     make_line(), POLICY, False, "0", "refer", "0", ("evidence_pending",),
                     id="refer-evidence-pending"),
        pytest.param("100.00", {}, make_line(status=LineStatus.FROZEN), POLICY, False, "0",
                     "decline", "0", ("line_frozen",), id="line-frozen"),
        pytest.param("100.00", {}, make_line(status=LineStatus.CLOSED), POLICY, False, "0",
                     "decline", "0", ("line_closed",), id="line-closed"),
        pytest.param("100.00", {"evidence": ((H_INSPECT, False),)},
                     make_line(status=LineStatus.FROZEN), POLICY, False, "0", "decline", "0",
                     ("evidence_pending", "line_frozen"), id="frozen-beats-pending"),
        pytest.param("100.00", {"quantity": 0}, make_line(status=LineStatus.CLOSED), POLICY,
                     False, "0", "decline", "0", ("no_quantity", "line_closed"),
                     id="ineligible-and-closed"),
        # LTV boundary: value CNY 10 000.00, cap 75%
        pytest.param("7500.00", {}, make_line(), LEND_80, False, "0", "approve", "7500.00",
                     ("within_limits",), id="ltv-exactly-75-approves"),
        pytest.param("7501.00", {}, make_line(), LEND_80, False, "0", "refer", "0",
                     ("guarantor_required",), id="ltv-75.01-refers"),
        pytest.param("7500.01", {}, make_line(), LEND_80, False, "0", "refer", "0",
                     ("guarantor_required",), id="ltv-one-cent-over-refers"),
        pytest.param("7501.00", {}, make_line(), LEND_80, True, "0", "approve", "7501.00",
                     ("within_limits", "guarantor_accepted"), id="ltv-75.01-with-guarantor"),
        pytest.param("6500.00", {}, make_line(), LEND_80, False, "1000.00", "approve",
                     "6500.00", ("within_limits",), id="ltv-75-with-prior-drawing"),
        pytest.param("6500.01", {}, make_line(), LEND_80, False, "1000.00", "refer", "0",
                     ("guarantor_required",), id="ltv-over-with-prior-drawing"),
        pytest.param("9000.00", {}, make_line(), LEND_80, False, "0", "refer", "0",
                     ("guarantor_required",), id="partial-over-cap-refers"),
        pytest.param("9000.00", {}, make_line(), LEND_80, True, "0", "partial", "8000.00",
                     ("limited_by_collateral", "guarantor_accepted"),
                     id="partial-over-cap-with-guarantor"),
    ],
)  # fmt: skip
def test_decide(
    requested: str,
    lot_changes: dict[str, Any],
    line: CreditLine,
    policy: Policy,
    guarantor: bool,
    drawn_on_lot: str,
    kind: str,
    amount: str,
    reasons: tuple[str, ...],
) -> None:
    application = Application(cny(requested), guarantor=guarantor, drawn_on_lot=cny(drawn_on_lot))
    decision = decide(application, make_lot(**lot_changes), policy, line, NOW)
    assert (decision.kind, decision.approved_amount, decision.reasons) == (
        kind,
        cny(amount),
        reasons,
    )
    assert decision.kind in DecisionKind


def test_decision_carries_evidence_values_and_ltv() -> None:
    decision = decide(Application(cny("7500.00")), make_lot(), LEND_80, make_line(), NOW)
    assert decision.kind is DecisionKind.APPROVE
    assert decision.evidence == (H_COMMISSION, H_INSPECT, H_RECEIVE)
    assert decision.collateral_value == cny("10000.00")
    assert decision.credit_limit == cny("8000.00")
    assert decision.available == cny("8000.00")
    assert decision.ltv == Decimal("0.75")

    refer = decide(Application(cny("7500.01")), make_lot(), LEND_80, make_line(), NOW)
    assert refer.ltv == Decimal("0.750001")
    assert refer.evidence == (H_COMMISSION, H_INSPECT, H_RECEIVE)


def test_decision_evidence_includes_inspection_missing_from_evidence() -> None:
    lot = make_lot(evidence=((H_RECEIVE, False), (H_RECEIVE, True)))
    decision = decide(Application(cny("1")), lot, POLICY, make_line(), NOW)
    assert decision.kind is DecisionKind.REFER
    assert decision.evidence == (H_RECEIVE, H_INSPECT)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(lambda: Application(cny("0")), ValueError, id="zero-request"),
        pytest.param(lambda: Application(cny("-5")), ValueError, id="negative-request"),
        pytest.param(
            lambda: Application(cny("5"), drawn_on_lot=cny("-1")), ValueError, id="negative-drawn"
        ),
        pytest.param(lambda: make_line(limit="-1"), ValueError, id="negative-limit"),
        pytest.param(lambda: make_line(status="paused"), ValueError, id="unknown-status"),
        pytest.param(lambda: make_line(financier=""), ValueError, id="empty-financier"),
    ],
)
def test_bad_application_or_line_raises(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


def test_line_status_accepts_its_string_and_available_never_negative() -> None:
    line = make_line("100", "150", status="frozen")
    assert line.status is LineStatus.FROZEN
    assert line.available == cny("0")
    assert make_line("100", "40").available == cny("60")


# ---------------------------------------------------------------------------------------------
# Revaluation and margin calls
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lot_changes", "drawn", "value", "limit", "margin_call", "impairments"),
    [
        pytest.param({}, "6000.00", "10000.00", "7000.00", "0.00", (), id="healthy"),
        pytest.param({}, "7000.00", "10000.00", "7000.00", "0.00", (), id="drawn-at-limit"),
        pytest.param(
            {"last_inspection": inspected("non_conformant")},
            "6000.00",
            "0.00",
            "0.00",
            "6000.00",
            ("inspection_not_conformant",),
            id="failed-inspection-margin-call",
        ),
        pytest.param(
            {"risk_flags": frozenset({"cold_chain_breach"})},
            "100.00",
            "0.00",
            "0.00",
            "100.00",
            ("cold_chain_breach",),
            id="cold-chain-breach",
        ),
        pytest.param(
            {"recalled": True, "risk_flags": frozenset({"damaged"})},
            "1.00",
            "0.00",
            "0.00",
            "1.00",
            ("quality_flag", "recalled"),
            id="recall-and-damage",
        ),
        pytest.param(
            {"quantity": 500}, "4000.00", "5000.00", "3500.00", "500.00", (), id="quantity-halved"
        ),
        pytest.param(
            {"quantity": 1, "unit_price": cny("1.01")},
            "1.00",
            "1.01",
            "0.70",
            "0.30",
            (),
            id="shortfall-0.293-rounds-up",
        ),
        pytest.param(
            {"in_supervised_warehouse": False, "risk_flags": frozenset({"unauthorized_movement"})},
            "6000.00",
            "10000.00",
            "7000.00",
            "0.00",
            (),
            id="movement-freezes-not-revalues",
        ),
        pytest.param(
            {"evidence": ((H_INSPECT, False),), "pledged_to": "bank-b"},
            "6000.00",
            "10000.00",
            "7000.00",
            "0.00",
            (),
            id="pending-evidence-does-not-impair",
        ),
    ],
)
def test_revalue(
    lot_changes: dict[str, Any],
    drawn: str,
    value: str,
    limit: str,
    margin_call: str,
    impairments: tuple[str, ...],
) -> None:
    result = revalue(make_lot(**lot_changes), POLICY, cny(drawn), now=NOW)
    assert (result.value, result.limit, result.margin_call, result.impairments) == (
        cny(value),
        cny(limit),
        cny(margin_call),
        impairments,
    )
    assert result.drawn == cny(drawn)
    assert result.margin_call_due is (cny(margin_call) > cny("0"))


def test_revalue_judges_time_only_when_given_now() -> None:
    lot = make_lot(expiry=date(2025, 5, 1), out_of_range_since=NOW - timedelta(hours=1))
    assert revalue(lot, POLICY, cny("100")).margin_call == cny("0")
    timed = revalue(lot, POLICY, cny("100"), now=NOW)
    assert timed.impairments == ("cold_chain_breach", "expired")
    assert timed.margin_call == cny("100")


def test_revalue_refuses_negative_drawn() -> None:
    with pytest.raises(ValueError, match="negative"):
        revalue(make_lot(), POLICY, cny("-0.01"))


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

minor_amounts = st.integers(min_value=0, max_value=10**12)
rates = st.decimals(min_value=0, max_value=1, places=4).map(Rate)


@given(minor=st.integers(min_value=-(10**15), max_value=10**15), r=rates)
def test_rounding_brackets_the_exact_product(minor: int, r: Rate) -> None:
    exact = Decimal(minor) * r.value
    down = Money(minor, "CNY").times_rate(r, Rounding.DOWN).minor
    up = Money(minor, "CNY").times_rate(r, Rounding.UP).minor
    assert down <= exact <= up
    assert up - down == (0 if exact == exact.to_integral_value() else 1)


@settings(max_examples=examples(400), deadline=None)
@given(
    quantity=st.integers(min_value=0, max_value=10**6),
    price=st.integers(min_value=0, max_value=10**7),
    haircut=rates,
    advance=rates,
    cap=rates,
    line_limit=minor_amounts,
    line_drawn=minor_amounts,
    drawn_on_lot=minor_amounts,
    requested=st.integers(min_value=1, max_value=10**13),
    guarantor=st.booleans(),
    status=st.sampled_from(list(LineStatus)),
    pending=st.booleans(),
)
def test_approved_amount_never_exceeds_any_limit(
    quantity: int,
    price: int,
    haircut: Rate,
    advance: Rate,
    cap: Rate,
    line_limit: int,
    line_drawn: int,
    drawn_on_lot: int,
    requested: int,
    guarantor: bool,
    status: LineStatus,
    pending: bool,
) -> None:
    policy = Policy(advance_rate=advance, ltv_cap=cap, haircuts={"frozen_food": haircut})
    lot = make_lot(
        quantity=quantity,
        unit_price=Money(price, "CNY"),
        evidence=((H_INSPECT, not pending),),
    )
    line = CreditLine(BANK, Money(line_limit, "CNY"), Money(line_drawn, "CNY"), status)
    application = Application(
        Money(requested, "CNY"), guarantor=guarantor, drawn_on_lot=Money(drawn_on_lot, "CNY")
    )
    decision = decide(application, lot, policy, line, NOW)
    approved = decision.approved_amount
    value = collateral_value(lot, policy)
    zero = Money.zero("CNY")

    assert approved >= zero
    assert approved <= application.requested
    assert approved <= credit_limit(value, policy)
    assert approved + Money(drawn_on_lot, "CNY") <= credit_limit(value, policy) or approved == zero
    assert approved <= line.limit - line.drawn or approved == zero
    if approved > zero:
        assert eligibility(lot, policy, NOW, BANK).eligible
        assert status is LineStatus.ACTIVE
        if not guarantor:
            assert (approved.minor + drawn_on_lot) <= cap.value * value.minor
    expected_positive = decision.kind in (DecisionKind.APPROVE, DecisionKind.PARTIAL)
    assert (approved > zero) is expected_positive
    if decision.kind is DecisionKind.APPROVE:
        assert approved == application.requested
    if decision.kind is DecisionKind.PARTIAL:
        assert approved < application.requested
    assert set(decision.reasons) <= set(Reason)


@given(
    changes=st.fixed_dictionaries(
        {},
        optional={
            "in_supervised_warehouse": st.booleans(),
            "recalled": st.booleans(),
            "sold": st.booleans(),
            "quantity": st.integers(min_value=0, max_value=3),
            "pledged_to": st.sampled_from([None, BANK, "bank-b"]),
            "risk_flags": st.frozensets(st.sampled_from(["cold_chain_breach", "damaged", "zz"])),
            "expiry": st.dates(min_value=date(2025, 5, 1), max_value=date(2025, 7, 1)),
        },
    )
)
def test_eligibility_failures_are_canonical(changes: dict[str, Any]) -> None:
    result = eligibility(make_lot(**changes), POLICY, NOW, BANK)
    order = [ELIGIBILITY_CODES.index(code) for code in result.failures]
    assert order == sorted(set(order))
    assert result.eligible is (not result.failures)
    assert result == eligibility(make_lot(**changes), POLICY, NOW, BANK)
