"""Health routes: liveness, readiness (database, broker, chain) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ApiMetrics, DbConn, Pool, Probes
from api.errors import COMMON_PROBLEMS
from api.schemas import Health, Readiness
from finance.monitoring_store import finance_position
from ledger import log_store
from ledger.chain import ChainError

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
def readyz(pool: Pool, probes: Probes) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with pool.connection(timeout=2) as conn:
            deployment = log_store.current_deployment(conn)
            anchor = log_store.worker_state(conn, "anchor")
            checks["database"] = "ok"
    except Exception as exc:  # the pool raises several types for a dead server
        checks["database"] = f"unreachable: {type(exc).__name__}"
        deployment, anchor = None, None
    if probes.broker is not None:
        checks["broker"] = "ok" if probes.broker() else "unreachable"
    if probes.chain is not None:
        try:
            if deployment is None:
                checks["chain"] = "no contracts deployed"
            elif not probes.chain(deployment):
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
def metrics(conn: DbConn, registry: ApiMetrics) -> Response:
    # Finance's position first: read after the log's size it could pass it (a negative lag).
    finance = finance_position(conn)
    registry.record_lags(log_store.progress(conn), finance)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
