"""The `tracefin api` process: settings -> connection pool -> app -> uvicorn on one port."""

from __future__ import annotations

from typing import Any

import orjson
import uvicorn
from psycopg import Connection
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from api.app import create_app
from tracefin.settings import Settings


def _configure(conn: Connection[Any]) -> None:
    set_json_loads(orjson.loads, conn)  # event bodies: orjson is several times faster


def run_api(settings: Settings) -> None:
    if settings.database_url is None:
        raise SystemExit("tracefin api needs TRACEFIN_DATABASE_URL")
    pool = ConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=settings.api_db_pool_size,
        kwargs={"autocommit": True},
        # No check on checkout: it costs a round trip per request; a connection that broke is
        # discarded by the pool when its query fails, and the next request gets a fresh one.
        configure=_configure,
        open=False,
    )
    pool.open(wait=True, timeout=30)
    try:
        uvicorn.run(
            create_app(settings, pool),
            host=settings.api_host,
            port=settings.api_port,
            log_level="info",
            access_log=False,
        )
    finally:
        pool.close()
