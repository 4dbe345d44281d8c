"""Write routes: enterprises register products and devices and apply; financiers run lines."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel

from api.deps import (
    AnyOrg,
    CurrentChain,
    DbConn,
    Enterprise,
    FinanceJournal,
    Financier,
    Guarantor,
)
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, Problem
from api.requests import PENDING_RESPONSE
from api.schemas import (
    AcceptedPublic,
    AlertPage,
    AlertPublic,
    ApplicationCreate,
    ComponentsPublic,
    DecisionPublic,
    DeviceCreate,
    DevicePublic,
    GuaranteeCreate,
    GuaranteePublic,
    GuarantorInvite,
    InstalmentPublic,
    InvitedPublic,
    LineCreate,
    LinePublic,
    LoanPublic,
    LoanRepayment,
    MarginCallPublic,
    NextDuePublic,
    OfferPublic,
    PaymentPublic,
    PledgeResult,
    PolicyPublic,
    PolicyUpdate,
    PricePublic,
    PriceUpdate,
    ProductCreate,
    Repayment,
    ReviewDecision,
    ReviewedPublic,
    ReviewItem,
    StatementPublic,
    WebhookCreate,
    WebhookPublic,
)
from epcis.identifiers import gln13
from epcis.signatures import normalise_address
from finance import four_eyes, service
from finance.repayments import loan_terms
from finance.servicing import Components, schedule
from finance.store import goods
from ingest.topics import DeviceTopic, Kind
from records import registry_store

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})


class ProductPublic(BaseModel):
    """A registered product, as its owner sees it."""

    gtin: str
    name: str
    category: str
    unit_price_minor: int
    currency: str


@router.post(
    "/v1/products",
    status_code=201,
    response_model=ProductPublic,
    summary="Register (or update) one of your products",
)
def add_product(
    conn: DbConn,
    journal: FinanceJournal,
    org: Enterprise,
    product: Annotated[ProductCreate, Body()],
) -> ProductPublic:
    existing = goods.get_product(conn, product.gtin)
    if existing is not None and existing.owner_org_id != org.id:
        raise Problem(403, "not_your_product", f"GTIN {product.gtin} belongs to another org")
    created = service.add_product(
        conn,
        journal,
        org.slug,
        product.gtin,
        product.name,
        product.category,
        product.unit_price,
        product.currency,
        product.min_temp_c,
        product.max_temp_c,
        product.shelf_life_days,
    )
    return ProductPublic.model_validate(created, from_attributes=True)


@router.post(
    "/v1/devices",
    status_code=201,
    response_model=DevicePublic,
    summary="Register a device of your organisation",
)
def add_device(
    conn: DbConn, org: Enterprise, device: Annotated[DeviceCreate, Body()]
) -> DevicePublic:
    """Again with a new address: the device's key is rotated (the old key is revoked)."""
    if device.unsigned == (device.address is not None):
        raise Problem(422, "invalid_input", "give exactly one of address or unsigned: true")
    address = normalise_address(device.address) if device.address else None
    try:
        sites = [gln13(site) for site in device.sites]
    except ValueError as exc:
        raise Problem(422, "invalid_identifier", str(exc)) from None
    try:
        key = registry_store.add_device(conn, org.slug, device.device_id, address, sites)
    except registry_store.AddressInUse as exc:
        raise Problem(409, "address_in_use", str(exc)) from None
    except registry_store.NotSiteOperator as exc:
        raise Problem(403, "not_site_operator", str(exc)) from None
    except registry_store.RegistryError as exc:
        raise Problem(409, "device_exists", str(exc)) from None
    return DevicePublic(
        org=key.org_slug,
        device=key.device_id,
        address=key.address,
        unsigned=key.address is None,
        sites=sites,
        publish_to=DeviceTopic(key.org_slug, key.device_id, Kind.EVENTS).topic,
    )


@router.post(
    "/v1/applications",
    response_model=DecisionPublic,
    summary="Apply for financing against your pledged lot; decided at once (an approval is an"
    " offer to accept)",
)
def apply(
    conn: DbConn,
    journal: FinanceJournal,
    org: Enterprise,
    application: Annotated[ApplicationCreate, Body()],
) -> DecisionPublic:
    decision = service.apply(
        conn,
        journal,
        org.slug,
        application.financier,
        application.lot,
        application.amount,
    )
    return DecisionPublic.model_validate(decision, from_attributes=True)


@router.get(
    "/v1/alerts",
    response_model=AlertPage,
    summary="Your alerts after a cursor: flags, margin calls, decisions (oldest first)",
)
def alerts(
    conn: DbConn,
    org: Financier,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertPage:
    rows = service.alerts(conn, org.slug, after, limit)
    items = [
        AlertPublic(
            id=row.id,
            kind=row.kind,
            line=row.line_id,
            lot=row.lot_uri,
            time=row.at,
            detail=row.detail,
        )
        for row in rows
    ]
    return AlertPage(items=items, next=rows[-1].id if rows else after)


@router.put(
    "/v1/alerts/webhook",
    response_model=WebhookPublic,
    summary="Push your alerts to a URL, each signed with the secret answered here (once)",
)
def set_webhook(
    conn: DbConn, journal: FinanceJournal, org: Financier, body: Annotated[WebhookCreate, Body()]
) -> WebhookPublic:
    made = service.set_webhook(conn, journal, org.slug, body.url)
    return WebhookPublic.model_validate(made, from_attributes=True)


@router.get(
    "/v1/reviews",
    response_model=list[ReviewItem],
    summary="Your review queue: referred applications on your lines, oldest first",
)
def review_queue(conn: DbConn, org: Financier) -> list[ReviewItem]:
    return [
        ReviewItem(
            application=row.id,
            line=row.line_id,
            lot=row.lot_uri,
            requested_minor=row.requested_minor,
            reasons=row.last_reasons,
            guarantor=row.guarantor,
            guaranteed_minor=row.guaranteed_minor,
            created_at=row.created_at,
        )
        for row in service.reviews(conn, org.slug)
    ]


@router.post(
    "/v1/applications/{application_id}/review",
    response_model=ReviewedPublic,
    responses=PENDING_RESPONSE,
    summary="Decide a referred application, with a reason (approving decides it again)",
)
def review(
    conn: DbConn,
    journal: FinanceJournal,
    org: Financier,
    application_id: int,
    body: Annotated[ReviewDecision, Body()],
) -> ReviewedPublic:
    done = four_eyes.submit(
        conn,
        journal,
        org,
        service.review,
        application_id=application_id,
        approve=body.decision == "approve",
        reason=body.reason,
        rate=body.rate,
    )
    return ReviewedPublic.model_validate(done, from_attributes=True)


@router.post(
    "/v1/applications/{application_id}/guarantors",
    response_model=InvitedPublic,
    summary="Invite a guarantor to guarantee your waiting application (only it may)",
)
def invite_guarantor(
    conn: DbConn,
    journal: FinanceJournal,
    org: Enterprise,
    application_id: int,
    body: Annotated[GuarantorInvite, Body()],
) -> InvitedPublic:
    invited = service.invite_guarantor(conn, journal, org.slug, application_id, body.guarantor)
    return InvitedPublic.model_validate(invited, from_attributes=True)


@router.post(
    "/v1/applications/{application_id}/guarantee",
    response_model=GuaranteePublic,
    summary="Guarantee a named amount of a referred application (guarantors only)",
)
def give_guarantee(
    conn: DbConn,
    journal: FinanceJournal,
    org: Guarantor,
    application_id: int,
    body: Annotated[GuaranteeCreate, Body()],
) -> GuaranteePublic:
    given = service.guarantee(conn, journal, org.slug, application_id, body.amount)
    return GuaranteePublic.model_validate(given, from_attributes=True)


@router.post(
    "/v1/offers/{offer_id}/accept",
    response_model=AcceptedPublic,
    summary="Accept an offer: decided again now, drawn as a loan if the goods still support it",
)
def accept_offer(
    conn: DbConn, journal: FinanceJournal, org: Enterprise, offer_id: int
) -> AcceptedPublic:
    accepted = service.accept_offer(conn, journal, org.slug, offer_id)
    return AcceptedPublic.model_validate(accepted, from_attributes=True)


@router.get(
    "/v1/offers",
    response_model=list[OfferPublic],
    summary="Offers on your lines (financier) or made to you (borrower), newest first",
)
def offers(conn: DbConn, org: AnyOrg) -> list[OfferPublic]:
    return [
        OfferPublic.model_validate(row, from_attributes=True)
        for row in service.offers(conn, org.slug)
    ]


@router.get(
    "/v1/lines",
    response_model=list[LinePublic],
    summary="Credit lines: yours as financier or borrower; every line, to the regulator",
)
def lines(conn: DbConn, org: AnyOrg) -> list[LinePublic]:
    return [
        LinePublic.model_validate(row, from_attributes=True)
        for row in service.lines(conn, org.slug)
    ]


@router.post(
    "/v1/lines",
    status_code=201,
    response_model=LinePublic,
    responses=PENDING_RESPONSE,
    summary="Open (or re-limit) a credit line to an enterprise",
)
def open_line(
    conn: DbConn, journal: FinanceJournal, org: Financier, line: Annotated[LineCreate, Body()]
) -> LinePublic:
    opened = four_eyes.submit(
        conn,
        journal,
        org,
        service.open_line,
        borrower=line.borrower,
        limit=line.limit,
        currency=line.currency,
    )
    return LinePublic.model_validate(opened, from_attributes=True)


@router.post("/v1/lines/{line_id}/freeze", response_model=LinePublic, summary="Freeze a line")
def freeze(conn: DbConn, journal: FinanceJournal, org: Financier, line_id: int) -> LinePublic:
    line = service.set_line_status(conn, journal, org.slug, line_id, "frozen")
    return LinePublic.model_validate(line, from_attributes=True)


@router.post(
    "/v1/lines/{line_id}/unfreeze",
    response_model=LinePublic,
    responses=PENDING_RESPONSE,
    summary="Unfreeze",
)
def unfreeze(conn: DbConn, journal: FinanceJournal, org: Financier, line_id: int) -> LinePublic:
    line = four_eyes.submit(
        conn, journal, org, service.set_line_status, line_id=line_id, status="active"
    )
    return LinePublic.model_validate(line, from_attributes=True)


@router.post(
    "/v1/lines/{line_id}/repayments",
    response_model=LinePublic,
    summary="Record a repayment (accepted on frozen lines too)",
)
def repay(
    conn: DbConn,
    journal: FinanceJournal,
    org: Financier,
    line_id: int,
    repayment: Annotated[Repayment, Body()],
) -> LinePublic:
    line = service.repay(conn, journal, org.slug, line_id, repayment.amount, repayment.loan_id)
    return LinePublic.model_validate(line, from_attributes=True)


@router.put(
    "/v1/prices/{gtin}",
    response_model=PricePublic,
    summary="Set your own unit price for a GTIN (the only price your lending rests on)",
)
def set_price(
    conn: DbConn,
    journal: FinanceJournal,
    org: Financier,
    gtin: str,
    price: Annotated[PriceUpdate, Body()],
) -> PricePublic:
    stored = service.set_price(
        conn, journal, org.slug, gtin, price.unit_price, price.currency, price.valid_from
    )
    return PricePublic.model_validate(stored, from_attributes=True)


@router.get("/v1/prices", response_model=list[PricePublic], summary="Your price list")
def price_list(conn: DbConn, org: Financier) -> list[PricePublic]:
    return [
        PricePublic.model_validate(row, from_attributes=True)
        for row in service.prices(conn, org.slug)
    ]


@router.get(
    "/v1/loans",
    response_model=list[LoanPublic],
    summary="Your loans: on your lines (financier) or drawn by you (enterprise)",
)
def loans(conn: DbConn, org: AnyOrg) -> list[LoanPublic]:
    return [
        LoanPublic.model_validate(row, from_attributes=True)
        for row in service.loans(conn, org.slug)
    ]


@router.get(
    "/v1/margin-calls",
    response_model=list[MarginCallPublic],
    summary="Margin calls on your lines (financier) or on your own (borrower), newest first",
)
def margin_calls(conn: DbConn, org: AnyOrg) -> list[MarginCallPublic]:
    return [
        MarginCallPublic(
            id=call.id,
            line=call.line_id,
            lot=call.lot_uri,
            amount_minor=call.amount_minor,
            currency=call.currency,
            state=call.state,
            reason=call.reason,
            raised_at=call.raised_at,
            due=call.due_at,
            settled_at=call.settled_at,
        )
        for call in service.margin_calls(conn, org.slug)
    ]


@router.get("/v1/loans/{loan_id}", response_model=LoanPublic, summary="One of your loans")
def loan(conn: DbConn, org: AnyOrg, loan_id: int) -> LoanPublic:
    return LoanPublic.model_validate(service.loan(conn, org.slug, loan_id), from_attributes=True)


def _components(parts: Components) -> ComponentsPublic:
    return ComponentsPublic(
        fees_minor=parts.fees_minor,
        penalty_minor=parts.penalty_minor,
        interest_minor=parts.interest_minor,
        principal_minor=parts.principal_minor,
        total_minor=parts.total_minor,
    )


def _statement(conn: DbConn, org: str, loan_id: int, as_of: date | None) -> StatementPublic:
    found = service.loan(conn, org, loan_id)
    stated = service.loan_statement(conn, org, loan_id, as_of)
    return StatementPublic(
        loan=found.id,
        currency=found.currency,
        as_of=stated.as_of,
        status=stated.status.value,
        drawn_on=stated.drawn_on,
        maturity_on=stated.maturity_on,
        principal_minor=stated.principal_minor,
        fees_minor=stated.fees_minor,
        interest_accrued_minor=stated.interest_accrued_minor,
        penalty_accrued_minor=stated.penalty_accrued_minor,
        paid=_components(stated.paid),
        outstanding=_components(stated.outstanding),
        outstanding_minor=stated.outstanding_minor,
        days_overdue=stated.days_overdue,
        overdue_principal_minor=stated.overdue_principal_minor,
        next_due=(
            NextDuePublic.model_validate(stated.next_due, from_attributes=True)
            if stated.next_due
            else None
        ),
        unapplied_minor=stated.unapplied_minor,
        schedule=[
            InstalmentPublic.model_validate(instalment, from_attributes=True)
            for instalment in schedule(found.principal_minor, found.drawn_on, loan_terms(found))
        ],
        payments=[
            PaymentPublic(
                paid_on=applied.repayment.on,
                source=applied.repayment.source.value,
                amount_minor=applied.repayment.amount_minor,
                applied=_components(applied.applied),
                unapplied_minor=applied.unapplied_minor,
            )
            for applied in stated.applied
        ],
    )


@router.get(
    "/v1/loans/{loan_id}/statement",
    response_model=StatementPublic,
    summary="A loan's statement as of a day (default today, UTC): yours as financier or borrower",
)
def loan_statement(
    conn: DbConn,
    org: AnyOrg,
    loan_id: int,
    as_of: Annotated[
        date | None,
        Query(description="YYYY-MM-DD; a future day projects accrual with no further payment"),
    ] = None,
) -> StatementPublic:
    return _statement(conn, org.slug, loan_id, as_of)


@router.post(
    "/v1/loans/{loan_id}/repayments",
    response_model=StatementPublic,
    summary="Record a repayment of one of your loans (fees, penalty, interest, then principal)",
)
def repay_loan(
    conn: DbConn,
    journal: FinanceJournal,
    org: Financier,
    loan_id: int,
    repayment: Annotated[LoanRepayment, Body()],
) -> StatementPublic:
    service.repay_loan(conn, journal, org.slug, loan_id, repayment.amount)
    return _statement(conn, org.slug, loan_id, None)


@router.get("/v1/policies", response_model=list[PolicyPublic], summary="Your policies")
def policies(conn: DbConn, org: Financier) -> list[PolicyPublic]:
    return [
        PolicyPublic.model_validate(row, from_attributes=True)
        for row in service.policies(conn, org.slug)
    ]


@router.put(
    "/v1/policies/{category}",
    response_model=PolicyPublic,
    summary="Set your policy for a product category ('*': your default)",
)
def set_policy(
    conn: DbConn,
    journal: FinanceJournal,
    org: Financier,
    category: Annotated[str, Path(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9 _.-]{0,63})$")],
    policy: Annotated[PolicyUpdate, Body()],
) -> PolicyPublic:
    service.set_policy(
        conn,
        journal,
        org.slug,
        category,
        advance_rate=policy.advance_rate,
        haircut=policy.haircut,
        ltv_cap=policy.ltv_cap,
        breach_tolerance_s=policy.breach_tolerance_s,
        inspection_freshness_s=policy.inspection_freshness_s,
        receivable_advance_rate=policy.receivable_advance_rate,
        cure_period_s=policy.cure_period_s,
        offer_validity_s=policy.offer_validity_s,
        annual_rate=policy.rate,
        day_count=policy.day_count,
        schedule_kind=policy.schedule,
        instalment_count=policy.instalments,
        fee_rate=policy.fee_rate,
        tenor_days=policy.tenor_days,
        grace_days=policy.grace_days,
        penalty_rate=policy.penalty_rate,
        default_after_days=policy.default_after_days,
    )
    stored = next(row for row in service.policies(conn, org.slug) if row.category == category)
    return PolicyPublic.model_validate(stored, from_attributes=True)


@router.post(
    "/v1/pledges/{lot:path}",
    response_model=PledgeResult,
    summary="Pledge a lot to you (recorded on PledgeRegistry first)",
)
def pledge(
    org: Financier, conn: DbConn, journal: FinanceJournal, chain: CurrentChain, lot: str
) -> PledgeResult:
    result = service.pledge(conn, journal, chain, org.slug, lot)
    return PledgeResult.model_validate(result, from_attributes=True)


@router.delete(
    "/v1/pledges/{lot:path}",
    response_model=PledgeResult,
    responses=PENDING_RESPONSE,
    summary="Release your pledge of a lot (on chain and here), or some of its units",
)
def release(
    org: Financier,
    conn: DbConn,
    journal: FinanceJournal,
    chain: CurrentChain,
    lot: str,
    quantity: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="release only this many units (a partial release)"),
    ] = None,
) -> PledgeResult:
    result = four_eyes.submit(
        conn, journal, org, service.release, chain=chain, lot=lot, quantity=quantity
    )
    return PledgeResult.model_validate(result, from_attributes=True)
