"""Request and response models of the HTTP API (the OpenAPI document is built from these)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import BaseModel, Field, create_model

from epcis.authority import Reason
from epcis.capture import IndexColumns
from ledger.provenance import PUBLIC_COLUMNS


class ProofBundle(BaseModel):
    """Proves an event's inclusion in an anchored batch (design.md, "Proof bundle")."""

    version: int
    status: Literal["anchored", "pending"]
    event_hash: str = Field(description="ni:///sha-256;…?ver=CBV2.0")
    log_index: int | None = Field(None, description="the event's position in the log")
    leaf_index: int | None = Field(None, description="position in the batch's tree")
    tree_size: int | None = None
    audit_path: list[str] | None = Field(None, description="RFC 9162 inclusion path, leaf first")
    root: str | None = None
    batch_id: int | None = None
    first_index: int | None = None
    chain_id: int | None = None
    contract: str | None = Field(None, description="the TraceAnchor contract")
    tx_hash: str | None = None
    block_number: int | None = None
    current_event_hash: str | None = Field(
        None,
        description="the event's id now, when the log holds it under the id of an earlier hash"
        " rule (`event_hash`, from which the leaf was made); docs/epcis-hash.md",
    )


class CheckStep(BaseModel):
    side: Literal["leaf", "left", "right"] = Field(
        description="leaf: SHA-256(0x00 || event hash); left/right: where the sibling joins"
    )
    sibling: str | None
    hash: str


class EthCall(BaseModel):
    to: str = Field(description="the TraceAnchor")
    data: str = Field(description="batch(uint64) of the bundle's batch_id")


class CheckSteps(BaseModel):
    steps: list[CheckStep]
    leads_to_root: bool
    eth_call: EthCall
    expect: str


class Verification(BaseModel):
    state: Literal["anchored", "pending", "failed"]
    batch_id: int | None = None
    block_number: int | None = None
    tx_hash: str | None = None
    proof_url: str
    proof: ProofBundle | None = Field(
        None, description="the proof bundle; absent for a failed event"
    )
    check: CheckSteps | None = Field(
        None, description="the check the page's script does in the browser, spelled out"
    )


class Place(BaseModel):
    gln: str
    name: str | None = Field(description="the registered site's name; null if unregistered")
    city: str | None = Field(None, description="the registered site's city, when given")


class SensorReading(BaseModel):
    type: str | None = None
    value: float | int | None = None
    uom: str | None = None


class Recorder(BaseModel):
    org: str = Field(description="the org (slug) whose submission of the event came first")
    device: str | None = Field(description="its device; null when submitted over the API")


class Attester(BaseModel):
    org: str
    device: str | None = Field(description="null when submitted over the API")
    signed: bool


class ErrorDeclarationPublic(BaseModel):
    """An event's error declaration as pages show it."""

    declared_by: str = Field(description="the declaring organisation (slug)")
    declaration_time: datetime
    reason: str | None = Field(description="CBV error reason (did_not_occur, incorrect_data)")
    corrective_event_ids: list[str]


def _event_public() -> type[BaseModel]:
    """The public event: its hash, the index columns a page shows (named and typed as
    IndexColumns, the one definition of the projection), its sensor readings, verification
    and origin (who recorded it, who else attested it, whether it counts as evidence)."""
    types = get_type_hints(IndexColumns)
    fields: dict[str, Any] = {
        "event_hash": (str, ...),
        **{name: (types[name], ...) for name in PUBLIC_COLUMNS},
        "place": (Place | None, Field(description="the site of the event (bizLocation)")),
        "sensor_readings": (list[SensorReading], ...),
        "verification": (Verification, ...),
        "recorded_by": (
            Recorder | None,
            Field(description="the earliest attestation; null if nobody attested the event"),
        ),
        "signed": (bool, Field(description="whether the recorder signed its submission")),
        "attested_by": (
            list[Attester],
            Field(description="everyone else who submitted the same event"),
        ),
        "evidence": (
            Literal["counts", "unattested", "declared_erroneous"],
            Field(
                description="counts: attested by the party the authority rules name for this"
                " fact; unattested: stored, but no such party attested it; declared_erroneous:"
                " its party declared it erroneous (EPCIS errorDeclaration), void evidence"
            ),
        ),
        "error_declaration": (
            ErrorDeclarationPublic | None,
            Field(None, description="who declared the event erroneous, when and why"),
        ),
        "reason": (
            Reason | None,
            Field(None, description="why the event does not count (only when unattested)"),
        ),
    }
    return create_model("EventPublic", **fields)


if TYPE_CHECKING:  # mypy cannot follow a model built at run time
    EventPublic = BaseModel
else:
    EventPublic = _event_public()


class ProductPublic(BaseModel):
    gtin: str
    name: str | None = None
    lot: str | None = None
    serial: str | None = None
    digital_link: str
    producer: str | None = Field(None, description="the org holding the GTIN's company prefix")
    producer_name: str | None = Field(
        None, description="that org's registered name (its slug when it registered none)"
    )
    best_before: str | None = Field(None, description="from the commissioning event's ILMD")
    category: str | None = None
    min_temp_c: float | None = None
    max_temp_c: float | None = None


class StayPublic(BaseModel):
    gln: str
    name: str | None
    since: datetime
    until: datetime = Field(description="when the goods left, or the time of the page")


class TemperatureBucketPublic(BaseModel):
    gln: str
    start: datetime
    low: float
    high: float
    mean: float


class ExcursionPublic(BaseModel):
    gln: str
    name: str | None
    start: datetime
    end: datetime
    minutes: int
    extreme: float = Field(description="the reading furthest outside the range, °C")


class ColdChainPublic(BaseModel):
    min_c: float | None
    max_c: float | None
    bucket_minutes: int
    open: bool = Field(description="the goods are still at a site")
    stays: list[StayPublic]
    buckets: list[TemperatureBucketPublic]
    excursions: list[ExcursionPublic]


class ProvenancePublic(BaseModel):
    product: ProductPublic
    events: list[EventPublic]
    verified: int = Field(description="events anchored on chain and intact")
    pending: int
    failed: int
    cold_chain: ColdChainPublic | None = Field(
        None, description="for goods with a temperature range: readings at the sites they were"
    )
    trusted_anchors: list[str] = Field(
        default_factory=list, description="CHAIN_ID:0xADDRESS of the TraceAnchors trusted here"
    )


class CaptureItem(BaseModel):
    index: int
    event_hash: str
    status: Literal["accepted", "duplicate", "error_declared"] = Field(
        description="accepted: stored; duplicate: stored before, this copy is an attestation;"
        " error_declared: its errorDeclaration is recorded (or was, the same, before)"
    )


class CaptureRefusal(BaseModel):
    index: int
    reason: str
    detail: str


class CaptureResultPublic(BaseModel):
    accepted: list[CaptureItem]
    rejected: list[CaptureRefusal]


class EventsPage(BaseModel):
    events: list[dict[str, Any]]
    # ingest order: the last event's position; under orderBy: an opaque page token
    next_cursor: int | str | None


class VerifyResult(BaseModel):
    valid: bool
    reasons: list[str]


class TrustedAnchorPublic(BaseModel):
    chain_id: int
    contract: str


class DeploymentPublic(BaseModel):
    """The contracts in use, and the TraceAnchors proofs are checked against."""

    chain_id: int
    trace_anchor: str
    pledge_registry: str
    deployed_block: int
    genesis_hash: str
    trusted_anchors: list[TrustedAnchorPublic]


class TraceStep(BaseModel):
    event_hash: str
    event_time: datetime
    biz_step: str | None
    biz_location: str | None
    parties: list[str]
    items: list[str]


class TraceResult(BaseModel):
    lot: str
    direction: Literal["forward", "backward"]
    steps: list[TraceStep]


class AuditFindingPublic(BaseModel):
    kind: str
    detail: str


class AuditResult(BaseModel):
    clean: bool
    events_checked: int
    batches_checked: int
    findings: list[AuditFindingPublic]


class RiskFlag(BaseModel):
    id: int
    lot: str | None
    line_id: int | None
    kind: str
    detail: str
    raised_at: datetime


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]


class ProductCreate(BaseModel):
    gtin: str = Field(pattern=r"^\d{14}$")
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    unit_price: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$", description="e.g. '12.50'")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    min_temp_c: str | None = Field(default=None, pattern=r"^-?\d{1,3}(\.\d{1,2})?$")
    max_temp_c: str | None = Field(default=None, pattern=r"^-?\d{1,3}(\.\d{1,2})?$")
    shelf_life_days: int | None = Field(default=None, gt=0, le=36500)


class DeviceCreate(BaseModel):
    device_id: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    unsigned: bool = False
    sites: list[str] = Field(
        default=[],
        max_length=64,
        description="sites (GLN: 13 digits, Digital Link or sgln URN) your org operates and the"
        " device records at",
    )


class DevicePublic(BaseModel):
    org: str
    device: str
    address: str | None
    unsigned: bool
    sites: list[str] = Field(description="the sites (13-digit GLNs) bound in this request")
    publish_to: str


class LineCreate(BaseModel):
    borrower: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    limit: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class LinePublic(BaseModel):
    id: int
    financier_org_id: int
    borrower_org_id: int
    currency: str
    limit_minor: int
    drawn_minor: int
    status: Literal["active", "frozen", "closed"]


class Repayment(BaseModel):
    amount: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$")
    loan_id: int | None = Field(
        default=None, description="the loan to repay first; then the oldest loans of the line"
    )


class PriceUpdate(BaseModel):
    """A financier's unit price for a GTIN, from `valid_from` (RFC 3339; default now)."""

    unit_price: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    valid_from: datetime | None = None


class PricePublic(BaseModel):
    gtin: str
    unit_price_minor: int
    currency: str
    valid_from: datetime
    revalued_lines: list[int] = Field(
        default_factory=list, description="lines whose pledged lots this price revalued"
    )


class MarginCallPublic(BaseModel):
    """A line's call for cover: `amount_minor` is its shortfall now; `state` open, cured or
    escalated (past `due`, the line frozen)."""

    id: int
    line: int
    lot: str | None
    amount_minor: int
    currency: str
    state: Literal["open", "cured", "escalated"]
    reason: str
    raised_at: datetime
    due: datetime
    settled_at: datetime | None


class OfferPublic(BaseModel):
    """An approval the borrower may accept until `expires_at`."""

    id: int
    application_id: int
    line_id: int
    lot_uri: str
    amount_minor: int
    currency: str
    state: Literal["open", "accepted", "expired", "withdrawn"]
    made_at: datetime
    expires_at: datetime
    loan_id: int | None
    annual_rate: Decimal | None = Field(
        default=None, description="the rate set for this loan at approval (null: the policy's)"
    )


class AcceptedPublic(BaseModel):
    offer_id: int
    loan_id: int
    line: int
    lot: str
    amount: str
    amount_minor: int
    currency: str


class AlertPublic(BaseModel):
    """An alert: `kind` flag_raised, flag_cleared, margin_call_<state> or decision."""

    id: int
    kind: str
    line: int | None
    lot: str | None
    time: datetime
    detail: dict[str, Any]


class AlertPage(BaseModel):
    items: list[AlertPublic]
    next: int = Field(description="the cursor for the next page: pass it as `after`")


class WebhookCreate(BaseModel):
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://")


class WebhookPublic(BaseModel):
    url: str
    secret: str = Field(description="signs every alert (HMAC-SHA256); shown once")


class LoanPublic(BaseModel):
    """Money drawn on a line, secured by one pledged lot, on the terms of its drawdown
    (`outstanding_minor`: principal not yet repaid; all it owes is in its statement)."""

    id: int
    line_id: int
    lot_uri: str
    principal_minor: int
    outstanding_minor: int
    currency: str
    drawn_at: datetime
    drawn_on: date
    annual_rate: Decimal
    day_count: str
    schedule_kind: str
    instalment_count: int
    fee_rate: Decimal
    tenor_days: int
    grace_days: int
    penalty_rate: Decimal
    default_after_days: int


_RATE = r"^(0(\.\d{1,18})?|1(\.0{1,18})?|\d{1,3}(\.\d{1,16})?%)$"


class PolicyUpdate(BaseModel):
    """A financier's policy for a category; every term left out takes its default
    (docs/finance.md). Rates are fractions ("0.0365") or percentages ("3.65%")."""

    advance_rate: str | None = Field(default=None, pattern=_RATE)
    haircut: str | None = Field(default=None, pattern=_RATE)
    ltv_cap: str | None = Field(default=None, pattern=_RATE)
    breach_tolerance_s: int | None = Field(default=None, ge=0, le=2**31 - 1)
    inspection_freshness_s: int | None = Field(default=None, ge=1, le=2**31 - 1)
    receivable_advance_rate: str | None = Field(default=None, pattern=_RATE)
    cure_period_s: int | None = Field(default=None, ge=1, le=2**31 - 1)
    offer_validity_s: int | None = Field(default=None, ge=1, le=2**31 - 1)
    rate: str | None = Field(default=None, pattern=_RATE, description="annual interest rate")
    day_count: Literal["ACT/365F", "ACT/360"] | None = None
    schedule: Literal["bullet", "instalments"] | None = None
    instalments: int | None = Field(default=None, ge=1, le=3650)
    fee_rate: str | None = Field(default=None, pattern=_RATE)
    tenor_days: int | None = Field(default=None, ge=1, le=3650)
    grace_days: int | None = Field(default=None, ge=0, le=365)
    penalty_rate: str | None = Field(default=None, pattern=_RATE)
    default_after_days: int | None = Field(default=None, ge=1, le=3650)


class PolicyPublic(BaseModel):
    """A financier's policy for a category ('*': its default)."""

    category: str
    advance_rate: Decimal
    haircut: Decimal
    ltv_cap: Decimal
    breach_tolerance_s: int
    inspection_freshness_s: int
    receivable_advance_rate: Decimal
    cure_period_s: int
    offer_validity_s: int
    annual_rate: Decimal
    day_count: str
    schedule_kind: str
    instalment_count: int
    fee_rate: Decimal
    tenor_days: int
    grace_days: int
    penalty_rate: Decimal
    default_after_days: int


class LoanRepayment(BaseModel):
    """A repayment of one loan, at most what it owes today."""

    amount: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$")


class ComponentsPublic(BaseModel):
    """An amount split by what it is for, in minor units."""

    fees_minor: int
    penalty_minor: int
    interest_minor: int
    principal_minor: int
    total_minor: int


class InstalmentPublic(BaseModel):
    number: int
    due_on: date
    principal_minor: int


class NextDuePublic(BaseModel):
    """The next due date with something due, assuming no further payments."""

    on: date
    amount_minor: int
    principal_minor: int


class PaymentPublic(BaseModel):
    """A payment the loan received and how the waterfall split it."""

    paid_on: date
    source: Literal["borrower", "proceeds", "buyer"]
    amount_minor: int
    applied: ComponentsPublic
    unapplied_minor: int


class StatementPublic(BaseModel):
    """A loan as of a day, from its terms and payments alone (docs/finance.md, "Loan
    economics"); an `as_of` in the future projects accrual with no further payment."""

    loan: int
    currency: str
    as_of: date
    status: Literal["current", "overdue", "default", "repaid"]
    drawn_on: date
    maturity_on: date
    principal_minor: int
    fees_minor: int
    interest_accrued_minor: int
    penalty_accrued_minor: int
    paid: ComponentsPublic
    outstanding: ComponentsPublic
    outstanding_minor: int
    days_overdue: int
    overdue_principal_minor: int
    next_due: NextDuePublic | None
    unapplied_minor: int
    schedule: list[InstalmentPublic]
    payments: list[PaymentPublic]


class ApplicationCreate(BaseModel):
    """An application against your pledged lot. (A guarantee is the guarantor's to give,
    `POST /v1/applications/{id}/guarantee`: a `guarantor` flag sent here is ignored.)"""

    financier: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    lot: str = Field(min_length=1, max_length=512)
    amount: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$")


class ReviewDecision(BaseModel):
    decision: Literal["approve", "decline"]
    reason: str = Field(min_length=1, max_length=500)
    rate: str | None = Field(
        default=None,
        pattern=_RATE,
        description="an approval's annual rate for this loan (default: your policy's)",
    )


class GuarantorInvite(BaseModel):
    guarantor: str = Field(pattern=r"^[a-z0-9-]{1,64}$")


class InvitedPublic(BaseModel):
    application: int
    guarantor: str


class GuaranteeCreate(BaseModel):
    amount: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$")


class GuaranteePublic(BaseModel):
    application: int
    guarantor: str
    amount: str
    amount_minor: int
    currency: str


class ReviewItem(BaseModel):
    """A referred application waiting for its financier's review."""

    application: int
    line: int
    lot: str
    requested_minor: int
    reasons: list[str]
    guarantor: str | None
    guaranteed_minor: int | None
    created_at: datetime


class DecisionPublic(BaseModel):
    application: int
    decision: Literal["approve", "partial", "decline", "refer"]
    approved: str
    approved_minor: int
    reasons: list[str]
    evidence: list[str]
    collateral_value: str
    ltv: str | None = Field(
        default=None, description="(the lot's exposure + the amount requested) / its value"
    )
    offer_id: int | None = Field(
        default=None,
        description="an approval's offer: nothing is drawn until the borrower accepts it",
    )


class ReviewedPublic(BaseModel):
    application: int
    review: Literal["approved", "declined"]
    reason: str
    decision: DecisionPublic | None


class PledgeResult(BaseModel):
    lot: str
    line: int
    tx: str  # empty for a partial release: the pledge stays on chain
    lot_key: str | None = None
    still_pledged: int | None = None  # after a release: units still pledged (0: released whole)
