"""Money as integer minor units of one ISO 4217 currency, rates as exact decimals; never float.

The one rounding rule, used everywhere in finance:

* an amount the bank would **lend or rely on** (a collateral value, a credit limit, an advance) is
  rounded **down** to the minor unit (`Rounding.DOWN`, i.e. `ROUND_FLOOR`) — the bank never
  relies on a fraction of a cent it does not have;
* an amount **owed to the bank** (a margin-call shortfall) is rounded **up** (`Rounding.UP`,
  i.e. `ROUND_CEILING`) — the shortfall is never understated.

Every product is computed exactly first and rounded once, at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import Enum
from typing import Final

from finance.currencies import ISO_4217_MINOR_UNITS, is_iso_currency

__all__ = [
    "CurrencyMismatch",
    "Money",
    "Rate",
    "Rounding",
    "minor_digits",
]

# Bounds on amounts as they enter (issue 14, robustness): storage holds minor units in bigint
# (up to about 9.2e18). One amount (a limit, an application, a repayment) is at most 10^15
# minor units, so sums of many stay far inside it; a unit price at most 10^9 minor units, so
# that any lot a stored quantity can count (up to 2^31 - 1 items) is worth less than 2.2e18.
MAX_AMOUNT_MINOR: Final = 10**15
MAX_UNIT_PRICE_MINOR: Final = 10**9

# Amounts enter only in the currencies of `ISO_4217_MINOR_UNITS` (`Money.of`). Before issue 17
# any three letters did, so a stored amount may carry another code: it is still read, with the
# digits it was written with (2, but these three fund codes).
_UNLISTED_MINOR_UNITS: Final[dict[str, int]] = {"CLF": 4, "UYI": 0, "UYW": 4}

_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)

# Wide enough that every product of an amount and a rate is exact (rates have at most
# _RATE_PLACES decimals); Inexact is still trapped so nothing is ever rounded silently.
_EXACT: Final = Context(prec=1000, traps=[InvalidOperation, Inexact, Overflow])
_RATE_PLACES: Final = 18


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined or compared."""


class Rounding(Enum):
    """How an exact amount becomes whole minor units (see the module docstring)."""

    DOWN = ROUND_FLOOR
    """For amounts lent or relied on: collateral values, credit limits, advances."""
    UP = ROUND_CEILING
    """For amounts owed: margin-call shortfalls."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _currency(code: object) -> str:
    if not isinstance(code, str):
        raise TypeError(f"currency must be an ISO 4217 code string, not {type(code).__name__}")
    upper = code.strip().upper()
    if not _CURRENCY.fullmatch(upper):
        raise ValueError(f"currency must be a three-letter ISO 4217 code, got {code!r}")
    return upper


def minor_digits(currency: str) -> int:
    """Number of decimal digits of the currency's minor unit (CNY 2, JPY 0, KWD 3)."""
    code = _currency(currency)
    return ISO_4217_MINOR_UNITS.get(code, _UNLISTED_MINOR_UNITS.get(code, 2))


def _accepted_currency(code: object) -> str:
    """`code` as an amount may enter in: an ISO 4217 currency of the table, else ValueError."""
    upper = _currency(code)
    if not is_iso_currency(upper):
        raise ValueError(
            f"{upper} is not an ISO 4217 currency tracefin accepts"
            " (no metals, units of account, funds or test codes)"
        )
    return upper


def _decimal(value: object, what: str) -> Decimal:
    """An exact, finite Decimal from str / Decimal / int; float and bool are refused."""
    if isinstance(value, (bool, float)):
        raise TypeError(
            f"{what} must be a str, Decimal or int, not {type(value).__name__} "
            "(floats cannot represent money or rates exactly)"
        )
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what} is not a number: {_shown(value)}") from None
    else:
        raise TypeError(f"{what} must be a str, Decimal or int, not {type(value).__name__}")
    if not number.is_finite():
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


def _to_minor(exact: Decimal, rounding: Rounding) -> int:
    if not isinstance(rounding, Rounding):
        raise TypeError(f"rounding must be Rounding.DOWN or Rounding.UP, not {rounding!r}")
    # to_integral_value neither signals Inexact nor depends on the context's precision.
    return int(exact.to_integral_value(rounding=rounding.value))


@dataclass(frozen=True, slots=True, order=True)
class Rate:
    """A fraction in [0, 1] held as an exact Decimal: an advance rate, a haircut, an LTV cap."""

    value: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.value, Decimal):
            raise TypeError(
                f"Rate.value must be a Decimal, not {type(self.value).__name__}; "
                "use Rate.of('0.70')"
            )
        if not self.value.is_finite() or not Decimal(0) <= self.value <= Decimal(1):
            raise ValueError(f"a rate must be between 0 and 1 inclusive, got {self.value}")
        if self.value != self.value.quantize(Decimal(1).scaleb(-_RATE_PLACES)):
            raise ValueError(f"a rate may have at most {_RATE_PLACES} decimals, got {self.value}")

    @classmethod
    def of(cls, value: str | Decimal | int) -> Rate:
        """Parse `"0.70"`, `"70%"`, `Decimal("0.7")`, `0` or `1`; floats raise TypeError."""
        if isinstance(value, str) and value.strip().endswith("%"):
            percent = _decimal(value.strip()[:-1], "rate")
            with localcontext(_EXACT):
                return cls(percent / 100)
        return cls(_decimal(value, "rate"))

    def complement(self) -> Rate:
        """1 - this rate (e.g. the share of value kept after a haircut)."""
        with localcontext(_EXACT):
            return Rate(Decimal(1) - self.value)

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount as integer minor units of one currency (CNY 12.34 is `Money(1234, "CNY")`).

    Addition, subtraction and ordering need the same currency and raise `CurrencyMismatch`
    (a ValueError) otherwise; `==` between currencies is simply False. Multiplying by an int is
    exact; by a rate, use `times_rate` and say how to round.
    """

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError(
                f"Money.minor must be an int of minor units, not {type(self.minor).__name__}; "
                "use Money.of('12.34', 'CNY') for major units"
            )
        object.__setattr__(self, "currency", _currency(self.currency))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def of(cls, major: str | Decimal | int, currency: str) -> Money:
        """`Money.of("1234.56", "CNY")`; more decimals than the currency has, or a code that is
        not an ISO 4217 currency (`ISO_4217_MINOR_UNITS`: no XAU, XTS, ZZZ), raise ValueError."""
        code = _accepted_currency(currency)
        amount = _decimal(major, "amount")
        try:
            with localcontext(_EXACT):
                minor = amount.scaleb(minor_digits(code))
        except ArithmeticError:
            raise ValueError(f"amount {_shown(major)} is out of range") from None
        if minor != minor.to_integral_value():
            raise ValueError(
                f"{_shown(major)} has more decimal places than {code} allows "
                f"({minor_digits(code)}); round it explicitly first"
            )
        return cls(int(minor), code)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    # -- views --------------------------------------------------------------------------------

    @property
    def amount(self) -> Decimal:
        """The amount in major units, exact (`Decimal("1234.56")`)."""
        return Decimal(self.minor).scaleb(-minor_digits(self.currency))

    def is_zero(self) -> bool:
        return self.minor == 0

    def is_positive(self) -> bool:
        return self.minor > 0

    def is_negative(self) -> bool:
        return self.minor < 0

    def format(self) -> str:
        """`"CNY 1,234.56"`, `"JPY 1,235"`, `"CNY -0.05"`."""
        digits = minor_digits(self.currency)
        return f"{self.currency} {self.amount:,.{digits}f}"

    def __str__(self) -> str:
        return self.format()

    # -- arithmetic ---------------------------------------------------------------------------

    def _same(self, other: object, op: str) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {op} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot {op} {self.currency} and {other.currency} amounts "
                f"({self.format()} vs {other.format()})"
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.minor + self._same(other, "add").minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.minor - self._same(other, "subtract").minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise TypeError(
                f"Money can only be multiplied by an int, not {type(factor).__name__}; "
                "use times_rate(rate, rounding) for fractions"
            )
        return Money(self.minor * factor, self.currency)

    __rmul__ = __mul__

    def times_rate(self, rate: Rate, rounding: Rounding) -> Money:
        """This amount * `rate`, computed exactly and rounded once to the minor unit."""
        if not isinstance(rate, Rate):
            raise TypeError(f"rate must be a Rate, not {type(rate).__name__}; use Rate.of('0.70')")
        with localcontext(_EXACT):
            exact = Decimal(self.minor) * rate.value
        return Money(_to_minor(exact, rounding), self.currency)

    # -- ordering (same currency only) --------------------------------------------------------

    def __lt__(self, other: Money) -> bool:
        return self.minor < self._same(other, "compare").minor

    def __le__(self, other: Money) -> bool:
        return self.minor <= self._same(other, "compare").minor

    def __gt__(self, other: Money) -> bool:
        return self.minor > self._same(other, "compare").minor

    def __ge__(self, other: Money) -> bool:
        return self.minor >= self._same(other, "compare").minor
