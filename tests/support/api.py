"""The seeded world (orgs with keys, anchored lots, a pledge) behind an in-process API client."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import sql

from ledger.chain import connect
from records.db import Conn
from tests.support.postgres import admin_url
from tests.support.world import seed_world
from tracefin.processes.api import api_pool, build_app
from tracefin.schema import scratch_database
from tracefin.settings import Settings

# The bearer token the in-process API's /metrics asks for (TestClient's peer is no loopback).
METRICS_TOKEN = "tests-metrics-token-4Qk9xV2mR7wN1pZ8cL5bT3hY6jF0sDe"


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


@dataclass(frozen=True)
class SeededWorld:
    """A database holding `seed_world`'s world, the chain it was anchored on, and its keys."""

    database_url: str
    chain_rpc_url: str
    keys: dict[str, str]
    digests: list[bytes]


@contextmanager
def serve_world(
    database_url: str, chain_rpc_url: str, *, public_rate_per_minute: int
) -> Iterator[Api]:
    """Seed `database_url` with the world and serve it in process until the block ends."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        keys, digests = seed_world(conn, chain_rpc_url)
    world = SeededWorld(database_url, chain_rpc_url, keys, digests)
    with serve(world, public_rate_per_minute=public_rate_per_minute) as api:
        yield api


@contextmanager
def serve(world: SeededWorld, *, public_rate_per_minute: int, **settings: Any) -> Iterator[Api]:
    """An in-process app over a seeded world's database until the block ends (`settings`:
    further Settings fields, e.g. capture_max_events)."""
    app_settings = Settings(
        _env_file=None,
        database_url=world.database_url,  # type: ignore[call-arg]
        chain_rpc_url=world.chain_rpc_url,
        api_public_rate_per_minute=public_rate_per_minute,
        api_metrics_token=METRICS_TOKEN,
        **settings,
    )
    with (
        psycopg.connect(world.database_url, autocommit=True) as conn,
        api_pool(app_settings) as pool,
        TestClient(build_app(app_settings, pool), raise_server_exceptions=False) as client,
    ):
        yield Api(client, world.keys, conn, world.digests, world.chain_rpc_url)


@contextmanager
def copy_of(world: SeededWorld) -> Iterator[SeededWorld]:
    """A world of the test's own, as if just seeded: a copy of the seeded database, and the
    chain put back (an anvil snapshot) afterwards, so on-chain changes do not outlive the test.

    Copying a database is a file copy; seeding deploys contracts and anchors, seconds each."""
    chain = connect(world.chain_rpc_url)
    snapshot = chain.provider.make_request("evm_snapshot", [])["result"]
    template = str(psycopg.conninfo.conninfo_to_dict(world.database_url)["dbname"])
    name = f"{template}_{secrets.token_hex(3)}"
    admin = admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        url = psycopg.conninfo.make_conninfo(world.database_url, dbname=name)
        yield SeededWorld(url, world.chain_rpc_url, world.keys, world.digests)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        reverted = chain.provider.make_request("evm_revert", [snapshot])
        assert reverted.get("result") is True, f"chain not put back: {reverted}"


@contextmanager
def seeded_api(chain_rpc_url: str) -> Iterator[Api]:
    """The world in a database of its own, for a module-scoped rig (thousands of requests)."""
    with (
        scratch_database(admin_url(), "tracefin_test") as url,
        serve_world(url, chain_rpc_url, public_rate_per_minute=1_000_000) as api,
    ):
        yield api


@dataclass
class ThreadedApp:
    """An app served by uvicorn in a thread of the test process, on 127.0.0.1."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@contextmanager
def app_in_thread(app: FastAPI, port: int) -> Iterator[ThreadedApp]:
    """`app` under uvicorn on `port` (lifespan on: its page cache and listeners run) until the
    block ends; started (or failed) before the block begins, shut down after it."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    running = ThreadedApp(f"http://127.0.0.1:{port}", server, thread)
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn exited before it started (port taken?)"
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.02)
        yield running
    finally:
        running.stop()
    assert not thread.is_alive(), "uvicorn did not shut down within 15 s"
