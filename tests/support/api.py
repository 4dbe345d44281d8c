"""The seeded world (orgs with keys, anchored lots, a pledge) behind an in-process API client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from records.db import Conn
from tests.support.postgres import admin_url
from tests.support.world import seed_world
from tracefin.processes.api import build_app
from tracefin.schema import scratch_database
from tracefin.settings import Settings


@dataclass
class Api:
    """An app over a database holding `seed_world`'s world, and the keys of its organisations."""

    client: TestClient
    keys: dict[str, str]
    conn: Conn
    digests: list[bytes]
    chain_rpc_url: str

    def auth(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"} if who is not None else {}

    def call(self, method: str, path: str, who: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(who), **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def get(self, path: str, who: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, who, **kwargs)


@contextmanager
def serve_world(
    database_url: str, chain_rpc_url: str, *, public_rate_per_minute: int
) -> Iterator[Api]:
    """Seed `database_url` with the world and serve it in process until the block ends."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        keys, digests = seed_world(conn, chain_rpc_url)
        app_settings = Settings(
            _env_file=None,
            database_url=database_url,  # type: ignore[call-arg]
            chain_rpc_url=chain_rpc_url,
            api_public_rate_per_minute=public_rate_per_minute,
        )
        with (
            ConnectionPool(
                database_url, min_size=1, max_size=4, kwargs={"autocommit": True}
            ) as pool,
            TestClient(build_app(app_settings, pool), raise_server_exceptions=False) as client,
        ):
            yield Api(client, keys, conn, digests, chain_rpc_url)


@contextmanager
def seeded_api(chain_rpc_url: str) -> Iterator[Api]:
    """The world in a database of its own, for a module-scoped rig (thousands of requests)."""
    with (
        scratch_database(admin_url(), "tracefin_test") as url,
        serve_world(url, chain_rpc_url, public_rate_per_minute=1_000_000) as api,
    ):
        yield api
