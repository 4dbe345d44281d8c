"""Finance operations for financiers and enterprises: free of HTTP, used by the CLI and the API.

Each operation takes the connection, the journal it records itself in (sealed with the key the
composition root hands down) and its inputs; it answers with a typed result or refuses with a
`FinanceError`. Inputs arrive as text (money as decimal strings), as the CLI and the API get them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

from epcis.authority import recorder_and_others
from epcis.event_hash import digest_from_hash_id, hash_id_from_digest
from epcis.identifiers import gln13, gln_uri, gtin14, lot_uri, normalise_epc, parse_lot
from finance import repayments, valuation
from finance.errors import FinanceError, FinanceErrorCode
from finance.money import MAX_AMOUNT_MINOR, MAX_UNIT_PRICE_MINOR, Money, Rate, Rounding
from finance.pledges import PledgeRegistry, checksum, lot_key, org_address
from finance.rules import (
    DEFAULT_ADVANCE_RATE,
    DEFAULT_BREACH_TOLERANCE,
    DEFAULT_CURE_PERIOD,
    DEFAULT_HAIRCUT,
    DEFAULT_INSPECTION_FRESHNESS,
    DEFAULT_LTV_CAP,
    DEFAULT_OFFER_VALIDITY,
    DEFAULT_RECEIVABLE_ADVANCE_RATE,
    Application,
    CreditLine,
    Decision,
    DecisionKind,
    LineStatus,
    Policy,
    Reason,
    collateral_value,
    credit_limit,
    decide,
    receivable_advance,
    revalue,
)
from finance.servicing import RepaymentSource, ScheduleKind, Statement
from finance.store import alerts as alert_store
from finance.store import attribution, credit, goods
from finance.store import programme as programme_store
from finance.store.credit import Line, StoredTerms
from finance.store.goods import Product
from finance.store.journal import Journal
from finance.tracking import LotRecord, recorder_attestation
from ledger.chain import Chain, ChainReverted
from records import attestation_store, registry_store
from records.db import Conn

_T = TypeVar("_T")


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pledged:
    """A lot pledged to a line; `lot_key` and `tx` as 0x-hex (empty `tx`: already on chain)."""

    lot: str
    line: int
    lot_key: str
    tx: str


@dataclass(frozen=True)
class Released:
    """A pledge released, whole (`tx` as 0x-hex, empty when released on chain by an earlier
    attempt; `still_pledged` 0) or in part (no transaction; the units still pledged)."""

    lot: str
    line: int
    tx: str
    still_pledged: int


@dataclass(frozen=True)
class DecisionOutcome:
    """An application decided: amounts formatted in the line's currency, evidence as hash ids."""

    application: int
    decision: str
    approved: str
    approved_minor: int
    reasons: list[str]
    evidence: list[str]
    collateral_value: str
    ltv: str | None = None  # (exposure + requested) / collateral value, as the rules judged it
    offer_id: int | None = None  # the offer an approval made (None when nothing was offered)


@dataclass(frozen=True)
class InspectionStatus:
    disposition: str | None
    time: datetime | None


@dataclass(frozen=True)
class PledgeStatus:
    line: int
    lot_key: str  # 0x-hex
    quantity: int  # units pledged


@dataclass(frozen=True)
class Recorder:
    org: str  # org slug
    device: str | None  # None: submitted over the API


@dataclass(frozen=True)
class Attester:
    org: str
    device: str | None
    signed: bool


@dataclass(frozen=True)
class EvidenceStatus:
    """An event applied to the lot: anchoring, origin, and whether it counts as evidence.

    `recorded_by` is the earliest attestation, `signed` whether it was signed, `attested_by`
    everyone else who submitted the same event; `reason` (an `epcis.authority.Reason`) only
    when `evidence` is "unattested".
    """

    event_hash: str  # hash id (ni:///sha-256;...)
    anchored: bool
    recorded_by: Recorder | None
    signed: bool
    attested_by: list[Attester]
    evidence: Literal["counts", "unattested"]
    reason: str | None


@dataclass(frozen=True)
class LotStatus:
    """Goods status of a lot, valued from one financier's viewpoint (or none)."""

    lot: str
    quantity: int
    location: str | None
    custody: str | None
    best_before: date | None
    last_inspection: InspectionStatus
    pledge: PledgeStatus | None
    risk_flags: list[str]
    collateral_value: str
    collateral_value_minor: int
    evidence: list[EvidenceStatus]


# --- inputs ----------------------------------------------------------------------------------


def canonical_lot(value: str) -> str:
    """A lot given as URN, Digital Link, or Digital Link path (`01/{gtin}/10/{lot}`)."""
    if value.startswith(("01/", "/01/")):
        value = "https://id.gs1.org/" + value.lstrip("/")
    try:
        parsed = parse_lot(normalise_epc(value))
    except ValueError as exc:
        raise FinanceError(FinanceErrorCode.INVALID_LOT, str(exc)) from None
    if parsed is None:
        raise FinanceError(
            FinanceErrorCode.INVALID_LOT, f"{value!r} is not a lot (GTIN + lot number)"
        )
    return lot_uri(*parsed)


def _parsed(parse: Callable[[], _T]) -> _T:
    """Input text parsed (amounts, rates, temperatures), or refused as `invalid_input`."""
    try:
        return parse()
    except (ValueError, InvalidOperation) as exc:
        raise FinanceError(FinanceErrorCode.INVALID_INPUT, str(exc)) from None


def _money(value: str, currency: str, maximum: int = MAX_AMOUNT_MINOR) -> Money:
    """An amount as it enters: parsed (`invalid_input`) and bounded (`amount_out_of_range`)."""
    money = _parsed(lambda: Money.of(value, currency))
    if abs(money.minor) > maximum:
        raise FinanceError(
            FinanceErrorCode.AMOUNT_OUT_OF_RANGE,
            f"{money.format()} is beyond what tracefin holds (at most {maximum} minor units)",
        )
    return money


def _org(conn: Conn, slug: str, role: str | None = None) -> registry_store.Org:
    org = registry_store.get_org(conn, slug)
    if org is None:
        raise FinanceError(FinanceErrorCode.UNKNOWN_ORG, f"no organisation {slug!r}")
    if role is not None and org.role != role:
        raise FinanceError(FinanceErrorCode.WRONG_ROLE, f"{slug!r} is a {org.role}, not a {role}")
    return org


# --- products, warehouses, policies ----------------------------------------------------------


def add_product(
    conn: Conn,
    journal: Journal,
    owner: str,
    gtin: str,
    name: str,
    category: str,
    unit_price: str,
    currency: str,
    min_temp_c: str | None = None,
    max_temp_c: str | None = None,
    shelf_life_days: int | None = None,
) -> Product:
    org = _org(conn, owner)
    price = _money(unit_price, currency, MAX_UNIT_PRICE_MINOR)
    if len(gtin) != 14 or not gtin.isdigit():
        raise FinanceError(FinanceErrorCode.INVALID_GTIN, "a GTIN here has 14 digits")
    try:
        gtin14(gtin)
    except ValueError as exc:
        raise FinanceError(FinanceErrorCode.INVALID_IDENTIFIER, str(exc)) from None
    # Only the holder of the GTIN's GS1 Company Prefix names and prices its products.
    holder = registry_store.authority_parties(conn).owner_of(gtin)
    if holder != owner:
        raise FinanceError(
            FinanceErrorCode.NOT_YOUR_PREFIX,
            f"GTIN {gtin} is not in a GS1 Company Prefix of {owner}",
        )
    product = Product(
        gtin,
        org.id,
        name,
        category,
        price.minor,
        price.currency,
        _parsed(lambda: Decimal(min_temp_c)) if min_temp_c is not None else None,
        _parsed(lambda: Decimal(max_temp_c)) if max_temp_c is not None else None,
        shelf_life_days,
    )
    goods.add_product(conn, product)
    journal.write(
        conn,
        owner,
        "product_registered",
        gtin,
        {
            "name": name,
            "category": category,
            "unit_price_minor": price.minor,
            "currency": price.currency,
        },
    )
    return product


def add_warehouse(conn: Conn, journal: Journal, operator: str, location: str, name: str) -> str:
    """Register a warehouse; returns its location as canonical (normalised) identifier.

    `warehouse add`, the alias of `site add --supervised --grant`: the operator (this runs
    from the operator's CLI) also registers a whole GLN as a supervised site the org operates,
    by its grant where the GLN is outside the org's prefixes (the authority rules count custody
    events at a site only from its operator's devices). A GLN with an extension (a sub-location)
    stays a warehouse only, as before sites.
    """
    canonical = _location(location)
    gln = _site_gln(canonical)
    if gln is not None:
        add_site(conn, journal, operator, gln, name, supervised=True, grant=True)
        return canonical
    org = _org(conn, operator)
    with conn.transaction():
        goods.add_warehouse(conn, canonical, org.id, name)
        journal.write(conn, operator, "warehouse_registered", canonical, {"name": name})
    return canonical


def add_site(
    conn: Conn,
    journal: Journal,
    operator: str,
    gln: str,
    name: str,
    *,
    supervised: bool = False,
    grant: bool = False,
    city: str | None = None,
) -> registry_store.Site:
    """Register a site (GLN: 13 digits, Digital Link or sgln URN) an org operates: by its own
    GS1 Company Prefix, or by the operator's `grant`.

    A supervised site is a warehouse financiers may supervise: it is also finance's warehouse
    (located by the canonical Digital Link of its GLN), which `warehouse supervise` accepts.
    """
    _org(conn, operator)
    if city is not None and not 1 <= len(city) <= 100:
        raise FinanceError(FinanceErrorCode.INVALID_INPUT, "a city has 1 to 100 characters")
    try:
        site_gln = gln13(gln)
    except ValueError as exc:
        raise FinanceError(FinanceErrorCode.INVALID_IDENTIFIER, str(exc)) from None
    with conn.transaction():
        try:
            site = registry_store.add_site(
                conn, operator, site_gln, name, supervised=supervised, grant=grant, city=city
            )
        except registry_store.NotYourPrefix as exc:
            raise FinanceError(FinanceErrorCode.NOT_YOUR_PREFIX, str(exc)) from None
        except registry_store.RegistryError as exc:
            raise FinanceError(FinanceErrorCode.SITE_TAKEN, str(exc)) from None
        if site.supervised:
            location = gln_uri(site_gln)
            goods.add_warehouse(conn, location, _org(conn, operator).id, name)
            journal.write(conn, operator, "warehouse_registered", location, {"name": name})
    return site


def _location(location: str) -> str:
    """A place as stored: canonical DL; a bare 13-digit GLN too. Wrong check digit refused."""
    candidate = location.strip()
    try:
        if candidate.isascii() and candidate.isdigit():
            return gln_uri(gln13(candidate))
        canonical = normalise_epc(candidate)
        _site_gln(canonical)
    except ValueError as exc:
        raise FinanceError(FinanceErrorCode.INVALID_IDENTIFIER, str(exc)) from None
    return canonical


def add_sensor(conn: Conn, org_slug: str, device_id: str, location: str) -> None:
    """A device reads the conditions at a warehouse: bound to its site, whose telemetry counts
    only from devices bound to it."""
    org = _org(conn, org_slug)
    canonical = _warehouse(conn, location)
    if not registry_store.find_devices(conn, [(org_slug, device_id)]):
        raise FinanceError(FinanceErrorCode.UNKNOWN_DEVICE, f"no device {org_slug}/{device_id}")
    with conn.transaction():
        goods.add_sensor(conn, org.id, device_id, canonical)
        gln = _site_gln(canonical)
        if gln is not None:
            registry_store.bind_device_sites(conn, org_slug, device_id, [gln])


def _warehouse(conn: Conn, location: str) -> str:
    """A registered warehouse's location as stored (a GLN in any of its forms, as `site add`
    takes it), else refused `unknown_warehouse`."""
    canonical = _location(location)
    if not goods.warehouse_exists(conn, canonical):
        raise FinanceError(
            FinanceErrorCode.UNKNOWN_WAREHOUSE,
            f"no warehouse is registered at {canonical}: `tracefin warehouse add` (or `site add"
            " --supervised`) registers it",
        )
    return canonical


_GLN_URI = "https://id.gs1.org/414/"


def _site_gln(location: str) -> str | None:
    """The GLN of a canonical location that names a whole site, else None; ValueError when it
    names one with a wrong check digit."""
    if not location.startswith(_GLN_URI) or "/254/" in location:
        return None
    return gln13(location)


def supervise(conn: Conn, journal: Journal, financier: str, location: str) -> None:
    org = _org(conn, financier, "financier")
    canonical = _warehouse(conn, location)
    with conn.transaction():
        goods.supervise(conn, org.id, canonical)
        if canonical.startswith(_GLN_URI):
            # A registered site some financier supervises is a supervised site: goods held
            # there leave it only on its operator's word (epcis.authority, held_elsewhere).
            registry_store.mark_supervised(conn, canonical.removeprefix(_GLN_URI)[:13])
        journal.write(conn, financier, "warehouse_supervised", canonical, {})


@dataclass(frozen=True)
class PriceSet:
    """A financier's price as set: what a lot of the GTIN is worth to it from `valid_from`, and
    the lines its pledged lots were revalued on."""

    gtin: str
    unit_price: str
    unit_price_minor: int
    currency: str
    valid_from: datetime
    revalued_lines: list[int]


def set_price(
    conn: Conn,
    journal: Journal,
    financier: str,
    gtin: str,
    unit_price: str,
    currency: str,
    valid_from: datetime | None = None,
) -> PriceSet:
    """The financier's own unit price for a GTIN (its price list): the only price its lending
    rests on. Its pledged lots of the GTIN are revalued once it holds: at once, or when its
    `valid_from` comes (a margin call where a line's drawn exceeds what its collateral now
    secures)."""
    bank = _org(conn, financier, "financier")
    try:
        key = gtin14(gtin)
    except ValueError as exc:
        raise FinanceError(FinanceErrorCode.INVALID_IDENTIFIER, str(exc)) from None
    price = _money(unit_price, currency, MAX_UNIT_PRICE_MINOR)
    if price.is_negative():
        raise FinanceError(FinanceErrorCode.INVALID_AMOUNT, "a price is not negative")
    since = valid_from if valid_from is not None else datetime.now(UTC)
    if since.tzinfo is None or since.utcoffset() is None:
        raise FinanceError(
            FinanceErrorCode.INVALID_INPUT, "valid_from needs a time zone (RFC 3339)"
        )
    now = datetime.now(UTC)
    in_force = since <= now
    with conn.transaction():
        stored = goods.set_price(
            conn, bank.id, key, price.minor, price.currency, since, now if in_force else None
        )
        journal.write(
            conn,
            financier,
            "price_set",
            key,
            {
                "unit_price_minor": price.minor,
                "currency": price.currency,
                "valid_from": since.isoformat(),
            },
        )
        lines = []
        # A price for later is revalued when its time comes (the finance worker's check).
        for pledge in credit.pledges_priced_by(conn, bank.id, key) if in_force else []:
            valuation.revalue_line(
                conn, journal, pledge.line_id, pledge.lot_uri, reason="price_change", log_index=None
            )
            lines.append(pledge.line_id)
    return PriceSet(
        key, price.format(), price.minor, price.currency, stored.valid_from, sorted(set(lines))
    )


def prices(conn: Conn, financier: str) -> list[goods.Price]:
    """The financier's price list, every price it set, by GTIN and time."""
    return goods.prices_of(conn, _org(conn, financier, "financier").id)


def set_policy(
    conn: Conn,
    journal: Journal,
    financier: str,
    category: str = "*",
    *,
    advance_rate: str | None = None,
    haircut: str | None = None,
    ltv_cap: str | None = None,
    breach_tolerance_s: int | None = None,
    inspection_freshness_s: int | None = None,
    receivable_advance_rate: str | None = None,
    cure_period_s: int | None = None,
    offer_validity_s: int | None = None,
    annual_rate: str | None = None,
    day_count: str | None = None,
    schedule_kind: str | None = None,
    instalment_count: int | None = None,
    fee_rate: str | None = None,
    tenor_days: int | None = None,
    grace_days: int | None = None,
    penalty_rate: str | None = None,
    default_after_days: int | None = None,
) -> None:
    """A financier's policy for a category ('*': its default); terms not given are the rules'
    defaults (finance/rules.py) and, for loan economics, repayments.DEFAULT_TERMS. Terms that
    do not hold together (e.g. 12 instalments in a 10-day tenor) are refused `invalid_terms`."""
    org = _org(conn, financier, "financier")

    def rate(value: str | None, default: Rate) -> Decimal:
        return _parsed(lambda: Rate.of(value)).value if value is not None else default.value

    def seconds(value: int | None, default: timedelta) -> int:
        return value if value is not None else int(default.total_seconds())

    row = goods.PolicyRow(
        org.id,
        category,
        rate(advance_rate, DEFAULT_ADVANCE_RATE),
        rate(haircut, DEFAULT_HAIRCUT),
        rate(ltv_cap, DEFAULT_LTV_CAP),
        seconds(breach_tolerance_s, DEFAULT_BREACH_TOLERANCE),
        seconds(inspection_freshness_s, DEFAULT_INSPECTION_FRESHNESS),
        rate(receivable_advance_rate, DEFAULT_RECEIVABLE_ADVANCE_RATE),
        seconds(cure_period_s, DEFAULT_CURE_PERIOD),
        seconds(offer_validity_s, DEFAULT_OFFER_VALIDITY),
        *astuple(
            _policy_terms(
                annual_rate=annual_rate,
                day_count=day_count,
                schedule_kind=schedule_kind,
                instalment_count=instalment_count,
                fee_rate=fee_rate,
                tenor_days=tenor_days,
                grace_days=grace_days,
                penalty_rate=penalty_rate,
                default_after_days=default_after_days,
            )
        ),
    )
    with conn.transaction():
        goods.set_policy(conn, row)
        journal.write(
            conn,
            financier,
            "policy_set",
            category,
            {k: str(v) for k, v in asdict(row).items() if k != "financier_org_id"},
        )


def policies(conn: Conn, financier: str) -> list[goods.PolicyRow]:
    """The financier's policies, by category ('*': its default)."""
    return goods.policies_of(conn, _org(conn, financier, "financier").id)


def _policy_terms(
    *,
    annual_rate: str | None,
    day_count: str | None,
    schedule_kind: str | None,
    instalment_count: int | None,
    fee_rate: str | None,
    tenor_days: int | None,
    grace_days: int | None,
    penalty_rate: str | None,
    default_after_days: int | None,
) -> StoredTerms:
    """A policy's loan terms (DEFAULT_TERMS where not given), checked as servicing checks
    them."""
    base = repayments.DEFAULT_TERMS

    def rate(value: str | None, default: Decimal) -> Decimal:
        return _parsed(lambda: Rate.of(value)).value if value is not None else default

    kind = schedule_kind if schedule_kind is not None else base.schedule_kind
    count = instalment_count
    if count is None:
        count = 1 if kind == ScheduleKind.BULLET else base.instalment_count
    stored = StoredTerms(
        annual_rate=rate(annual_rate, base.annual_rate),
        day_count=day_count if day_count is not None else base.day_count,
        schedule_kind=kind,
        instalment_count=count,
        fee_rate=rate(fee_rate, base.fee_rate),
        tenor_days=tenor_days if tenor_days is not None else base.tenor_days,
        grace_days=grace_days if grace_days is not None else base.grace_days,
        penalty_rate=rate(penalty_rate, base.penalty_rate),
        default_after_days=(
            default_after_days if default_after_days is not None else base.default_after_days
        ),
    )
    try:
        repayments.loan_terms(stored)
    except (TypeError, ValueError) as exc:
        raise FinanceError(FinanceErrorCode.INVALID_TERMS, str(exc)) from None
    return stored


# --- lines -----------------------------------------------------------------------------------


# The roles of orgs that own goods and may borrow against them.
BORROWER_ROLES = frozenset({"manufacturer", "warehouse", "logistics", "retailer"})


def open_line(
    conn: Conn, journal: Journal, financier: str, borrower: str, limit: str, currency: str
) -> Line:
    bank = _org(conn, financier, "financier")
    client = registry_store.get_org(conn, borrower)
    # Lines go to enterprises that hold goods. Anything else (a regulator, another bank, a
    # guarantor, nobody) gets one answer, so a financier cannot sort slugs by what they are.
    if client is None or client.role not in BORROWER_ROLES:
        raise FinanceError(FinanceErrorCode.UNKNOWN_ORG, f"no borrower {borrower!r}")
    amount = _money(limit, currency)
    existing = credit.line_between(conn, bank.id, client.id)
    if existing is not None and existing.currency == amount.currency:
        if existing.status == LineStatus.CLOSED:
            raise FinanceError(
                FinanceErrorCode.LINE_CLOSED, f"line {existing.id} is closed: it is not reopened"
            )
        if amount.minor > existing.limit_minor:
            _refuse_in_run_off(conn, bank.id, f"raise line {existing.id}'s limit")
    else:
        _refuse_in_run_off(conn, bank.id, f"open a line to {borrower}")
    line = credit.open_line(conn, bank.id, client.id, amount.currency, amount.minor)
    if line is None:
        raise FinanceError(
            FinanceErrorCode.LIMIT_BELOW_DRAWN,
            f"the line of {financier} to {borrower} has drawn more than {amount.format()}:"
            " repayments first, then the lower limit",
        )
    journal.write(
        conn,
        financier,
        "line_opened",
        f"line:{line.id}",
        {"borrower": borrower, "limit_minor": amount.minor, "currency": currency},
    )
    return line


def _line_between(conn: Conn, financier_id: int | None, borrower_id: int) -> Line:
    line = (
        credit.line_between(conn, financier_id, borrower_id) if financier_id is not None else None
    )
    if line is None:
        raise FinanceError(
            FinanceErrorCode.NO_LINE, "no credit line between the financier and the lot's owner"
        )
    return line


def _financiers_line(conn: Conn, bank: registry_store.Org, line_id: int) -> Line:
    line = credit.get_line(conn, line_id, for_update=True)
    if line is None or line.financier_org_id != bank.id:
        raise FinanceError(FinanceErrorCode.UNKNOWN_LINE, f"{bank.slug} has no line {line_id}")
    return line


def repay(
    conn: Conn,
    journal: Journal,
    financier: str,
    line_id: int,
    amount: str,
    loan: int | None = None,
) -> Line:
    """A repayment received on a line: accepted on active and frozen lines alike (the exit
    path). It is allocated to the line's loans, `loan` first if named, then oldest first, each
    through the waterfall (fees, penalty, interest, principal) up to what it owes today; more
    than the line's loans owe in all is refused."""
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        line = _financiers_line(conn, bank, line_id)
        money = _money(amount, line.currency)
        if loan is not None:
            named = credit.get_loan(conn, loan)
            if named is None or named.line_id != line_id:
                raise FinanceError(
                    FinanceErrorCode.UNKNOWN_LOAN, f"line {line_id} has no loan {loan}"
                )
        owing = credit.owing_loans(conn, line_id, first=loan)
        _receive(conn, journal, financier, line, owing, money, f"line:{line_id}")
        updated = credit.get_line(conn, line_id)
    assert updated is not None
    return updated


def repay_loan(
    conn: Conn, journal: Journal, financier: str | None, loan_id: int, amount: str
) -> Line:
    """A repayment of one loan, received by its financier (None: the operator records it for
    the loan's financier, journaled as `operator`): through the waterfall, up to what the loan
    owes today (more is refused `invalid_amount`); on frozen lines too."""
    bank = _org(conn, financier, "financier") if financier is not None else None
    with conn.transaction():
        # Lock order everywhere money moves: the line, then its loans (no deadlock with a
        # line repayment or sale proceeds on the same line).
        named = credit.get_loan(conn, loan_id)
        line = credit.get_line(conn, named.line_id, for_update=True) if named else None
        found = credit.get_loan(conn, loan_id, for_update=True) if line else None
        if found is None or line is None or (bank is not None and line.financier_org_id != bank.id):
            raise FinanceError(
                FinanceErrorCode.UNKNOWN_LOAN, f"{financier or 'tracefin'} has no loan {loan_id}"
            )
        # The operator recording a receipt for the bank says so: the entry is not the bank's.
        actor = bank.slug if bank is not None else "operator"
        money = _money(amount, line.currency)
        _receive(conn, journal, actor, line, [found], money, f"loan:{loan_id}")
        updated = credit.get_line(conn, line.id)
    assert updated is not None
    return updated


def _receive(
    conn: Conn,
    journal: Journal,
    financier: str,
    line: Line,
    owing: list[credit.Loan],
    money: Money,
    subject: str,
) -> None:
    """Cash received from the borrower for `owing`, in that order: one movement on the line,
    each loan's part through the waterfall, one journal entry; then the line revalued."""
    today = credit.utc_today(conn)
    dues = repayments.owing(conn, owing, today)
    owed = sum(due.owed_minor for due in dues)
    if not money.is_positive() or money.minor > owed:
        raise FinanceError(
            FinanceErrorCode.INVALID_AMOUNT,
            f"repayment must be positive and at most the {owed} owed today",
        )
    movement = credit.move_money(conn, line.id, "repayment", money.minor)
    parts, left = repayments.allocate(
        conn, dues, money.minor, RepaymentSource.BORROWER, movement, today
    )
    assert left == 0, "bounded by what the loans owe"
    journal.write(
        conn,
        financier,
        "repayment",
        subject,
        {
            "line": line.id,
            "amount_minor": money.minor,
            "allocated": [asdict(part) for part in parts],
        },
    )
    # Less drawn: the line's margin call shrinks, or is cured.
    valuation.revalue_line(conn, journal, line.id, None, reason="repayment", log_index=None)


def loan_statement(
    conn: Conn, org: str | None, loan_id: int, as_of: date | None = None
) -> Statement:
    """A loan's statement as of a day (default: today, UTC), to its financier or borrower
    (None: the operator, who sees every loan)."""
    if org is not None:
        found = loan(conn, org, loan_id)
    else:
        stored = credit.get_loan(conn, loan_id)
        if stored is None:
            raise FinanceError(FinanceErrorCode.UNKNOWN_LOAN, f"no loan {loan_id}")
        found = stored
    day = as_of if as_of is not None else credit.utc_today(conn)
    return repayments.loan_statement(conn, found, day)


def set_line_status(
    conn: Conn, journal: Journal, financier: str, line_id: int, status: str
) -> Line:
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        if _financiers_line(conn, bank, line_id).status == LineStatus.CLOSED:
            raise FinanceError(FinanceErrorCode.LINE_CLOSED, f"line {line_id} is closed")
        if credit.set_line_status(conn, line_id, status):
            journal.write(conn, financier, f"line_{status}", f"line:{line_id}", {})
        updated = credit.get_line(conn, line_id)
    assert updated is not None
    return updated


def close_line(conn: Conn, journal: Journal, financier: str, line_id: int) -> Line:
    """Close a line once it is settled: nothing drawn, nothing any loan of it owes today
    (interest and fees included), no live pledge (release them first). Refused
    `line_not_settled` otherwise. A closed line lends nothing again and is not reopened."""
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        line = _financiers_line(conn, bank, line_id)
        today = credit.utc_today(conn)
        dues = repayments.owing(conn, credit.owing_loans(conn, line_id), today)
        owed = sum(due.owed_minor for due in dues)
        pledged = programme_store.live_pledge_count(conn, line_id)
        if line.drawn_minor or owed or pledged:
            raise FinanceError(
                FinanceErrorCode.LINE_NOT_SETTLED,
                f"line {line_id} still has {line.drawn_minor} drawn, {owed} owed today and"
                f" {pledged} live pledges",
            )
        if programme_store.close_line(conn, line_id):
            journal.write(conn, financier, "line_closed", f"line:{line_id}", {})
        updated = credit.get_line(conn, line_id)
    assert updated is not None
    return updated


def run_off(
    conn: Conn, journal: Journal, actor: str, financier: str | None, reason: str
) -> programme_store.RunOff:
    """Put a programme into run-off: one financier's lines, or every line (`financier` None).
    From then on no new loan, offer, line or limit increase in scope (`programme_in_run_off`);
    what is outstanding keeps being serviced and repaid. Idempotent: a scope already in
    run-off keeps its first start (and is journaled once)."""
    text = reason.strip()
    if not text or len(text) > 2000:
        raise FinanceError(FinanceErrorCode.INVALID_INPUT, "a run-off gives its reason")
    bank = _org(conn, financier, "financier") if financier is not None else None
    with conn.transaction():
        stopped, started = programme_store.start_run_off(
            conn, bank.id if bank is not None else None, actor, text
        )
        if started:
            journal.write(
                conn,
                actor,
                "programme_run_off",
                f"programme:{financier or '*'}",
                {"financier": financier, "reason": text},
            )
    return stopped


def run_offs(conn: Conn) -> list[programme_store.RunOff]:
    return programme_store.run_offs(conn)


def _refuse_in_run_off(conn: Conn, financier_org_id: int, what: str) -> None:
    stopped = programme_store.run_off_covering(conn, financier_org_id)
    if stopped is not None:
        scope = stopped.financier or "the whole programme"
        raise FinanceError(
            FinanceErrorCode.PROGRAMME_IN_RUN_OFF,
            f"{scope} is in run-off since {stopped.started_at:%Y-%m-%d}: cannot {what}",
        )


# --- receivables finance ---------------------------------------------------------------------


def receivables(conn: Conn, org: str) -> list[credit.ReceivableRow]:
    """The receivables an org sees: those it sells, buys or financed, and the confirmed ones
    of sellers it has a line to (financiers); the regulator, every one."""
    seen = _org(conn, org)
    return credit.receivables_seen_by(conn, None if seen.role == SUPERVISOR_ROLE else seen.id)


def _receivable(conn: Conn, receivable_id: int, org: registry_store.Org) -> credit.ReceivableRow:
    found = credit.get_receivable(conn, receivable_id, for_update=True)
    if found is None or org.id not in (
        found.seller_org_id,
        found.buyer_org_id,
        found.financier_org_id,
    ):
        # Unknown and not yours answer alike: receivables are not enumerable.
        raise FinanceError(
            FinanceErrorCode.UNKNOWN_RECEIVABLE, f"{org.slug} has no receivable {receivable_id}"
        )
    return found


def confirm_receivable(
    conn: Conn, journal: Journal, buyer: str, receivable_id: int
) -> credit.ReceivableRow:
    """The buyer, with its own key, confirms it owes the receivable (only its buyer may)."""
    client = _org(conn, buyer)
    with conn.transaction():
        found = _receivable(conn, receivable_id, client)
        if found.buyer_org_id != client.id:
            raise FinanceError(
                FinanceErrorCode.UNKNOWN_RECEIVABLE,
                f"{buyer} is not the buyer of receivable {receivable_id}",
            )
        if found.state != "open":
            raise FinanceError(
                FinanceErrorCode.RECEIVABLE_NOT_OPEN,
                f"receivable {receivable_id} is {found.state}",
            )
        credit.confirm_receivable(conn, receivable_id)
        journal.write(
            conn,
            buyer,
            "receivable_confirmed",
            f"receivable:{receivable_id}",
            {"amount_minor": found.amount_minor, "purchase_order": found.purchase_order},
        )
        updated = credit.get_receivable(conn, receivable_id)
    assert updated is not None
    return updated


def finance_receivable(
    conn: Conn, journal: Journal, financier: str, receivable_id: int
) -> credit.ReceivableRow:
    """A financier advances against a confirmed receivable, at its own policy for the goods'
    category (its advance rate; its loan terms: rate, tenor, ...; no built-in default:
    `no_policy` without one), as a loan on its line to the seller, secured by the receivable's
    lot; within the line's availability (`limit_exceeded`) and outside run-off."""
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        found = credit.get_receivable(conn, receivable_id, for_update=True)
        line = (
            credit.line_between(conn, bank.id, found.seller_org_id)
            if found is not None and found.seller_org_id is not None
            else None
        )
        if found is None or line is None or line.currency != found.currency:
            raise FinanceError(
                FinanceErrorCode.UNKNOWN_RECEIVABLE,
                f"{financier} has no line to the seller of receivable {receivable_id}",
            )
        if found.state != "confirmed":
            raise FinanceError(
                FinanceErrorCode.RECEIVABLE_NOT_CONFIRMED,
                f"receivable {receivable_id} is {found.state}: only a confirmed one is financed",
            )
        if line.status != LineStatus.ACTIVE:
            raise FinanceError(
                FinanceErrorCode.LINE_CLOSED
                if line.status == LineStatus.CLOSED
                else FinanceErrorCode.NO_LINE,
                f"line {line.id} is {line.status}",
            )
        _refuse_in_run_off(conn, bank.id, "finance a receivable")
        lot = attribution.get_lot(conn, found.lot_uri)
        product = goods.get_product(conn, lot.gtin) if lot is not None else None
        category = product.category if product is not None else "*"
        policy_row = goods.policy_for(conn, bank.id, category)
        if policy_row is None:
            raise FinanceError(
                FinanceErrorCode.NO_POLICY,
                f"{financier} has no policy for {category!r}: set one (advance rate, rate,"
                " tenor) before financing receivables",
            )
        advance = receivable_advance(
            Money(found.amount_minor, found.currency),
            replace(Policy(), receivable_advance_rate=Rate.of(policy_row.receivable_advance_rate)),
        )
        if not advance.is_positive() or line.drawn_minor + advance.minor > line.limit_minor:
            raise FinanceError(
                FinanceErrorCode.LIMIT_EXCEEDED,
                f"an advance of {advance.format()} does not fit line {line.id}"
                f" ({line.drawn_minor} drawn of {line.limit_minor})",
            )
        terms = repayments.terms_at_drawdown(conn, bank.id, category)
        credit.move_money(conn, line.id, "drawdown", advance.minor)
        loan = credit.add_loan(
            conn, line.id, found.lot_uri, None, advance.minor, advance.currency, terms
        )
        credit.finance_receivable(conn, receivable_id, bank.id, loan.id, advance.minor)
        journal.write(
            conn,
            financier,
            "receivable_financed",
            f"receivable:{receivable_id}",
            {
                "loan": loan.id,
                "line": line.id,
                "advance_minor": advance.minor,
                "terms": {k: str(v) for k, v in asdict(terms).items()},
            },
        )
        updated = credit.get_receivable(conn, receivable_id)
    assert updated is not None
    return updated


def receivable_paid(
    conn: Conn, journal: Journal, financier: str, receivable_id: int, amount: str
) -> credit.ReceivableRow:
    """The buyer's payment of a financed receivable, received by its financier: it repays
    the receivable's loan through the waterfall (source `buyer`); what exceeds what the loan
    owes is the seller's (journaled as `to_seller_minor`). At most what the buyer still owes."""
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        found = _receivable(conn, receivable_id, bank)
        if found.financier_org_id != bank.id or found.loan_id is None:
            raise FinanceError(
                FinanceErrorCode.UNKNOWN_RECEIVABLE,
                f"{financier} did not finance receivable {receivable_id}",
            )
        money = _money(amount, found.currency)
        due = found.amount_minor - found.paid_minor
        if not money.is_positive() or money.minor > due:
            raise FinanceError(
                FinanceErrorCode.INVALID_AMOUNT,
                f"the buyer owes {due} more on receivable {receivable_id}",
            )
        financed = credit.get_loan(conn, found.loan_id)
        assert financed is not None  # the receivable refers to it
        credit.get_line(conn, financed.line_id, for_update=True)  # the line, then the loan
        loan = credit.get_loan(conn, found.loan_id, for_update=True)
        assert loan is not None
        movement = credit.move_money(conn, loan.line_id, "repayment", money.minor)
        today = credit.utc_today(conn)
        dues = repayments.owing(conn, [loan], today)
        parts, to_seller = repayments.allocate(
            conn, dues, money.minor, RepaymentSource.BUYER, movement, today
        )
        credit.receivable_paid(conn, receivable_id, money.minor)
        journal.write(
            conn,
            financier,
            "receivable_paid",
            f"receivable:{receivable_id}",
            {
                "amount_minor": money.minor,
                "applied": [asdict(part) for part in parts],
                "to_seller_minor": to_seller,
            },
        )
        valuation.revalue_line(
            conn, journal, loan.line_id, None, reason="repayment", log_index=None
        )
        updated = credit.get_receivable(conn, receivable_id)
    assert updated is not None
    return updated


# --- pledges ---------------------------------------------------------------------------------


def _lot_owner(conn: Conn, lot_uri: str) -> tuple[LotRecord, Product]:
    lot = attribution.get_lot(conn, lot_uri)
    if lot is None:
        raise FinanceError(FinanceErrorCode.UNKNOWN_LOT, f"no events have described {lot_uri} yet")
    product = goods.get_product(conn, lot.gtin)
    if product is None:
        raise FinanceError(
            FinanceErrorCode.UNKNOWN_PRODUCT, f"product {lot.gtin} is not registered"
        )
    return lot, product


def pledge(conn: Conn, journal: Journal, chain: Chain, financier: str, lot: str) -> Pledged:
    """Pledge a lot to a financier: on PledgeRegistry first (no lot pledged to two banks)."""
    lot_uri = canonical_lot(lot)
    bank = _org(conn, financier, "financier")
    try:
        return _pledge(conn, journal, PledgeRegistry(chain), bank, lot_uri)
    except FinanceError as exc:
        # Kept outside the refused transaction: the attempt itself is worth a record.
        if exc.code == FinanceErrorCode.DOUBLE_PLEDGE and credit.raise_flag(
            conn, "double_pledge", f"{financier}: {exc.detail}", lot_uri=lot_uri
        ):
            journal.write(conn, financier, "double_pledge_refused", lot_uri, {"detail": exc.detail})
        raise


def _pledge(
    conn: Conn, journal: Journal, registry: PledgeRegistry, bank: registry_store.Org, lot_uri: str
) -> Pledged:
    financier = bank.slug
    with conn.transaction():
        state, product = _lot_owner(conn, lot_uri)
        line = _line_between(conn, bank.id, product.owner_org_id)
        if state.custody != "warehouse" or not goods.is_supervised(conn, bank.id, state.location):
            raise FinanceError(
                FinanceErrorCode.NOT_IN_SUPERVISED_WAREHOUSE,
                f"{lot_uri} is not in a warehouse {financier} supervises",
            )
        existing = credit.live_pledge(conn, lot_uri)
        if existing is not None and existing.line_id == line.id:
            raise FinanceError(
                FinanceErrorCode.ALREADY_PLEDGED, f"{lot_uri} is already pledged to {financier}"
            )
        key = lot_key(lot_uri)
        # The contract decides, not this database: other banks' systems share only the chain.
        try:
            tx = registry.pledge(key, org_address(bank), state.last_inspection_hash or bytes(32))
        except ChainReverted as exc:
            if exc.error == "AlreadyPledged" and registry.pledgee(key) == checksum(
                org_address(bank)
            ):
                tx = b""  # an earlier attempt pledged on chain but did not commit here
            elif exc.error == "AlreadyPledged":
                _double_pledge(lot_uri, "PledgeRegistry refused: already pledged")
            else:
                raise
        # The units the lot holds now are pledged; later partial releases lower it.
        credit.add_pledge(conn, lot_uri, line.id, key, state.location or "", tx, state.quantity)
        # More collateral: the line's margin call shrinks, or is cured.
        valuation.revalue_line(conn, journal, line.id, lot_uri, reason="pledge", log_index=None)
        journal.write(
            conn,
            financier,
            "pledged",
            lot_uri,
            {"line": line.id, "lot_key": "0x" + key.hex(), "tx": "0x" + tx.hex()},
        )
    return Pledged(lot_uri, line.id, "0x" + key.hex(), "0x" + tx.hex())


def _double_pledge(lot_uri: str, detail: str) -> NoReturn:
    raise FinanceError(FinanceErrorCode.DOUBLE_PLEDGE, f"{lot_uri} is already pledged ({detail})")


def release(
    conn: Conn,
    journal: Journal,
    chain: Chain,
    financier: str,
    lot: str,
    quantity: int | None = None,
) -> Released:
    """Release a pledge, or `quantity` of its units (a partial release: the pledge stays on
    chain and covers fewer units). Refused while what stays pledged would not cover the loans
    the lot secures at the line's advance rate (all of them, for a full release)."""
    lot_uri = canonical_lot(lot)
    bank = _org(conn, financier, "financier")
    if quantity is not None and (isinstance(quantity, bool) or quantity <= 0):
        raise FinanceError(
            FinanceErrorCode.INVALID_INPUT, f"release a positive number of units, not {quantity}"
        )
    with conn.transaction():
        live = credit.live_pledge(conn, lot_uri)
        # The line's lock serialises a release with an offer's acceptance on the same line:
        # no loan is drawn on a lot between the check below and the release.
        line = credit.get_line(conn, live.line_id, for_update=True) if live else None
        if live is None or line is None or line.financier_org_id != bank.id:
            raise FinanceError(
                FinanceErrorCode.NOT_PLEDGED, f"{lot_uri} is not pledged to {financier}"
            )
        if quantity is not None and quantity > live.quantity:
            raise FinanceError(
                FinanceErrorCode.INVALID_INPUT,
                f"{lot_uri} has {live.quantity} units pledged, fewer than {quantity}",
            )
        if quantity is not None and quantity < live.quantity:
            return _release_part(conn, journal, financier, line, live, quantity)
        secured = credit.exposure_on_lot(conn, lot_uri, line.currency)
        if secured:
            raise FinanceError(
                FinanceErrorCode.LOT_SECURES_LOANS,
                f"{lot_uri} still secures {Money(secured, line.currency).format()} of loans:"
                " repay them first",
            )
        try:
            tx = PledgeRegistry(chain).release(live.lot_key)
        except ChainReverted as exc:
            if exc.error != "NotPledged":
                raise
            tx = b""  # released on chain by an earlier attempt that did not commit here
        credit.release_pledge(conn, lot_uri, tx)
        journal.write(
            conn, financier, "released", lot_uri, {"line": line.id, "tx": "0x" + tx.hex()}
        )
    return Released(lot_uri, line.id, "0x" + tx.hex(), 0)


def _release_part(
    conn: Conn, journal: Journal, financier: str, line: Line, live: credit.Pledge, quantity: int
) -> Released:
    """Release `quantity` of a pledge's units, if the rest still covers the lot's loans."""
    lot_uri = live.lot_uri
    secured = credit.exposure_on_lot(conn, lot_uri, line.currency)
    remaining = live.quantity - quantity
    state = valuation.lot_state(conn, lot_uri, line.financier_org_id, line.currency)
    if secured and state is not None:
        policy = valuation.policy(conn, line.financier_org_id, state.category)
        kept = replace(state, quantity=min(state.quantity, remaining))
        covers = credit_limit(collateral_value(kept, policy), policy)
        if covers.minor < secured:
            raise FinanceError(
                FinanceErrorCode.LOT_SECURES_LOANS,
                f"{lot_uri} secures {Money(secured, line.currency).format()} of loans; the"
                f" {remaining} units left pledged would lend only {covers.format()}",
            )
    credit.reduce_pledge(conn, lot_uri, quantity)
    journal.write(
        conn,
        financier,
        "partially_released",
        lot_uri,
        {"line": line.id, "units": quantity, "still_pledged": remaining},
    )
    # Less collateral: the line's margin call grows, or opens.
    valuation.revalue_line(
        conn, journal, line.id, lot_uri, reason="partial_release", log_index=None
    )
    return Released(lot_uri, line.id, "", remaining)


# --- applications ----------------------------------------------------------------------------


def apply(
    conn: Conn,
    journal: Journal,
    borrower: str,
    financier: str,
    lot: str,
    amount: str,
) -> DecisionOutcome:
    """A financing application against the applicant's pledged lot, decided now. An approval,
    full or partial, is an offer: nothing is drawn until the borrower accepts it
    (`accept_offer`) before it expires (the policy's offer validity). A referral waits in the
    financier's review queue (`review`); above the LTV cap, a guarantor's guarantee
    (`guarantee`) is what lets the financier approve it, never a flag the borrower sets."""
    lot_uri = canonical_lot(lot)
    client = _org(conn, borrower)
    bank = registry_store.get_org(conn, financier)
    with conn.transaction():
        # A slug nobody holds, an org that lends nothing and a bank with no line to the
        # applicant answer alike (no_line), so an applicant cannot sort slugs by what they are.
        line = _line_between(
            conn, bank.id if bank is not None and bank.role == "financier" else None, client.id
        )
        _refuse_in_run_off(conn, line.financier_org_id, "take a new application")
        requested = _money(amount, line.currency)
        judged = _decide(conn, line, client, financier, lot_uri, requested, guarantor=False)
        decision = judged.decision
        recorded = credit.record_decision(
            conn,
            line.id,
            lot_uri,
            requested.minor,
            False,
            kind=str(decision.kind),
            approved_minor=decision.approved_amount.minor,
            reasons=[str(r) for r in decision.reasons],
            evidence=[digest_from_hash_id(h) for h in decision.evidence],
            collateral_minor=decision.collateral_value.minor,
        )
        return _decided(conn, journal, borrower, line, lot_uri, judged, recorded, {})


def _decided(
    conn: Conn,
    journal: Journal,
    actor: str,
    line: Line,
    lot_uri: str,
    judged: _Judged,
    recorded: credit.RecordedDecision,
    extra: dict[str, object],
    annual_rate: Decimal | None = None,
) -> DecisionOutcome:
    """A recorded decision's offer (when it approves) and journal entry; what the caller sees.
    `annual_rate`: the rate the financier set for this loan (None: its policy's)."""
    decision = judged.decision
    reasons = [str(r) for r in decision.reasons]
    offer = None
    if decision.kind in (DecisionKind.APPROVE, DecisionKind.PARTIAL):
        validity = valuation.policy(conn, line.financier_org_id, judged.category).offer_validity
        offer = credit.add_offer(
            conn,
            recorded,
            line.id,
            lot_uri,
            decision.approved_amount.minor,
            line.currency,
            datetime.now(UTC) + validity,
            annual_rate,
        )
    journal.write(
        conn,
        actor,
        f"decision_{decision.kind}",
        f"application:{recorded.application_id}",
        {
            "approved_minor": decision.approved_amount.minor,
            "reasons": reasons,
            "offer": offer,
            "decision": str(recorded.decision_id),
            **extra,
        },
        [digest_from_hash_id(h) for h in decision.evidence],
    )
    return DecisionOutcome(
        application=recorded.application_id,
        decision=str(decision.kind),
        approved=decision.approved_amount.format(),
        approved_minor=decision.approved_amount.minor,
        reasons=reasons,
        evidence=list(decision.evidence),
        collateral_value=decision.collateral_value.format(),
        ltv=str(decision.ltv) if decision.ltv is not None else None,
        offer_id=offer,
    )


@dataclass(frozen=True)
class _Judged:
    """The rules' decision, with what a review needs to weigh a guarantee against it."""

    decision: Decision
    category: str
    exposure: Money
    ltv_cap: Rate


def _decide(
    conn: Conn,
    line: Line,
    client: registry_store.Org,
    financier: str,
    lot_uri: str,
    requested: Money,
    *,
    guarantor: bool,
) -> _Judged:
    """The rules' decision on lending `requested` against the lot now."""
    state = valuation.lot_state(conn, lot_uri, line.financier_org_id, line.currency)
    if state is None:
        raise FinanceError(
            FinanceErrorCode.UNKNOWN_LOT, f"{lot_uri} has no events or no registered product"
        )
    _securing(conn, state.gtin, lot_uri, line, client, financier)
    # What the lot already secures, on every line (one live pledge: in practice this one).
    exposure = Money(credit.exposure_on_lot(conn, lot_uri, line.currency), line.currency)
    policy = valuation.policy(conn, line.financier_org_id, state.category)
    decision = decide(
        Application(requested, guarantor, exposure),
        state,
        policy,
        CreditLine(
            str(line.financier_org_id),
            Money(line.limit_minor, line.currency),
            Money(line.drawn_minor, line.currency),
            LineStatus(line.status),
        ),
        datetime.now(UTC),
    )
    return _Judged(decision, state.category, exposure, policy.ltv_cap)


@dataclass(frozen=True)
class Accepted:
    """An offer accepted: the loan it drew."""

    offer_id: int
    loan_id: int
    line: int
    lot: str
    amount: str
    amount_minor: int
    currency: str


def accept_offer(conn: Conn, journal: Journal, borrower: str, offer_id: int) -> Accepted:
    """The borrower accepts an offer: the application is decided again on the goods and the
    line as they are now, and the offered amount is drawn as a loan only if they still support
    all of it. Else the offer is recorded expired (`offer_expired`) or withdrawn
    (`offer_withdrawn`, with the reasons) and the acceptance refused."""
    client = _org(conn, borrower)
    with conn.transaction():
        offer = credit.get_offer(conn, offer_id, for_update=True)
        line = credit.get_line(conn, offer.line_id, for_update=True) if offer else None
        if offer is None or line is None or line.borrower_org_id != client.id:
            raise FinanceError(
                FinanceErrorCode.UNKNOWN_OFFER, f"{borrower} has no offer {offer_id}"
            )
        if offer.state != "open":
            raise FinanceError(
                FinanceErrorCode.OFFER_NOT_OPEN, f"offer {offer_id} is {offer.state}"
            )
        refused = _offer_refused(conn, line, client, offer)
        if refused is None:
            amount = Money(offer.amount_minor, offer.currency)
            credit.move_money(conn, line.id, "drawdown", amount.minor, offer.decision_id)
            _, product = _lot_owner(conn, offer.lot_uri)
            terms = repayments.terms_at_drawdown(conn, line.financier_org_id, product.category)
            if offer.annual_rate is not None:  # priced for this loan by the financier
                terms = replace(terms, annual_rate=offer.annual_rate)
            loan = credit.add_loan(
                conn,
                line.id,
                offer.lot_uri,
                offer.decision_id,
                amount.minor,
                amount.currency,
                terms,
            )
            credit.settle_offer(conn, offer.id, "accepted", loan.id)
            journal.write(
                conn,
                borrower,
                "offer_accepted",
                f"offer:{offer.id}",
                {
                    "loan": loan.id,
                    "amount_minor": amount.minor,
                    "line": line.id,
                    "drawn_on": loan.drawn_on.isoformat(),
                    "terms": {k: str(v) for k, v in asdict(terms).items()},
                },
            )
        else:
            code, reasons = refused
            state = "expired" if code is FinanceErrorCode.OFFER_EXPIRED else "withdrawn"
            credit.settle_offer(conn, offer.id, state)
            journal.write(
                conn, borrower, f"offer_{state}", f"offer:{offer.id}", {"reasons": reasons}
            )
    if refused is not None:  # raised once what happened to the offer is committed
        code, reasons = refused
        raise FinanceError(code, f"offer {offer_id}: {', '.join(reasons)}")
    return Accepted(
        offer.id, loan.id, line.id, offer.lot_uri, amount.format(), amount.minor, amount.currency
    )


def _offer_refused(
    conn: Conn, line: Line, client: registry_store.Org, offer: credit.Offer
) -> tuple[FinanceErrorCode, list[str]] | None:
    """Why an open offer can no longer be accepted, or None: expired, or the application
    decided again now (goods, flags, line, exposure as they are) no longer approves all of it."""
    if offer.expires_at <= datetime.now(UTC):
        return FinanceErrorCode.OFFER_EXPIRED, ["expired"]
    if programme_store.run_off_covering(conn, line.financier_org_id) is not None:
        return FinanceErrorCode.PROGRAMME_IN_RUN_OFF, ["programme_in_run_off"]
    amount = Money(offer.amount_minor, offer.currency)
    financier = registry_store.slug_of(conn, line.financier_org_id) or "the financier"
    decision = _decide_guaranteed(
        conn, line, client, financier, offer.lot_uri, amount, offer.guaranteed_minor
    ).decision
    if decision.kind != DecisionKind.APPROVE or decision.approved_amount != amount:
        return FinanceErrorCode.OFFER_WITHDRAWN, [str(r) for r in decision.reasons]
    return None


# --- the review queue and guarantees --------------------------------------------------------


@dataclass(frozen=True)
class Guaranteed:
    application: int
    guarantor: str
    amount: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Invited:
    """A guarantor the borrower invited to guarantee one of its applications."""

    application: int
    guarantor: str


def invite_guarantor(
    conn: Conn, journal: Journal, borrower: str, application_id: int, guarantor: str
) -> Invited:
    """The applicant names a guarantor for its waiting application: only a guarantor so
    invited may guarantee it (and learn that it exists)."""
    client = _org(conn, borrower)
    with conn.transaction():
        application = credit.get_application(conn, application_id, for_update=True)
        line = credit.get_line(conn, application.line_id) if application is not None else None
        if application is None or line is None or line.borrower_org_id != client.id:
            raise FinanceError(
                FinanceErrorCode.UNKNOWN_APPLICATION, f"no application {application_id}"
            )
        _pending_application(conn, application_id)
        # Only then the guarantor, and one answer for a slug nobody holds and an org that
        # guarantees nothing: an applicant cannot sort slugs by what they are.
        org = registry_store.get_org(conn, guarantor)
        if org is None or org.role != "guarantor":
            raise FinanceError(FinanceErrorCode.UNKNOWN_ORG, f"no guarantor {guarantor!r}")
        credit.invite_guarantor(conn, application_id, org.id)
        journal.write(
            conn,
            borrower,
            "guarantor_invited",
            f"application:{application_id}",
            {"guarantor": guarantor},
        )
    return Invited(application_id, guarantor)


def guarantee(
    conn: Conn, journal: Journal, guarantor: str, application_id: int, amount: str
) -> Guaranteed:
    """An org with role guarantor guarantees a named amount of a referred application, with
    its own key: what lets its financier approve a loan above the LTV cap. Only a guarantor
    the borrower invited for it may; to any other, the application does not exist."""
    org = _org(conn, guarantor, "guarantor")
    with conn.transaction():
        if not credit.is_invited(conn, application_id, org.id):
            raise FinanceError(
                FinanceErrorCode.UNKNOWN_APPLICATION, f"no application {application_id}"
            )
        application = _pending_application(conn, application_id)
        line = credit.get_line(conn, application.line_id)
        assert line is not None  # an application refers to its line
        money = _money(amount, line.currency)
        if not money.is_positive():
            raise FinanceError(FinanceErrorCode.INVALID_AMOUNT, "a guarantee is positive")
        credit.add_guarantee(conn, application_id, org.id, money.minor, money.currency)
        journal.write(
            conn,
            guarantor,
            "guarantee_given",
            f"application:{application_id}",
            {"amount_minor": money.minor, "currency": money.currency},
        )
    return Guaranteed(application_id, guarantor, money.format(), money.minor, money.currency)


def _pending_application(conn: Conn, application_id: int) -> credit.ApplicationRow:
    application = credit.get_application(conn, application_id, for_update=True)
    if application is None:
        raise FinanceError(FinanceErrorCode.UNKNOWN_APPLICATION, f"no application {application_id}")
    if application.review_state != "pending":
        raise FinanceError(
            FinanceErrorCode.NOT_IN_REVIEW,
            f"application {application_id} is not waiting for review"
            f" ({application.review_state or 'decided at once'})",
        )
    return application


@dataclass(frozen=True)
class Reviewed:
    application: int
    review: Literal["approved", "declined"]
    reason: str
    decision: DecisionOutcome | None  # approved: the decision taken again, with its offer


def review(
    conn: Conn,
    journal: Journal,
    financier: str,
    application_id: int,
    approve: bool,
    reason: str,
    rate: str | None = None,
) -> Reviewed:
    """The financier decides a referred application, with a reason. Declining ends it.
    Approving decides it again now — with a guarantee that covers what the loan asks above the
    LTV cap, when one was given — and only a decision that approves (fully or in part) makes
    an offer; anything else is refused `review_refused` with the rules' reasons, and the
    application stays in the queue. An approval may set this loan's annual `rate` (else the
    policy's applies when it is drawn)."""
    bank = _org(conn, financier, "financier")
    priced = _parsed(lambda: Rate.of(rate)).value if rate is not None else None
    text = reason.strip()
    if not text:
        raise FinanceError(FinanceErrorCode.INVALID_INPUT, "a review gives its reason")
    with conn.transaction():
        found = credit.get_application(conn, application_id, for_update=True)
        line = credit.get_line(conn, found.line_id, for_update=True) if found else None
        if line is None or line.financier_org_id != bank.id:
            # Whether another bank's application exists is not this financier's to learn.
            raise FinanceError(
                FinanceErrorCode.UNKNOWN_APPLICATION,
                f"{financier} has no application {application_id}",
            )
        application = _pending_application(conn, application_id)
        if not approve:
            credit.set_review(conn, application_id, "declined", text)
            journal.write(
                conn,
                financier,
                "review_declined",
                f"application:{application_id}",
                {"reason": text},
            )
            return Reviewed(application_id, "declined", text, None)
        _refuse_in_run_off(conn, line.financier_org_id, "approve an application")
        client_slug = registry_store.slug_of(conn, line.borrower_org_id)
        assert client_slug is not None  # lines refer to registered orgs
        client = _org(conn, client_slug)
        requested = Money(application.requested_minor, line.currency)
        judged = _decide_guaranteed(
            conn,
            line,
            client,
            financier,
            application.lot_uri,
            requested,
            application.guaranteed_minor,
        )
        decision = judged.decision
        if decision.kind not in (DecisionKind.APPROVE, DecisionKind.PARTIAL):
            refused = ", ".join(str(r) for r in decision.reasons)
        else:
            refused = ""
            recorded = credit.add_decision(
                conn,
                application_id,
                kind=str(decision.kind),
                approved_minor=decision.approved_amount.minor,
                reasons=[str(r) for r in decision.reasons],
                evidence=[digest_from_hash_id(h) for h in decision.evidence],
                collateral_minor=decision.collateral_value.minor,
            )
            credit.set_review(conn, application_id, "approved", text)
            outcome = _decided(
                conn,
                journal,
                financier,
                line,
                application.lot_uri,
                judged,
                recorded,
                {
                    "review": text,
                    "guarantor": application.guarantor,
                    **({"annual_rate": str(priced)} if priced is not None else {}),
                },
                priced,
            )
    if refused:  # outside the transaction: nothing of it was kept, the application waits
        raise FinanceError(
            FinanceErrorCode.REVIEW_REFUSED,
            f"application {application_id} cannot be approved now: {refused}",
        )
    return Reviewed(application_id, "approved", text, outcome)


def _decide_guaranteed(
    conn: Conn,
    line: Line,
    client: registry_store.Org,
    financier: str,
    lot_uri: str,
    requested: Money,
    guaranteed_minor: int | None,
) -> _Judged:
    """The rules' decision, with the guarantor's guarantee where one covers what the loan asks
    above the LTV cap (judged now: at review, and again when the offer is accepted)."""
    judged = _decide(conn, line, client, financier, lot_uri, requested, guarantor=False)
    if Reason.GUARANTOR_REQUIRED not in judged.decision.reasons or not guaranteed_minor:
        return judged
    at_cap = judged.decision.collateral_value.times_rate(judged.ltv_cap, Rounding.DOWN)
    above = judged.exposure + requested - at_cap
    if guaranteed_minor < above.minor:
        return judged
    return _decide(conn, line, client, financier, lot_uri, requested, guarantor=True)


def reviews(conn: Conn, financier: str) -> list[credit.ApplicationRow]:
    """The financier's review queue: referred applications on its lines, oldest first."""
    return credit.pending_reviews(conn, _org(conn, financier, "financier").id)


# --- alerts ----------------------------------------------------------------------------------


def alerts(
    conn: Conn, financier: str, after: int = 0, limit: int = 100
) -> list[alert_store.AlertRow]:
    """The financier's alerts after the cursor `after` (an alert id), oldest first."""
    bank = _org(conn, financier, "financier")
    return alert_store.alerts_after(conn, bank.id, max(after, 0), min(max(limit, 1), 1000))


@dataclass(frozen=True)
class WebhookSet:
    """Where alerts go now, and the secret their signatures are made with (shown once)."""

    url: str
    secret: str


def set_webhook(conn: Conn, journal: Journal, financier: str, url: str) -> WebhookSet:
    """Alerts of this financier from now on are also pushed to `url` (http or https), each
    signed with a new secret returned here once."""
    bank = _org(conn, financier, "financier")
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 - raises ValueError on a port that is not one
    except ValueError:  # an unparseable host or port
        parsed = None
    usable = (
        parsed is not None
        and url.isascii()
        and url.isprintable()
        and " " not in url
        and len(url) <= 2000
        and parsed.scheme in ("http", "https")
        and bool(parsed.hostname)
    )
    if not usable:
        raise FinanceError(FinanceErrorCode.INVALID_INPUT, "a webhook is an http(s) URL")
    secret = secrets.token_urlsafe(32)
    with conn.transaction():
        alert_store.set_webhook(conn, bank.id, url, secret)
        journal.write(conn, financier, "webhook_set", f"org:{financier}", {"url": url})
    return WebhookSet(url, secret)


def offers(conn: Conn, org: str) -> list[credit.Offer]:
    """The offers an org sees: as financier, on its lines; as borrower, its own."""
    return credit.offers_of_org(conn, _org(conn, org).id)


def _securing(
    conn: Conn, gtin: str, lot_uri: str, line: Line, client: registry_store.Org, financier: str
) -> None:
    """Money is lent only against goods that are the applicant's (by their GS1 Company Prefix,
    as evidence authority has it) and pledged, live, on the applicant's line."""
    if registry_store.authority_parties(conn).owner_of(gtin) != client.slug:
        raise FinanceError(
            FinanceErrorCode.NOT_YOUR_GOODS,
            f"the goods of {lot_uri} are not {client.slug}'s (GS1 Company Prefix)",
        )
    pledged = credit.live_pledge(conn, lot_uri)
    if pledged is None or pledged.line_id != line.id:
        raise FinanceError(
            FinanceErrorCode.NOT_PLEDGED,
            f"{lot_uri} is not pledged to {financier} on {client.slug}'s line:"
            " financing is against pledged lots only",
        )


# The regulator reads every line, loan, margin call, flag and journal entry, and writes none.
SUPERVISOR_ROLE = "regulator"


def lines(conn: Conn, org: str) -> list[Line]:
    """The lines an org sees: as financier, those it opened; as borrower, its own; the
    regulator, every line."""
    seen = _org(conn, org)
    return credit.lines_of_party(conn, None if seen.role == SUPERVISOR_ROLE else seen.id)


def loans(conn: Conn, org: str) -> list[credit.Loan]:
    """The loans an org sees: as financier, those on its lines; as borrower, its own; the
    regulator, every loan."""
    seen = _org(conn, org)
    return credit.loans_of_org(conn, None if seen.role == SUPERVISOR_ROLE else seen.id)


def decisions(conn: Conn, org: str) -> list[credit.DecisionRow]:
    """The financing decisions an org sees: on its lines as financier or borrower; the
    regulator, every one (newest first, the latest 1000)."""
    seen = _org(conn, org)
    return credit.decisions_seen_by(conn, None if seen.role == SUPERVISOR_ROLE else seen.id)


def margin_calls(conn: Conn, org: str) -> list[credit.MarginCall]:
    """The margin calls an org sees: as financier, on its lines; as borrower, on its own; the
    regulator, every call."""
    seen = _org(conn, org)
    return credit.margin_calls_of_org(conn, None if seen.role == SUPERVISOR_ROLE else seen.id)


def loan(conn: Conn, org: str, loan_id: int) -> credit.Loan:
    """One loan, to its financier, its borrower or the regulator only (anyone else:
    unknown_loan)."""
    seen = _org(conn, org)
    found = credit.get_loan(conn, loan_id)
    line = credit.get_line(conn, found.line_id) if found is not None else None
    if (
        found is None
        or line is None
        or (
            seen.role != SUPERVISOR_ROLE
            and seen.id not in (line.financier_org_id, line.borrower_org_id)
        )
    ):
        raise FinanceError(FinanceErrorCode.UNKNOWN_LOAN, f"no loan {loan_id} of {org}")
    return found


# --- goods status ----------------------------------------------------------------------------


# How far back a lot's sensor history goes when neither the caller nor the lot's arrival says.
SENSOR_HISTORY_DEFAULT_SPAN = timedelta(hours=24)


@dataclass(frozen=True)
class SensorHistory:
    """A metric at the site holding a lot, minute by minute (no site: no minutes)."""

    lot: str
    site: str | None
    metric: str
    since: datetime
    until: datetime
    minutes: list[goods.SiteMinute]


def sensor_history(
    conn: Conn,
    lot_uri: str,
    metric: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> SensorHistory | None:
    """The latest `limit` minutes of `metric` at the site holding the lot (from its site's
    bound devices), from `since` (by default when the lot arrived there, else 24 hours before
    `until`) to `until` (by default now); None for a lot that does not exist."""
    row = attribution.get_lot(conn, lot_uri)
    if row is None:
        return None
    until = until or datetime.now(UTC)
    start = since or row.held_since or until - SENSOR_HISTORY_DEFAULT_SPAN
    try:
        gln = _site_gln(row.location) if row.location else None
    except ValueError:  # not a site's GLN (the worker stores checked ones): no site, no minutes
        gln = None
    minutes = goods.site_minutes(conn, gln, metric, start, until, limit) if gln else []
    return SensorHistory(lot_uri, gln, metric, start, until, minutes)


def lot_status(conn: Conn, lot: str, financier: str | None = None) -> LotStatus:
    """Goods status: quantity, place, custody, inspection, pledge, flags, value, evidence."""
    lot_uri = canonical_lot(lot)
    row, product = _lot_owner(conn, lot_uri)
    bank = _org(conn, financier, "financier") if financier else None
    state = valuation.lot_state(conn, lot_uri, bank.id if bank else None)
    assert state is not None
    judged = revalue(
        state,
        valuation.policy(conn, bank.id, product.category) if bank else Policy(),
        Money.zero(product.currency),
        now=datetime.now(UTC),
    )
    live = credit.live_pledge(conn, lot_uri)
    return LotStatus(
        lot=lot_uri,
        quantity=row.quantity,
        location=row.location,
        custody=row.custody,
        best_before=row.best_before,
        last_inspection=InspectionStatus(row.last_inspection_disposition, row.last_inspection_time),
        pledge=(
            PledgeStatus(live.line_id, "0x" + live.lot_key.hex(), live.quantity) if live else None
        ),
        risk_flags=sorted(state.risk_flags),
        collateral_value=judged.value.format(),
        collateral_value_minor=judged.value.minor,
        evidence=_evidence(conn, lot_uri),
    )


def _evidence(conn: Conn, lot_uri: str) -> list[EvidenceStatus]:
    """Every event applied to the lot, in log order, with its origin and evidence status."""
    rows = goods.lot_evidence(conn, lot_uri)
    stored = attestation_store.attestations_for(conn, [row.event_hash for row in rows])
    out = []
    for row in rows:
        recorder = recorder_attestation(
            row.recorder_org,
            row.recorder_device,
            row.recorder_topic,
            row.recorder_signed,
            row.recorder_received_at,
        )
        first, others = recorder_and_others([*stored.get(row.event_hash, []), recorder])
        assert first is not None  # the recorder at least
        out.append(
            EvidenceStatus(
                event_hash=hash_id_from_digest(row.event_hash),
                anchored=row.anchored,
                recorded_by=Recorder(first.org, first.device),
                signed=first.signed,
                attested_by=[Attester(other.org, other.device, other.signed) for other in others],
                evidence="counts" if row.counts else "unattested",
                reason=None if row.counts else row.reason,
            )
        )
    return out
