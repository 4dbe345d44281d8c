"""Operations routes: liveness, readiness (database, broker, chain) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import COMMON_PROBLEMS
from api.schemas import Health, Readiness
from ledger import log_store
from ledger.chain import ChainError, connect
from ledger.deployment import is_live
from tracefin.embedded import port_open

router = APIRouter(responses=COMMON_PROBLEMS)


@router.get("/healthz", response_model=Health, summary="The process is alive")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Database, broker and chain reachable",
    responses={503: {"model": Readiness, "description": "not ready, and why"}},
)
def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        with state.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
            checks["database"] = "ok"
            deployment = log_store.current_deployment(conn)
            anchor = log_store.worker_state(conn, "anchor")
    except Exception as exc:  # the pool raises several types for a dead server
        checks["database"] = f"unreachable: {type(exc).__name__}"
        deployment, anchor = None, None
    broker = state.broker_address
    if broker is not None:
        checks["broker"] = "ok" if port_open(broker[0], broker[1], timeout=1) else "unreachable"
    if state.chain_rpc_url is not None:
        try:
            if deployment is None:
                checks["chain"] = "no contracts deployed"
            elif not is_live(connect(state.chain_rpc_url, timeout=2), deployment):
                checks["chain"] = "devnet reset: run `tracefin chain deploy`"
            else:
                checks["chain"] = "ok"
        except ChainError:
            checks["chain"] = "unreachable"
    if anchor is not None and anchor[0] in ("devnet_reset", "diverged"):
        checks["anchor"] = f"{anchor[0]}: {anchor[1]}"
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(request: Request) -> Response:
    request.app.state.metrics.refresh_lags(request.app.state.pool)
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
