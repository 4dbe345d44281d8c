"""Financier and regulator routes: goods status, risk flags, trace and audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from api.auth import AnyOrg, Financier, Regulator
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, Problem
from api.schemas import AuditResult, RiskFlag, TraceResult, TraceStep
from finance import service
from finance import store as finance_store
from finance.audit import full_audit
from finance.service import FinanceError
from ledger import provenance
from ledger.chain import connect

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})


@router.get("/v1/lots/{lot:path}", summary="Goods status of a lot")
def lot_status(request: Request, lot: str, org: AnyOrg) -> dict[str, Any]:
    """The owner, financiers it is offered or pledged to, and regulators may look."""
    try:
        uri = service.canonical_lot(lot)
    except FinanceError as exc:
        raise Problem(400, exc.code, exc.detail) from None
    with request.app.state.pool.connection() as conn:
        if not finance_store.lot_visible_to(conn, org.id, org.role, uri):
            # The same answer as for a lot that does not exist: no probing of others' goods.
            raise Problem(404, "unknown_lot", f"no lot {uri} visible to this key")
        try:
            return service.lot_status(conn, uri, org.slug if org.role == "financier" else None)
        except FinanceError as exc:
            raise Problem(
                404 if exc.code.startswith("unknown") else 409, exc.code, exc.detail
            ) from None


@router.get("/v1/risk-flags", response_model=list[RiskFlag], summary="The financier's risk feed")
def risk_flags(
    request: Request, org: Financier, since: Annotated[datetime | None, Query()] = None
) -> list[RiskFlag]:
    with request.app.state.pool.connection() as conn:
        rows = finance_store.risk_flags_for_financier(conn, org.id, since)
    return [
        RiskFlag(id=r[0], lot=r[1], line_id=r[2], kind=r[3], detail=r[4], raised_at=r[5])
        for r in rows
    ]


@router.get(
    "/v1/trace/{lot:path}",
    response_model=TraceResult,
    summary="Trace a lot forward (where it went) or backward (what it came from)",
)
def trace(
    request: Request,
    lot: str,
    org: Regulator,
    direction: Annotated[Literal["forward", "backward"], Query()] = "forward",
) -> TraceResult:
    try:
        uri = service.canonical_lot(lot)
    except FinanceError as exc:
        raise Problem(400, exc.code, exc.detail) from None
    with request.app.state.pool.connection() as conn:
        steps = provenance.trace(conn, uri, direction)
    return TraceResult(
        lot=uri,
        direction=direction,
        steps=[
            TraceStep(
                event_hash=s.hash_id,
                event_time=s.event_time,
                biz_step=s.biz_step,
                biz_location=s.biz_location,
                parties=s.parties,
                items=s.items,
            )
            for s in steps
        ],
    )


@router.get("/v1/audit", response_model=AuditResult, summary="Audit the store against the chain")
def run_audit(request: Request, org: Regulator) -> AuditResult:
    rpc = request.app.state.chain_rpc_url
    with request.app.state.pool.connection() as conn:
        report = full_audit(conn, connect(rpc) if rpc else None)
    return AuditResult.model_validate(report.as_json())
