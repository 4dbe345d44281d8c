"""Test fixtures: real PostgreSQL, Mosquitto and anvil, each found or started for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings

from records.db import Conn
from tests.support.examples import CI_EXAMPLES, DEV_EXAMPLES, profile_from_environment
from tests.support.postgres import admin_url
from tracefin.embedded import RunningService, ServiceUnavailable, start_anvil, start_mosquitto
from tracefin.schema import scratch_database

# Loaded before any test module is imported, so `examples()` in their @settings sees it.
settings.register_profile("ci", max_examples=CI_EXAMPLES, print_blob=True)
settings.register_profile("dev", max_examples=DEV_EXAMPLES)
HYPOTHESIS_PROFILE = profile_from_environment()
settings.load_profile(HYPOTHESIS_PROFILE)


def pytest_report_header() -> str:
    return f"hypothesis profile: {HYPOTHESIS_PROFILE}"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, tests that share a module- or class-scoped rig run on one
    worker, in file order (the rig is built once, and a module's closing checks see what its
    earlier tests did); every other test goes to whichever worker is free. A test's own
    `xdist_group` mark wins."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None and _shares_a_rig(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def _shares_a_rig(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definitions[-1].scope in ("module", "class", "package")
        for definitions in info.name2fixturedefs.values()
        if definitions
    )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    with scratch_database(admin_url(), "tracefin_test") as url:
        yield url


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A fresh, migrated database of its own, for a test that owns the whole event log."""
    with scratch_database(admin_url(), "tracefin_test") as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TRACEFIN_TEST_MQTT_URL, or a private Mosquitto with tracefin's broker settings."""
    configured = os.environ.get("TRACEFIN_TEST_MQTT_URL")
    if configured:
        yield configured
        return
    try:
        broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    except ServiceUnavailable as exc:
        pytest.skip(f"no MQTT broker: {exc}; or set TRACEFIN_TEST_MQTT_URL")
    yield broker.url
    broker.stop()


@pytest.fixture(scope="session")
def chain_rpc_url() -> Iterator[str]:
    """TRACEFIN_TEST_CHAIN_RPC_URL, or anvil from node_modules on a free port."""
    configured = os.environ.get("TRACEFIN_TEST_CHAIN_RPC_URL")
    if configured:
        yield configured
        return
    node: RunningService | None = None
    try:
        node = start_anvil()
    except ServiceUnavailable as exc:
        pytest.skip(f"no chain node: {exc}; or set TRACEFIN_TEST_CHAIN_RPC_URL")
    yield node.url
    node.stop()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
