"""Health routes: liveness, readiness (database, broker, chain) and Prometheus metrics."""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool

from api.config import ReadinessProbes
from api.deps import ApiMetrics, Config, DbConn, Pool, Probes
from api.errors import COMMON_PROBLEMS, Problem, problems
from api.schemas import Health, Readiness
from finance.monitoring_store import finance_position
from ledger import log_store
from ledger.chain import ChainError

router = APIRouter(responses=COMMON_PROBLEMS)


@router.get("/healthz", response_model=Health, summary="The process is alive")
def healthz() -> Health:
    return Health(status="ok")


class ReadinessCache:
    """The last /readyz answer, served again for `ttl`: a flood of probes costs one round of
    checks (database, broker, chain) per interval, not one per request.

    While one caller checks, the others get the previous answer rather than wait (a waiting
    caller would hold a worker thread); only before the first answer may two check at once.
    """

    def __init__(self, ttl: timedelta, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._lock = threading.Lock()
        self._answer: tuple[float, Readiness] | None = None
        self._checking = False

    def get(self, check: Callable[[], Readiness]) -> Readiness:
        with self._lock:
            if self._answer is not None and (
                self._checking or self._clock() - self._answer[0] < self._ttl
            ):
                return self._answer[1]
            self._checking = True
        try:
            answer = check()
        finally:
            with self._lock:
                self._checking = False
        with self._lock:
            self._answer = (self._clock(), answer)
        return answer


def _readiness_cache(request: Request) -> ReadinessCache:
    cache: ReadinessCache = request.app.state.readiness_cache
    return cache


CachedReadiness = Annotated[ReadinessCache, Depends(_readiness_cache)]


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Database, broker and chain reachable (asked at most once per"
    " TRACEFIN_API_READINESS_CACHE_S)",
    responses={503: {"model": Readiness, "description": "not ready, and why"}},
)
def readyz(pool: Pool, probes: Probes, cache: CachedReadiness) -> JSONResponse:
    body = cache.get(lambda: _readiness(pool, probes))
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


def _readiness(pool: ConnectionPool, probes: ReadinessProbes) -> Readiness:
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
    return Readiness(ready=all(value == "ok" for value in checks.values()), checks=checks)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an address (a Unix socket, a test client's name)
        return False


def _metrics_reader(request: Request, config: Config) -> None:
    """/metrics for the holder of the metrics token; without one configured (outside
    production only), for loopback clients: the client a trusted proxy names is not one."""
    if config.metrics_token is None:
        client = request.client.host if request.client is not None else ""
        if not _is_loopback(client):
            raise Problem(
                403,
                "metrics_loopback_only",
                "without TRACEFIN_API_METRICS_TOKEN, /metrics answers loopback clients only",
            )
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = config.metrics_token.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise Problem(401, "invalid_metrics_token", "send Authorization: Bearer <metrics token>")


@router.get(
    "/metrics",
    summary="Prometheus metrics (Authorization: Bearer <TRACEFIN_API_METRICS_TOKEN>)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, **problems(401, 403)},
    dependencies=[Depends(_metrics_reader)],
)
def metrics(conn: DbConn, registry: ApiMetrics) -> Response:
    # Finance's position first: read after the log's size it could pass it (a negative lag).
    finance = finance_position(conn)
    registry.record_lags(log_store.progress(conn), finance)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
