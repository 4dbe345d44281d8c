"""Write routes: enterprises register products and devices and apply; financiers run lines."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Body, Request

from api.auth import Enterprise, Financier
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, Problem
from api.schemas import (
    ApplicationCreate,
    DecisionPublic,
    DeviceCreate,
    DevicePublic,
    LineCreate,
    LinePublic,
    PledgeResult,
    ProductCreate,
    Repayment,
)
from epcis.signatures import normalise_address
from finance import service
from finance import store as finance_store
from finance.service import FinanceError
from ledger import log_store
from ledger.chain import Chain, connect
from records import registry_store
from records.db import Conn

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})
_CONFLICTS = {
    "already_pledged",
    "double_pledge",
    "not_pledged",
    "not_in_supervised_warehouse",
    "no_line",
}


def _refuse(exc: FinanceError) -> NoReturn:
    if exc.code.startswith("unknown"):
        status = 404
    elif exc.code in _CONFLICTS:
        status = 409
    elif exc.code == "wrong_role":
        status = 403
    else:
        status = 422
    raise Problem(status, exc.code, exc.detail) from None


def _chain(request: Request, conn: Conn) -> Chain:
    rpc = request.app.state.chain_rpc_url
    deployment = log_store.current_deployment(conn)
    if rpc is None or deployment is None:
        raise Problem(503, "no_chain", "no chain endpoint or no contracts deployed")
    return Chain(
        connect(rpc),
        deployment.anchor_address,
        deployment.pledge_address,
        request.app.state.settings.chain_key(),
    )


@router.post("/v1/products", status_code=201, summary="Register (or update) one of your products")
def add_product(
    request: Request, org: Enterprise, product: Annotated[ProductCreate, Body()]
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        existing = finance_store.get_product(conn, product.gtin)
        if existing is not None and existing.owner_org_id != org.id:
            raise Problem(403, "not_your_product", f"GTIN {product.gtin} belongs to another org")
        try:
            created = service.add_product(
                conn,
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
        except FinanceError as exc:
            _refuse(exc)
        except ValueError as exc:
            raise Problem(422, "invalid_input", str(exc)) from None
    return {
        "gtin": created.gtin,
        "name": created.name,
        "category": created.category,
        "unit_price_minor": created.unit_price_minor,
        "currency": created.currency,
    }


@router.post(
    "/v1/devices",
    status_code=201,
    response_model=DevicePublic,
    summary="Register a device of your organisation",
)
def add_device(
    request: Request, org: Enterprise, device: Annotated[DeviceCreate, Body()]
) -> DevicePublic:
    if device.unsigned == (device.address is not None):
        raise Problem(422, "invalid_input", "give exactly one of address or unsigned: true")
    address = normalise_address(device.address) if device.address else None
    with request.app.state.pool.connection() as conn:
        try:
            key = registry_store.add_device(conn, org.slug, device.device_id, address)
        except registry_store.RegistryError as exc:
            raise Problem(409, "device_exists", str(exc)) from None
    return DevicePublic(
        org=key.org_slug,
        device=key.device_id,
        address=key.address,
        unsigned=key.address is None,
        publish_to=f"tf/{key.org_slug}/{key.device_id}/events",
    )


@router.post(
    "/v1/applications",
    response_model=DecisionPublic,
    summary="Apply for financing against a pledged lot; decided at once",
)
def apply(
    request: Request, org: Enterprise, application: Annotated[ApplicationCreate, Body()]
) -> DecisionPublic:
    with request.app.state.pool.connection() as conn:
        try:
            decision = service.apply(
                conn,
                org.slug,
                application.financier,
                application.lot,
                application.amount,
                application.guarantor,
            )
        except FinanceError as exc:
            _refuse(exc)
        except ValueError as exc:
            raise Problem(422, "invalid_input", str(exc)) from None
    return DecisionPublic.model_validate(decision)


@router.get("/v1/lines", response_model=list[LinePublic], summary="Your credit lines")
def lines(request: Request, org: Financier) -> list[LinePublic]:
    with request.app.state.pool.connection() as conn:
        rows = finance_store.lines_of_financier(conn, org.id)
    return [LinePublic.model_validate(row, from_attributes=True) for row in rows]


@router.post(
    "/v1/lines",
    status_code=201,
    response_model=LinePublic,
    summary="Open (or re-limit) a credit line to an enterprise",
)
def open_line(request: Request, org: Financier, line: Annotated[LineCreate, Body()]) -> LinePublic:
    with request.app.state.pool.connection() as conn:
        try:
            opened = service.open_line(conn, org.slug, line.borrower, line.limit, line.currency)
        except FinanceError as exc:
            _refuse(exc)
        except ValueError as exc:
            raise Problem(422, "invalid_input", str(exc)) from None
    return LinePublic.model_validate(opened, from_attributes=True)


def _set_status(request: Request, org: Financier, line_id: int, status: str) -> LinePublic:
    with request.app.state.pool.connection() as conn:
        try:
            line = service.set_line_status(conn, org.slug, line_id, status)
        except FinanceError as exc:
            _refuse(exc)
    return LinePublic.model_validate(line, from_attributes=True)


@router.post("/v1/lines/{line_id}/freeze", response_model=LinePublic, summary="Freeze a line")
def freeze(request: Request, org: Financier, line_id: int) -> LinePublic:
    return _set_status(request, org, line_id, "frozen")


@router.post("/v1/lines/{line_id}/unfreeze", response_model=LinePublic, summary="Unfreeze")
def unfreeze(request: Request, org: Financier, line_id: int) -> LinePublic:
    return _set_status(request, org, line_id, "active")


@router.post(
    "/v1/lines/{line_id}/repayments",
    response_model=LinePublic,
    summary="Record a repayment (accepted on frozen lines too)",
)
def repay(
    request: Request, org: Financier, line_id: int, repayment: Annotated[Repayment, Body()]
) -> LinePublic:
    with request.app.state.pool.connection() as conn:
        try:
            line = service.repay(conn, org.slug, line_id, repayment.amount)
        except FinanceError as exc:
            _refuse(exc)
        except ValueError as exc:
            raise Problem(422, "invalid_input", str(exc)) from None
    return LinePublic.model_validate(line, from_attributes=True)


@router.post(
    "/v1/pledges/{lot:path}",
    response_model=PledgeResult,
    summary="Pledge a lot to you (recorded on PledgeRegistry first)",
)
def pledge(request: Request, org: Financier, lot: str) -> PledgeResult:
    with request.app.state.pool.connection() as conn:
        try:
            result = service.pledge(conn, _chain(request, conn), org.slug, lot)
        except FinanceError as exc:
            _refuse(exc)
    return PledgeResult.model_validate(result)


@router.delete(
    "/v1/pledges/{lot:path}",
    response_model=PledgeResult,
    summary="Release your pledge of a lot (on chain and here)",
)
def release(request: Request, org: Financier, lot: str) -> PledgeResult:
    with request.app.state.pool.connection() as conn:
        try:
            result = service.release(conn, _chain(request, conn), org.slug, lot)
        except FinanceError as exc:
            _refuse(exc)
    return PledgeResult.model_validate(result)
