"""Composition root of the API: settings -> pool, middleware, routers, error handlers."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import orjson
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from psycopg_pool import ConnectionPool

from api import enterprise, errors, operations, ops, oversight, public
from api.errors import problem_response
from ingest.mqtt_link import parse_mqtt_url
from ledger.capture import contains_nul
from tracefin.settings import Settings

MAX_BODY_BYTES = 1_048_576
PUBLIC_PREFIXES = ("/01/", "/v1/provenance", "/v1/proofs", "/v1/verify", "/v1/qr")


class Metrics:
    """Request counts and latencies, plus how far each worker lags behind the log."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tracefin_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tracefin_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )
        self.lag = Gauge(
            "tracefin_lag_positions",
            "log positions a stage is behind",
            ["stage"],
            registry=self.registry,
        )

    def refresh_lags(self, pool: ConnectionPool) -> None:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM log_queue),"
                " (SELECT coalesce(max(log_index) + 1, 0) FROM log_entries),"
                " (SELECT coalesce(max(b.first_index + b.count), 0) FROM anchor_batches b"
                "  JOIN chain_deployments d ON d.id = b.deployment_id AND d.current),"
                " (SELECT coalesce(max(next_index), 0) FROM log_cursors WHERE worker = 'finance')"
            ).fetchone()
        assert row is not None
        queued, size, anchored, finance = (int(v) for v in row)
        self.lag.labels("positioning").set(queued)
        self.lag.labels("anchoring").set(size - anchored)
        self.lag.labels("finance").set(size - finance)


class RateLimiter:
    """A token bucket per client address for the public routes (no key, so no other identity)."""

    def __init__(self, per_minute: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            allowed = tokens >= 1
            self._buckets[client] = (tokens - 1 if allowed else tokens, now)
            if len(self._buckets) > 100_000:  # forget idle clients rather than grow forever
                self._buckets.clear()
            return allowed


async def _carries_nul(request: Request) -> bool:
    """NUL in the path, the query or a JSON body: PostgreSQL could not store or compare it."""
    if "\x00" in unquote(request.url.path) or "\x00" in unquote(request.url.query):
        return True
    # Capture checks its own payloads, so that refusals are dead-lettered as on MQTT.
    if request.method in ("POST", "PUT", "PATCH") and request.url.path != "/v1/capture":
        body = await request.body()  # Starlette keeps it for the route
        if b"\\u0000" in body:
            try:
                return contains_nul(orjson.loads(body))
            except orjson.JSONDecodeError:
                return False
    return False


def create_app(settings: Settings, pool: ConnectionPool) -> FastAPI:
    app = FastAPI(
        title="tracefin",
        version="0.1.0",
        description="IoT traceability and supply-chain finance: provenance with on-chain proofs,"
        " EPCIS capture and query, goods status for financiers, trace and audit for regulators.",
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.chain_rpc_url = settings.chain_rpc_url
    address = parse_mqtt_url(settings.mqtt_url) if settings.mqtt_url else None
    app.state.broker_address = (address.host, address.port) if address else None
    app.state.metrics = Metrics()
    limiter = RateLimiter(settings.api_public_rate_per_minute)
    errors.install(app)

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            response: Response = problem_response(
                413,
                "payload_too_large",
                f"requests are limited to {MAX_BODY_BYTES} bytes",
                request.url.path,
            )
        elif await _carries_nul(request):
            response = problem_response(
                400, "invalid_text", "text must not contain U+0000 (NUL)", request.url.path
            )
        elif request.url.path.startswith(PUBLIC_PREFIXES) and not limiter.allow(
            request.client.host if request.client else "-"
        ):
            response = problem_response(
                429, "rate_limited", "too many requests; slow down", request.url.path, headers=None
            )
            response.headers["Retry-After"] = "1"
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        app.state.metrics.requests.labels(request.method, name, response.status_code).inc()
        app.state.metrics.latency.labels(name).observe(time.perf_counter() - started)
        return response

    for router in (
        ops.router,
        public.router,
        enterprise.router,
        oversight.router,
        operations.router,
    ):
        app.include_router(router)
    return app
