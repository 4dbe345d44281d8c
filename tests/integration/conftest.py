"""Integration fixtures: real worker processes, an MQTT listener, devices, the API's world."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from epcis.signatures import address_of
from ingest.mqtt_link import new_client
from records import registry_store
from records.db import Conn
from tests.support.api import Api, SeededWorld, copy_of, serve
from tests.support.mqtt import Listener, RegisteredDevice
from tests.support.postgres import admin_url
from tests.support.processes import IngestProcess, WorkerProcess
from tests.support.world import seed_world
from tracefin.embedded import ServiceUnavailable, start_anvil
from tracefin.schema import scratch_database
from tracefin.simulate import Publisher


@pytest.fixture
def start_ingest(
    database_url: str, mqtt_url: str, tmp_path: Path
) -> Iterator[Callable[..., IngestProcess]]:
    started: list[IngestProcess] = []

    def start(**settings: str) -> IngestProcess:
        worker = IngestProcess(database_url, mqtt_url, tmp_path, **settings)
        worker.start()
        worker.wait_until_subscribed()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def listener(mqtt_url: str) -> Iterator[Listener]:
    client, address = new_client(mqtt_url, f"test-listener-{secrets.token_hex(4)}")
    state = Listener(client)
    client.on_message = state.on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(address.host, address.port)
    client.subscribe([("tf/+/+/receipts", 1), ("tf/+/+/rejects", 1)])
    client.loop_start()
    assert subscribed.wait(10), "listener could not subscribe"
    yield state
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def publisher(mqtt_url: str) -> Iterator[Publisher]:
    client = Publisher(mqtt_url, f"test-pub-{secrets.token_hex(4)}")
    yield client
    client.close()


@pytest.fixture
def org(db: Conn) -> str:
    slug = f"org-{secrets.token_hex(4)}"
    registry_store.add_org(db, slug, "manufacturer")
    return slug


@pytest.fixture
def make_device(db: Conn, org: str) -> Callable[..., RegisteredDevice]:
    def make(*, signed: bool = True) -> RegisteredDevice:
        device_id = f"dev-{secrets.token_hex(4)}"
        key = secrets.token_bytes(32) if signed else None
        registry_store.add_device(db, org, device_id, address_of(key) if key else None)
        return RegisteredDevice(org, device_id, key)

    return make


@pytest.fixture
def start_anchor(
    fresh_database_url: str, chain_rpc_url: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(rpc_url: str | None = None, **settings: str) -> WorkerProcess:
        env = {
            "TRACEFIN_DATABASE_URL": fresh_database_url,
            "TRACEFIN_CHAIN_RPC_URL": rpc_url or chain_rpc_url,
            "TRACEFIN_ANCHOR_BATCH_SIZE": "1000",
            "TRACEFIN_ANCHOR_BATCH_MAX_WAIT_MS": "100",
            **{f"TRACEFIN_{key.upper()}": value for key, value in settings.items()},
        }
        worker = WorkerProcess(["anchor"], env, tmp_path, f"anchor-{len(started)}")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def conn(fresh_database_url: str) -> Iterator[Conn]:
    """An autocommit connection to this test's own database."""
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def seeded_world() -> Iterator[SeededWorld]:
    """The API's world, seeded once per session (per xdist worker) on a chain of its own, which
    `world` snapshots and reverts around every test."""
    try:
        node = start_anvil()
    except ServiceUnavailable as exc:
        pytest.skip(f"no chain node for the seeded world: {exc}")
    try:
        with scratch_database(admin_url(), "tracefin_world") as url:
            with psycopg.connect(url, autocommit=True) as conn:
                keys, digests = seed_world(conn, node.url)
            yield SeededWorld(url, node.url, keys, digests)
    finally:
        node.stop()


@pytest.fixture
def mine(seeded_world: SeededWorld) -> Iterator[SeededWorld]:
    """The seeded world, a copy of this test's own (database and chain), to change at will."""
    with copy_of(seeded_world) as copy:
        yield copy


@pytest.fixture
def world(mine: SeededWorld) -> Iterator[Api]:
    """The API in process over `mine` (a test may also serve `mine` another way, or restart)."""
    with serve(mine, public_rate_per_minute=10_000) as api:
        yield api
