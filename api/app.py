"""The API's assembly: config and pool in, middleware, routers and error handlers on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from api import (
    capture_jobs,
    enterprise,
    errors,
    health,
    operations,
    oversight,
    programme,
    public,
    queries,
    receivables,
    registry,
    requests,
    rest_binding,
)
from api.config import ApiConfig, ReadinessProbes
from api.middleware import Guard, Metrics, RateLimiter
from ledger.chain_confirmations import BatchConfirmations
from ledger.page_cache import PageCache


def create_app(
    config: ApiConfig, pool: ConnectionPool, probes: ReadinessProbes | None = None
) -> FastAPI:
    """The API over `pool`; `probes` say how /readyz asks the broker and the chain (none: it
    asks only the database)."""
    conninfo = pool.conninfo
    page_cache = PageCache(conninfo() if callable(conninfo) else conninfo)
    log_wakeups = queries.LogWakeups(conninfo() if callable(conninfo) else conninfo)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        page_cache.start()
        try:
            yield
        finally:
            page_cache.stop()
            log_wakeups.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="tracefin",
        version="0.1.0",
        description="IoT traceability and supply-chain finance: provenance with on-chain proofs,"
        " EPCIS capture and query, goods status for financiers, trace and audit for regulators.",
    )
    # What the dependencies of api/deps.py hand to the routes.
    app.state.config = config
    app.state.pool = pool
    app.state.probes = probes or ReadinessProbes()
    app.state.readiness_cache = health.ReadinessCache(config.readiness_cache)
    app.state.page_cache = page_cache
    app.state.log_wakeups = log_wakeups
    app.state.batch_confirmations = BatchConfirmations(config.chain_rpc_url, config.trusted_anchors)
    app.state.metrics = Metrics()
    errors.install(app)
    requests.install(app)

    app.add_middleware(
        Guard,
        metrics=app.state.metrics,
        limiter=RateLimiter(config.public_rate_per_minute),
        capture_limits=capture_jobs.limit_headers(config),
    )
    for router in (
        health.router,
        public.router,
        # Before enterprise's /epcis/{resource}, which would take /epcis/capture (and
        # /epcis/queries) for its own.
        capture_jobs.router,
        queries.router,
        enterprise.router,
        oversight.router,
        operations.router,
        programme.router,
        receivables.router,
        registry.router,
        requests.router,
        rest_binding.router,
        # Last: OPTIONS of any /epcis resource a router above did not answer itself.
        rest_binding.options_router,
    ):
        app.include_router(router)
    return app
