"""The `tracefin api` process: settings -> config, probes, pool -> app -> uvicorn on one port."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from psycopg import Connection
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from api.app import create_app
from api.config import ApiConfig, ReadinessProbes
from api.server import DeadlineH11Protocol
from ingest.mqtt_link import parse_mqtt_url
from ledger.chain import connect
from ledger.deployment import is_live
from ledger.log_store import Deployment
from tracefin.embedded import port_open
from tracefin.process import freeze_startup_heap
from tracefin.settings import MissingProductionSetting, Settings


def api_config(settings: Settings) -> ApiConfig:
    """What the API needs of the settings, and nothing else."""
    if settings.chain_rpc_url is None and settings.environment == "production":
        # Pledges and /readyz need the chain; elsewhere the API answers 503 `no_chain` without.
        raise MissingProductionSetting("TRACEFIN_CHAIN_RPC_URL must be set in production")
    return ApiConfig(
        chain_rpc_url=settings.chain_rpc_url,
        public_rpc_url=settings.chain_public_rpc_url,
        trusted_anchors=settings.trusted_anchors(),
        chain_key=settings.chain_key(),
        journal_key=settings.journal_seal_key(),
        public_rate_per_minute=settings.api_public_rate_per_minute,
        max_payload_bytes=settings.ingest_max_payload_bytes,
        max_future_skew=settings.max_future_skew,
        capture_max_events=settings.capture_max_events,
        readiness_cache=timedelta(seconds=settings.api_readiness_cache_s),
        metrics_token=settings.metrics_token(),
        subscription_loopback=settings.subscription_loopback_dest,
        max_named_queries=settings.api_max_named_queries_per_org,
        max_subscriptions=settings.api_max_subscriptions_per_org,
        max_streams=settings.api_max_streams_per_org,
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options beyond the app, host and port: who may name the client, deadlines
    for slow clients, how many connections at most."""
    proxies = settings.trusted_proxies()
    return {
        # Unset, uvicorn would trust X-Forwarded-For from 127.0.0.1 (or $FORWARDED_ALLOW_IPS):
        # anyone who reaches it through a local port forward or proxy could be any client.
        # Set, its middleware takes the rightmost address no trusted proxy added.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,
        "http": DeadlineH11Protocol.with_deadlines(
            settings.api_header_timeout_s, settings.api_body_timeout_s
        ),
        "limit_concurrency": settings.api_max_connections,
    }


def readiness_probes(settings: Settings) -> ReadinessProbes:
    """How /readyz asks the broker (a TCP connect) and the chain (the deployment is live)."""
    broker = None
    if settings.mqtt_url:
        address = parse_mqtt_url(settings.mqtt_url)

        def broker() -> bool:
            return port_open(address.host, address.port, timeout=1)

    chain = None
    if settings.chain_rpc_url is not None:
        rpc_url = settings.chain_rpc_url

        def chain(deployment: Deployment) -> bool:
            return is_live(connect(rpc_url, timeout=2), deployment)

    return ReadinessProbes(broker=broker, chain=chain)


def build_app(settings: Settings, pool: ConnectionPool) -> FastAPI:
    """The API of these settings over `pool` (the process below and the tests build it so)."""
    return create_app(api_config(settings), pool, readiness_probes(settings))


def api_pool(settings: Settings) -> ConnectionPool:
    """The API's connections, not yet open: autocommit, orjson for event bodies (several times
    faster), and every statement bounded by `api_statement_timeout_ms`."""
    if settings.database_url is None:
        raise SystemExit("tracefin api needs TRACEFIN_DATABASE_URL")
    timeout_ms = str(settings.api_statement_timeout_ms)

    def configure(conn: Connection[Any]) -> None:
        set_json_loads(orjson.loads, conn)
        # A session setting, so it costs nothing per request; set here rather than in the
        # URL's `options`, which an operator's own URL may already use.
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (timeout_ms,))

    return ConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=settings.api_db_pool_size,
        kwargs={"autocommit": True},
        # No check on checkout: it costs a round trip per request; a connection that broke is
        # discarded by the pool when its query fails, and the next request gets a fresh one.
        configure=configure,
        open=False,
    )


def run_api(settings: Settings) -> None:
    pool = api_pool(settings)
    pool.open(wait=True, timeout=30)
    try:
        app = build_app(settings, pool)
        freeze_startup_heap()
        uvicorn.run(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level="info",
            access_log=False,
            **server_options(settings),
        )
    finally:
        pool.close()
