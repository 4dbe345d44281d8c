"""Amounts enter only in ISO 4217 currencies that circulate, each with its own minor unit."""

from __future__ import annotations

import re

import pytest

from finance.currencies import ISO_4217_MINOR_UNITS
from finance.money import Money, minor_digits

# Metals, units of account, the test code, "no currency", fund codes, withdrawn codes, junk.
NOT_MONEY = [
    "ZZZ",
    "XAU",
    "XAG",
    "XPT",
    "XPD",
    "XDR",
    "XSU",
    "XUA",
    "XBA",
    "XBD",
    "XTS",
    "XXX",
    "CLF",
    "USN",
    "HRK",
    "ANG",
    "ABC",
]


@pytest.mark.parametrize("code", NOT_MONEY)
def test_an_amount_in_what_is_not_a_circulating_currency_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money.of("1", code)
    with pytest.raises(ValueError, match="ISO 4217"):
        Money.of("1", code.lower())


@pytest.mark.parametrize(
    ("code", "major", "minor"),
    [
        ("EUR", "12.34", 1234),
        ("CNY", "12.34", 1234),
        ("USD", "0.01", 1),
        ("JPY", "1234", 1234),
        ("KRW", "1234", 1234),
        ("KWD", "1.234", 1234),
        ("XOF", "500", 500),  # the West African CFA franc circulates: in, with no minor unit
        ("XAF", "500", 500),
        ("XPF", "500", 500),
        ("XCD", "2.70", 270),
    ],
)
def test_circulating_currencies_are_accepted_with_their_minor_units(
    code: str, major: str, minor: int
) -> None:
    assert Money.of(major, code) == Money(minor, code)
    assert Money.of(major, code).format().replace(",", "") == f"{code} {major}"


def test_the_table_is_iso_codes_with_iso_minor_units() -> None:
    assert len(ISO_4217_MINOR_UNITS) > 150
    for code, digits in ISO_4217_MINOR_UNITS.items():
        assert re.fullmatch("[A-Z]{3}", code), code
        assert digits in (0, 2, 3), code
    # The only X-codes in are money people hold; no metal, unit of account or test code.
    assert {c for c in ISO_4217_MINOR_UNITS if c.startswith("X")} == {
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
    }
    assert [c for c in ISO_4217_MINOR_UNITS if ISO_4217_MINOR_UNITS[c] == 3] == [
        "BHD",
        "IQD",
        "JOD",
        "KWD",
        "LYD",
        "OMR",
        "TND",
    ]


def test_an_amount_stored_before_in_a_code_now_refused_is_still_read() -> None:
    """Before issue 17 any three letters entered: stored rows stay readable, as written."""
    assert Money(1234, "ZZZ").format() == "ZZZ 12.34"
    assert minor_digits("CLF") == 4
