"""Pure supply-chain-finance rules: eligibility, collateral value, limits, decisions, margin calls.

Everything here is deterministic and side-effect free (no I/O, clock, database or chain): the
caller passes the lot's state, the financier's policy, the credit line and `now`. Money follows
the rounding rule of `finance.money`: what the bank lends or relies on is rounded down, what is
owed to it is rounded up. Bad inputs raise ValueError (CurrencyMismatch is one) with a message
naming the offending value; wrong types raise TypeError.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Final, NamedTuple

from finance.money import CurrencyMismatch, Money, Rate, Rounding

__all__ = [
    "DEFAULT_ADVANCE_RATE",
    "DEFAULT_BREACH_TOLERANCE",
    "DEFAULT_CURE_PERIOD",
    "DEFAULT_HAIRCUT",
    "DEFAULT_INSPECTION_FRESHNESS",
    "DEFAULT_LTV_CAP",
    "DEFAULT_OFFER_VALIDITY",
    "DEFAULT_RECEIVABLE_ADVANCE_RATE",
    "ELIGIBILITY_CODES",
    "IMPAIRING_CODES",
    "Application",
    "CreditLine",
    "Decision",
    "DecisionKind",
    "Eligibility",
    "Evidence",
    "Excursion",
    "Inspection",
    "LineStatus",
    "LotState",
    "Minute",
    "Policy",
    "Reason",
    "Revaluation",
    "cold_chain_excursion",
    "collateral_value",
    "credit_limit",
    "decide",
    "eligibility",
    "minute_readings",
    "receivable_advance",
    "revalue",
]


# ---------------------------------------------------------------------------------------------
# Stable codes
# ---------------------------------------------------------------------------------------------


class Reason(StrEnum):
    """Stable machine-readable codes for failed conditions and decision reasons."""

    # eligibility of a lot, in the order they are reported
    NO_INSPECTION = "no_inspection"
    INSPECTION_NOT_CONFORMANT = "inspection_not_conformant"
    INSPECTION_STALE = "inspection_stale"
    NOT_IN_SUPERVISED_WAREHOUSE = "not_in_supervised_warehouse"
    COLD_CHAIN_BREACH = "cold_chain_breach"
    QUALITY_FLAG = "quality_flag"
    UNAUTHORIZED_MOVEMENT = "unauthorized_movement"
    RISK_FLAG = "risk_flag"
    EXPIRED = "expired"
    RECALLED = "recalled"
    SOLD = "sold"
    NO_QUANTITY = "no_quantity"
    NO_PRICE = "no_price"  # the financier has no price for the product (in the line's currency)
    EVIDENCE_PENDING = "evidence_pending"
    PLEDGED_ELSEWHERE = "pledged_elsewhere"
    # the credit line
    LINE_FROZEN = "line_frozen"
    LINE_CLOSED = "line_closed"
    # amounts
    NO_AVAILABILITY = "no_availability"
    LIMITED_BY_COLLATERAL = "limited_by_collateral"
    LIMITED_BY_LINE = "limited_by_line"
    GUARANTOR_REQUIRED = "guarantor_required"
    GUARANTOR_ACCEPTED = "guarantor_accepted"
    WITHIN_LIMITS = "within_limits"


ELIGIBILITY_CODES: Final[tuple[Reason, ...]] = (
    Reason.NO_INSPECTION,
    Reason.INSPECTION_NOT_CONFORMANT,
    Reason.INSPECTION_STALE,
    Reason.NOT_IN_SUPERVISED_WAREHOUSE,
    Reason.COLD_CHAIN_BREACH,
    Reason.QUALITY_FLAG,
    Reason.UNAUTHORIZED_MOVEMENT,
    Reason.RISK_FLAG,
    Reason.EXPIRED,
    Reason.RECALLED,
    Reason.SOLD,
    Reason.NO_QUANTITY,
    Reason.NO_PRICE,
    Reason.EVIDENCE_PENDING,
    Reason.PLEDGED_ELSEWHERE,
)
"""Every eligibility failure code, in the order `eligibility` reports them."""

IMPAIRING_CODES: Final[frozenset[Reason]] = frozenset(
    {
        Reason.INSPECTION_NOT_CONFORMANT,
        Reason.COLD_CHAIN_BREACH,
        Reason.QUALITY_FLAG,
        Reason.EXPIRED,
        Reason.RECALLED,
        Reason.SOLD,
    }
)
"""Failures that make the goods worthless as collateral: `revalue` values such a lot at zero."""

# How an open risk flag on a lot (a code raised by the monitoring worker) is reported. Any flag
# not listed here still blocks eligibility, reported as `risk_flag`.
_FLAG_REASONS: Final[Mapping[str, Reason]] = MappingProxyType(
    {
        "cold_chain_breach": Reason.COLD_CHAIN_BREACH,
        "quality_flag": Reason.QUALITY_FLAG,
        "non_conformant": Reason.QUALITY_FLAG,
        "damaged": Reason.QUALITY_FLAG,
        "unauthorized_movement": Reason.UNAUTHORIZED_MOVEMENT,
        "expired": Reason.EXPIRED,
        "recalled": Reason.RECALLED,
        "recall": Reason.RECALLED,
        "sold": Reason.SOLD,
    }
)

_CONFORMANT: Final = "conformant"
# CBV 2.0 forms of a disposition word besides the bare word tracefin stores.
_DISPOSITION_PREFIXES: Final = (
    "https://ref.gs1.org/cbv/Disp-",
    "urn:epcglobal:cbv:disp:",
    "cbv:Disp-",
)


class DecisionKind(StrEnum):
    APPROVE = "approve"
    PARTIAL = "partial"
    DECLINE = "decline"
    REFER = "refer"


class LineStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------

# The one place policy defaults are written: a financier's stored policy, the CLI and a lender
# without any policy all fall back on these.
DEFAULT_ADVANCE_RATE: Final = Rate.of("0.70")
DEFAULT_HAIRCUT: Final = Rate.of(0)
DEFAULT_LTV_CAP: Final = Rate.of("0.75")
DEFAULT_RECEIVABLE_ADVANCE_RATE: Final = Rate.of("0.80")
DEFAULT_BREACH_TOLERANCE: Final = timedelta(minutes=30)
DEFAULT_INSPECTION_FRESHNESS: Final = timedelta(days=30)
DEFAULT_CURE_PERIOD: Final = timedelta(days=3)
DEFAULT_OFFER_VALIDITY: Final = timedelta(days=1)


def _require_rate(value: object, name: str) -> None:
    if not isinstance(value, Rate):
        raise TypeError(f"{name} must be a Rate (Rate.of('0.70')), not {type(value).__name__}")


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


@dataclass(frozen=True, slots=True)
class Policy:
    """A financier's lending policy (data, per financier; haircuts per product category).

    * `advance_rate`: share of collateral value lent (credit limit = value * advance rate).
    * `haircuts`: product category → haircut; categories not listed get `default_haircut`.
    * `ltv_cap`: above this loan-to-value a guarantor is required (decision `refer`); exactly
      at the cap is allowed.
    * `breach_tolerance`: telemetry may stay out of range this long; longer is a breach.
    * `inspection_freshness`: the last conformant inspection must be younger than this.
    * `receivable_advance_rate`: share of a confirmed receivable that is advanced.
    * `cure_period`: how long a borrower has to cure a margin call before it is escalated.
    * `offer_validity`: how long an offer (an approval) stands for the borrower to accept.
    """

    advance_rate: Rate = DEFAULT_ADVANCE_RATE
    haircuts: Mapping[str, Rate] = field(default_factory=dict, hash=False)
    ltv_cap: Rate = DEFAULT_LTV_CAP
    breach_tolerance: timedelta = DEFAULT_BREACH_TOLERANCE
    inspection_freshness: timedelta = DEFAULT_INSPECTION_FRESHNESS
    receivable_advance_rate: Rate = DEFAULT_RECEIVABLE_ADVANCE_RATE
    default_haircut: Rate = DEFAULT_HAIRCUT
    cure_period: timedelta = DEFAULT_CURE_PERIOD
    offer_validity: timedelta = DEFAULT_OFFER_VALIDITY

    def __post_init__(self) -> None:
        for name in ("advance_rate", "ltv_cap", "receivable_advance_rate", "default_haircut"):
            _require_rate(getattr(self, name), name)
        if not isinstance(self.haircuts, Mapping):
            raise TypeError(f"haircuts must be a mapping, not {type(self.haircuts).__name__}")
        for category, haircut in self.haircuts.items():
            if not isinstance(category, str) or not category:
                raise ValueError(f"haircut category must be a non-empty string, got {category!r}")
            _require_rate(haircut, f"haircut for {category!r}")
        # A private read-only copy: a policy is a value and must not change under a decision.
        object.__setattr__(self, "haircuts", MappingProxyType(dict(self.haircuts)))
        for name in ("breach_tolerance", "inspection_freshness", "cure_period", "offer_validity"):
            value = getattr(self, name)
            if not isinstance(value, timedelta):
                raise TypeError(f"{name} must be a timedelta, not {type(value).__name__}")
        if self.breach_tolerance < timedelta(0):
            raise ValueError(f"breach_tolerance must not be negative, got {self.breach_tolerance}")
        if self.cure_period <= timedelta(0):
            raise ValueError(f"cure_period must be positive, got {self.cure_period}")
        if self.offer_validity <= timedelta(0):
            raise ValueError(f"offer_validity must be positive, got {self.offer_validity}")
        if self.inspection_freshness <= timedelta(0):
            raise ValueError(
                f"inspection_freshness must be positive, got {self.inspection_freshness}"
            )

    def haircut(self, category: str) -> Rate:
        """The haircut applied to goods of `category`."""
        return self.haircuts.get(category, self.default_haircut)


# ---------------------------------------------------------------------------------------------
# Lot state
# ---------------------------------------------------------------------------------------------


class Evidence(NamedTuple):
    """An event a lot's state rests on, and whether its hash is anchored on chain yet."""

    event_hash: str
    anchored: bool


@dataclass(frozen=True, slots=True)
class Inspection:
    """The lot's last quality inspection: its disposition (CBV word or URI), time and event."""

    disposition: str | None
    time: datetime
    event_hash: str

    def __post_init__(self) -> None:
        _require_aware(self.time, "inspection time")
        if not isinstance(self.event_hash, str) or not self.event_hash:
            raise ValueError("inspection event_hash must be a non-empty string")

    @property
    def conformant(self) -> bool:
        disposition = self.disposition
        if disposition is None:
            return False
        for prefix in _DISPOSITION_PREFIXES:
            if disposition.startswith(prefix):
                disposition = disposition[len(prefix) :]
                break
        return disposition == _CONFORMANT


@dataclass(frozen=True, slots=True)
class LotState:
    """What the event log says about one lot (GTIN + lot number), as the rules need it.

    Not the stored lot row (`finance.tracking.LotRecord`): this is the pure rules' input,
    assembled for one financier's viewpoint from the row, its product (category), the
    financier's price for it (`priced`: whether it has one), open
    flags, the live pledge, supervision and the evidence's anchoring; it holds no ids of rows.

    `evidence` lists every event the state rests on with its anchoring status; the last
    inspection's event counts as evidence too and, if missing from `evidence`, as not yet
    anchored. `risk_flags` are the open flag codes (e.g. `cold_chain_breach`, `damaged`,
    `unauthorized_movement`); `out_of_range_since` is the start of an ongoing telemetry
    excursion outside the product's allowed range, if any (a breach once it lasts longer than
    the policy's tolerance).
    """

    gtin: str
    lot: str
    category: str
    quantity: int
    unit_price: Money
    location: str | None = None
    in_supervised_warehouse: bool = False
    last_inspection: Inspection | None = None
    risk_flags: frozenset[str] = frozenset()
    expiry: date | None = None
    recalled: bool = False
    sold: bool = False
    pledged_to: str | None = None
    evidence: tuple[tuple[str, bool], ...] = ()
    out_of_range_since: datetime | None = None
    # Whether `unit_price` is the financier's own (its price list); a lot it has not priced is
    # worth nothing to it, whatever the borrower registered.
    priced: bool = True

    def __post_init__(self) -> None:
        for name in ("gtin", "lot", "category"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"lot {name} must be a non-empty string, got {value!r}")
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise TypeError(f"quantity must be an int, not {type(self.quantity).__name__}")
        if self.quantity < 0:
            raise ValueError(f"quantity must not be negative, got {self.quantity}")
        if not isinstance(self.unit_price, Money):
            raise TypeError(f"unit_price must be Money, not {type(self.unit_price).__name__}")
        if self.unit_price.is_negative():
            raise ValueError(f"unit_price must not be negative, got {self.unit_price}")
        if self.last_inspection is not None and not isinstance(self.last_inspection, Inspection):
            raise TypeError("last_inspection must be an Inspection or None")
        if self.expiry is not None and (
            isinstance(self.expiry, datetime) or not isinstance(self.expiry, date)
        ):
            raise TypeError(f"expiry must be a date or None, not {type(self.expiry).__name__}")
        if self.out_of_range_since is not None:
            _require_aware(self.out_of_range_since, "out_of_range_since")
        object.__setattr__(self, "risk_flags", frozenset(self.risk_flags))
        evidence = []
        for item in self.evidence:
            event_hash, anchored = item
            if not isinstance(event_hash, str) or not event_hash:
                raise ValueError(f"evidence event_hash must be a non-empty string, got {item!r}")
            if not isinstance(anchored, bool):
                raise TypeError(f"evidence anchored flag must be a bool, got {item!r}")
            evidence.append(Evidence(event_hash, anchored))
        object.__setattr__(self, "evidence", tuple(evidence))

    def evidence_hashes(self) -> tuple[str, ...]:
        """Hashes of the events this state rests on, once each, inspection included."""
        hashes = dict.fromkeys(event_hash for event_hash, _ in self.evidence)
        if self.last_inspection is not None:
            hashes.setdefault(self.last_inspection.event_hash)
        return tuple(hashes)

    def pending_evidence(self) -> tuple[str, ...]:
        """Hashes among `evidence_hashes()` not (known to be) anchored yet."""
        anchored: dict[str, bool] = {}
        for event_hash, is_anchored in self.evidence:
            anchored[event_hash] = anchored.get(event_hash, True) and is_anchored
        return tuple(h for h in self.evidence_hashes() if not anchored.get(h, False))


# ---------------------------------------------------------------------------------------------
# Cold chain
# ---------------------------------------------------------------------------------------------


class Excursion(NamedTuple):
    """A run of telemetry outside the allowed range: from the first reading out to the first
    reading back in (`end` None while it is still going on)."""

    start: datetime
    end: datetime | None


Reading = tuple[datetime, int | float | Decimal]


def _breached(start: datetime, end: datetime, policy: Policy) -> bool:
    return end - start > policy.breach_tolerance


def cold_chain_excursion(
    readings: Iterable[Reading],
    low: int | float | Decimal | None,
    high: int | float | Decimal | None,
    policy: Policy,
    now: datetime,
) -> Excursion | None:
    """The first excursion outside [low, high] lasting longer than the breach tolerance, if any.

    A finished excursion lasts from its first reading out of range to the first reading back in
    range; one still going on lasts until `now`. Readings may come in any order; `None` leaves a
    bound open. A NaN reading raises ValueError.
    """
    _require_aware(now, "now")
    if low is not None and high is not None and low > high:
        raise ValueError(f"allowed range is empty: low {low} > high {high}")
    ordered = sorted(readings, key=lambda reading: reading[0])
    start: datetime | None = None
    for time, value in ordered:
        _require_aware(time, "reading time")
        if value != value:  # NaN is the only value unequal to itself
            raise ValueError(f"telemetry reading at {time.isoformat()} is NaN")
        out = (low is not None and value < low) or (high is not None and value > high)
        if out and start is None:
            start = time
        elif not out and start is not None:
            if _breached(start, time, policy):
                return Excursion(start, time)
            start = None
    if start is not None and _breached(start, now, policy):
        return Excursion(start, None)
    return None


def back_in_range_since(
    readings: Iterable[Reading],
    low: int | float | Decimal | None,
    high: int | float | Decimal | None,
) -> datetime | None:
    """Since when every reading has been inside [low, high]: the first reading of the final
    run in range (None when the latest reading is out of range, or there is none)."""
    since: datetime | None = None
    for time, value in sorted(readings, key=lambda reading: reading[0]):
        out = (low is not None and value < low) or (high is not None and value > high)
        if out:
            since = None
        elif since is None:
            since = time
    return since


class Minute(NamedTuple):
    """A minute of a site's readings: when it starts, its lowest, highest and mean reading,
    and the time of its first reading."""

    start: datetime
    lowest: float
    highest: float
    mean: float
    first: datetime


def minute_readings(
    minutes: Iterable[Minute],
    low: int | float | Decimal | None,
    high: int | float | Decimal | None,
    since: datetime,
) -> tuple[list[Reading], list[datetime]]:
    """Readings standing for a site's minutes in the cold-chain rules, and the starts of the
    minutes whose readings must be read one by one instead.

    The rules look only at when readings change side (in range, out of range): in a minute
    whose every reading is on one side (its lowest and highest are), its first reading stands
    for all of them, with a value on that side. A minute with readings on both sides (or that
    may have: lowest below `low`, highest above `high`), and one that began before `since`,
    needs its readings. So the rules judge the same from minutes as from every reading.
    """
    readings: list[Reading] = []
    mixed: list[datetime] = []
    for minute in minutes:
        above = high is not None and minute.lowest > high
        below = low is not None and minute.highest < low
        within = (low is None or minute.lowest >= low) and (high is None or minute.highest <= high)
        if minute.start < since or not (above or below or within):
            mixed.append(minute.start)
        elif above:
            readings.append((minute.first, minute.highest))
        elif below:
            readings.append((minute.first, minute.lowest))
        else:
            readings.append((minute.first, minute.mean))
    return readings, mixed


# ---------------------------------------------------------------------------------------------
# Eligibility
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Whether a lot can back new financing, with every failed condition named."""

    failures: tuple[Reason, ...]
    pending_evidence: tuple[str, ...] = ()

    @property
    def eligible(self) -> bool:
        return not self.failures

    @property
    def hard_failures(self) -> tuple[Reason, ...]:
        """Failures that waiting for anchoring will not cure (all but `evidence_pending`)."""
        return tuple(f for f in self.failures if f is not Reason.EVIDENCE_PENDING)


def eligibility(lot: LotState, policy: Policy, now: datetime, applicant: str | None) -> Eligibility:
    """Check every condition for `lot` to back financing by `applicant` (a financier slug).

    Conditions: a last inspection that is conformant and younger than the policy's freshness;
    in a supervised warehouse; no cold-chain breach (open flag, or an excursion older than the
    tolerance), quality flag or other open risk flag; not expired (the lot is good through its
    expiry date, in `now`'s time zone), recalled or sold; some quantity; all evidence anchored;
    not pledged to a financier other than `applicant` (`None`: pledges are not checked).
    """
    _require_aware(now, "now")
    failed = _failures(lot, policy, now, applicant)
    return Eligibility(
        failures=tuple(code for code in ELIGIBILITY_CODES if code in failed),
        pending_evidence=lot.pending_evidence(),
    )


def _failures(
    lot: LotState, policy: Policy, now: datetime | None, applicant: str | None
) -> set[Reason]:
    """The failed conditions; with `now` None the time-dependent ones are not judged."""
    if not isinstance(lot, LotState):
        raise TypeError(f"lot must be a LotState, not {type(lot).__name__}")
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, not {type(policy).__name__}")
    failed: set[Reason] = set()
    inspection = lot.last_inspection
    if inspection is None:
        failed.add(Reason.NO_INSPECTION)
    else:
        if not inspection.conformant:
            failed.add(Reason.INSPECTION_NOT_CONFORMANT)
        if now is not None and now - inspection.time >= policy.inspection_freshness:
            failed.add(Reason.INSPECTION_STALE)
    if not lot.in_supervised_warehouse:
        failed.add(Reason.NOT_IN_SUPERVISED_WAREHOUSE)
    since = lot.out_of_range_since
    if now is not None and since is not None and _breached(since, now, policy):
        failed.add(Reason.COLD_CHAIN_BREACH)
    failed.update(_FLAG_REASONS.get(flag, Reason.RISK_FLAG) for flag in lot.risk_flags)
    if now is not None and lot.expiry is not None and now.date() > lot.expiry:
        failed.add(Reason.EXPIRED)
    if lot.recalled:
        failed.add(Reason.RECALLED)
    if lot.sold:
        failed.add(Reason.SOLD)
    if lot.quantity == 0:
        failed.add(Reason.NO_QUANTITY)
    if not lot.priced:
        failed.add(Reason.NO_PRICE)
    if lot.pending_evidence():
        failed.add(Reason.EVIDENCE_PENDING)
    if applicant is not None and lot.pledged_to is not None and lot.pledged_to != applicant:
        failed.add(Reason.PLEDGED_ELSEWHERE)
    return failed


# ---------------------------------------------------------------------------------------------
# Values and limits
# ---------------------------------------------------------------------------------------------


def collateral_value(lot: LotState, policy: Policy) -> Money:
    """quantity * the financier's unit price * (1 - haircut of its category), rounded down."""
    gross = lot.unit_price * lot.quantity
    return gross.times_rate(policy.haircut(lot.category).complement(), Rounding.DOWN)


def _non_negative(amount: Money, name: str) -> None:
    if not isinstance(amount, Money):
        raise TypeError(f"{name} must be Money, not {type(amount).__name__}")
    if amount.is_negative():
        raise ValueError(f"{name} must not be negative, got {amount}")


def credit_limit(value: Money, policy: Policy) -> Money:
    """The most that may be lent against collateral worth `value`: value * advance rate, down."""
    _non_negative(value, "collateral value")
    return value.times_rate(policy.advance_rate, Rounding.DOWN)


def receivable_advance(amount: Money, policy: Policy) -> Money:
    """The advance on a confirmed receivable: amount * receivable advance rate, rounded down."""
    _non_negative(amount, "receivable amount")
    return amount.times_rate(policy.receivable_advance_rate, Rounding.DOWN)


@dataclass(frozen=True, slots=True)
class Revaluation:
    """A lot re-valued after an event: new value and limit, and the margin call if any."""

    value: Money
    limit: Money
    drawn: Money
    margin_call: Money
    impairments: tuple[Reason, ...] = ()

    @property
    def margin_call_due(self) -> bool:
        return self.margin_call.is_positive()


def revalue(
    lot: LotState, policy: Policy, drawn: Money, *, now: datetime | None = None
) -> Revaluation:
    """Re-value a pledged lot against what is `drawn` on it.

    A lot with an impairing condition (`IMPAIRING_CODES`: failed inspection, cold-chain breach,
    quality flag, expiry, recall, sale) is worth zero as collateral; otherwise it is worth
    `collateral_value`. The margin call is what is drawn beyond the new limit, rounded up
    (zero when within it). Expiry and telemetry excursions are time-dependent and are only
    judged when `now` is given; open flags, inspection, recall and sale always are.
    """
    _non_negative(drawn, "drawn")
    if drawn.currency != lot.unit_price.currency:
        raise CurrencyMismatch(
            f"drawn is in {drawn.currency} but lot {lot.gtin}/{lot.lot} is priced in "
            f"{lot.unit_price.currency}"
        )
    if now is not None:
        _require_aware(now, "now")
    failed = _failures(lot, policy, now, None)
    impairments = tuple(code for code in ELIGIBILITY_CODES if code in failed & IMPAIRING_CODES)
    value = Money.zero(drawn.currency) if impairments else collateral_value(lot, policy)
    # Exactly the amount owed rounded up: drawn is whole minor units, so
    # ceil(drawn - value * rate) == drawn - floor(value * rate) == drawn - credit_limit.
    limit = credit_limit(value, policy)
    shortfall = drawn - limit
    margin_call = shortfall if shortfall.is_positive() else Money.zero(drawn.currency)
    return Revaluation(value, limit, drawn, margin_call, impairments)


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Application:
    """A request to draw `requested` against a lot; `drawn_on_lot` is what it already secures."""

    requested: Money
    guarantor: bool = False
    drawn_on_lot: Money | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.requested, Money):
            raise TypeError(f"requested must be Money, not {type(self.requested).__name__}")
        if not self.requested.is_positive():
            raise ValueError(f"requested amount must be positive, got {self.requested}")
        if not isinstance(self.guarantor, bool):
            raise TypeError(f"guarantor must be a bool, not {type(self.guarantor).__name__}")
        if self.drawn_on_lot is None:
            object.__setattr__(self, "drawn_on_lot", Money.zero(self.requested.currency))
        else:
            _non_negative(self.drawn_on_lot, "drawn_on_lot")

    @property
    def already_drawn(self) -> Money:
        """`drawn_on_lot`, zero when not given."""
        if self.drawn_on_lot is None:
            return Money.zero(self.requested.currency)
        return self.drawn_on_lot


@dataclass(frozen=True, slots=True)
class CreditLine:
    """A financier's credit line to an enterprise."""

    financier: str
    limit: Money
    drawn: Money
    status: LineStatus = LineStatus.ACTIVE

    def __post_init__(self) -> None:
        if not isinstance(self.financier, str) or not self.financier:
            raise ValueError(f"financier must be a non-empty slug, got {self.financier!r}")
        _non_negative(self.limit, "line limit")
        _non_negative(self.drawn, "line drawn")
        if self.limit.currency != self.drawn.currency:
            raise CurrencyMismatch(
                f"line limit is in {self.limit.currency} but drawn is in {self.drawn.currency}"
            )
        try:
            object.__setattr__(self, "status", LineStatus(self.status))
        except ValueError:
            raise ValueError(
                f"line status must be one of {[s.value for s in LineStatus]}, got {self.status!r}"
            ) from None

    @property
    def available(self) -> Money:
        """limit - drawn, never below zero."""
        headroom = self.limit - self.drawn
        return headroom if headroom.is_positive() else Money.zero(self.limit.currency)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an application, with the reasons and the events it rests on.

    `available` is what could be lent (min of collateral and line headroom, never negative);
    `ltv` is (drawn on the lot + the amount requested) / collateral value, or None when the
    value is zero.
    """

    kind: DecisionKind
    approved_amount: Money
    reasons: tuple[Reason, ...]
    evidence: tuple[str, ...]
    collateral_value: Money
    credit_limit: Money
    available: Money
    ltv: Decimal | None = None


_LTV_PLACES: Final = Decimal("0.000001")


def decide(
    application: Application,
    lot: LotState,
    policy: Policy,
    line: CreditLine,
    now: datetime,
) -> Decision:
    """Decide an application to draw on `line` against `lot`.

    1. Any eligibility failure other than `evidence_pending`, or a frozen / closed line →
       `decline`, naming every failed condition (`line_frozen` / `line_closed` included).
    2. Only `evidence_pending` → `refer` (`evidence_pending`): anchoring will cure it.
    3. available = min(credit limit of the collateral - already drawn on the lot,
       line limit - line drawn); ≤ 0 → `decline` (`no_availability`).
    4. The amount is min(requested, available); `partial` (`limited_by_collateral` /
       `limited_by_line`) when that is below the request, else `approve` (`within_limits`).
    5. The loan's LTV is (drawn on the lot + the amount *requested*) / collateral value, shown
       in every decision reached with a value. Above the LTV cap (exactly at it is fine):
       without a guarantor → `refer` (`guarantor_required`, nothing approved); with one, the
       decision of 3-4 stands with `guarantor_accepted` added. (On the request, not on what the
       advance rate would allow: else a cap above the advance rate could never trigger.)
    """
    if not isinstance(application, Application):
        raise TypeError(f"application must be an Application, not {type(application).__name__}")
    if not isinstance(line, CreditLine):
        raise TypeError(f"line must be a CreditLine, not {type(line).__name__}")
    currency = application.requested.currency
    for name, amount in (
        ("lot unit price", lot.unit_price),
        ("line limit", line.limit),
    ):
        if amount.currency != currency:
            raise CurrencyMismatch(
                f"requested amount is in {currency} but the {name} is in {amount.currency}"
            )
    drawn_on_lot = application.already_drawn
    if drawn_on_lot.currency != currency:
        raise CurrencyMismatch(
            f"requested amount is in {currency} but drawn_on_lot is in {drawn_on_lot.currency}"
        )

    check = eligibility(lot, policy, now, line.financier)
    value = collateral_value(lot, policy)
    limit = credit_limit(value, policy)
    zero = Money.zero(currency)
    evidence = lot.evidence_hashes()

    requested = application.requested
    requested_exposure = drawn_on_lot + requested
    ltv = (
        (Decimal(requested_exposure.minor) / Decimal(value.minor)).quantize(
            _LTV_PLACES, rounding=ROUND_HALF_EVEN
        )
        if value.is_positive()
        else None
    )

    def outcome(
        kind: DecisionKind,
        reasons: Iterable[Reason],
        approved: Money = zero,
        available: Money = zero,
    ) -> Decision:
        return Decision(kind, approved, tuple(reasons), evidence, value, limit, available, ltv)

    line_reasons = {
        LineStatus.ACTIVE: (),
        LineStatus.FROZEN: (Reason.LINE_FROZEN,),
        LineStatus.CLOSED: (Reason.LINE_CLOSED,),
    }[line.status]
    if check.hard_failures or line_reasons:
        return outcome(DecisionKind.DECLINE, check.failures + line_reasons)
    if check.failures:  # only evidence_pending is left
        return outcome(DecisionKind.REFER, check.failures)

    by_collateral = limit - drawn_on_lot
    by_line = line.limit - line.drawn
    available = min(by_collateral, by_line)
    if not available.is_positive():
        return outcome(DecisionKind.DECLINE, (Reason.NO_AVAILABILITY,))

    # Exact: for whole minor units n, n > value * cap  <=>  n > floor(value * cap).
    above_cap = requested_exposure > value.times_rate(policy.ltv_cap, Rounding.DOWN)
    if above_cap and not application.guarantor:
        return outcome(DecisionKind.REFER, (Reason.GUARANTOR_REQUIRED,), zero, available)
    amount = min(requested, available)
    if amount < requested:
        kind = DecisionKind.PARTIAL
        reasons: list[Reason] = []
        if by_collateral <= by_line:
            reasons.append(Reason.LIMITED_BY_COLLATERAL)
        if by_line <= by_collateral:
            reasons.append(Reason.LIMITED_BY_LINE)
    else:
        kind = DecisionKind.APPROVE
        reasons = [Reason.WITHIN_LIMITS]

    if above_cap:
        reasons.append(Reason.GUARANTOR_ACCEPTED)
    return outcome(kind, reasons, amount, available)
