"""Receivables finance routes: the buyer confirms, a financier advances, the buyer's payment
repays (issue 15; docs/finance.md, "Receivables finance")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from api.deps import AnyOrg, DbConn, Enterprise, FinanceJournal, Financier
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS
from finance import service

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})


class ReceivablePublic(BaseModel):
    """A receivable: goods accepted by their buyer with a purchase order. `advance_minor` is
    indicative until it is financed, then what was advanced (as `loan_id`)."""

    id: int
    lot_uri: str
    purchase_order: str
    amount_minor: int
    currency: str
    advance_minor: int
    seller: str | None
    buyer: str | None
    state: Literal["open", "confirmed", "financed", "paid"]
    financier: str | None
    loan_id: int | None
    paid_minor: int
    created_at: datetime
    confirmed_at: datetime | None
    financed_at: datetime | None
    paid_at: datetime | None


class ReceivablePayment(BaseModel):
    """What the buyer paid (at most what it still owes)."""

    amount: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$")


def _public(row: object) -> ReceivablePublic:
    return ReceivablePublic.model_validate(row, from_attributes=True)


@router.get(
    "/v1/receivables",
    response_model=list[ReceivablePublic],
    summary="Receivables you sell, owe or financed (financiers: also confirmed ones to finance)",
)
def receivables(conn: DbConn, org: AnyOrg) -> list[ReceivablePublic]:
    return [_public(row) for row in service.receivables(conn, org.slug)]


@router.post(
    "/v1/receivables/{receivable_id}/confirm",
    response_model=ReceivablePublic,
    summary="Confirm, as its buyer, that you owe a receivable",
)
def confirm(
    conn: DbConn, journal: FinanceJournal, org: Enterprise, receivable_id: int
) -> ReceivablePublic:
    return _public(service.confirm_receivable(conn, journal, org.slug, receivable_id))


@router.post(
    "/v1/receivables/{receivable_id}/finance",
    response_model=ReceivablePublic,
    summary="Advance against a confirmed receivable at your policy, on your line to its seller",
)
def finance(
    conn: DbConn, journal: FinanceJournal, org: Financier, receivable_id: int
) -> ReceivablePublic:
    return _public(service.finance_receivable(conn, journal, org.slug, receivable_id))


@router.post(
    "/v1/receivables/{receivable_id}/payments",
    response_model=ReceivablePublic,
    summary="Record the buyer's payment of a receivable you financed (it repays the advance)",
)
def paid(
    conn: DbConn,
    journal: FinanceJournal,
    org: Financier,
    receivable_id: int,
    payment: Annotated[ReceivablePayment, Body()],
) -> ReceivablePublic:
    return _public(service.receivable_paid(conn, journal, org.slug, receivable_id, payment.amount))
