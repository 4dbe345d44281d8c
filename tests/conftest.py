"""Test fixtures: real PostgreSQL, Mosquitto and anvil, each found or started for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from _pytest.nodeid import NodeId
from hypothesis import settings

from records.db import Conn
from tests.support.examples import CI_EXAMPLES, DEV_EXAMPLES, profile_from_environment
from tests.support.postgres import admin_url
from tracefin.embedded import RunningService, ServiceUnavailable, start_anvil, start_mosquitto
from tracefin.native import native_state, package_dir, stale_build_message
from tracefin.schema import scratch_database

# Loaded before any test module is imported, so `examples()` in their @settings sees it.
settings.register_profile("ci", max_examples=CI_EXAMPLES, print_blob=True)
settings.register_profile("dev", max_examples=DEV_EXAMPLES)
HYPOTHESIS_PROFILE = profile_from_environment()
settings.load_profile(HYPOTHESIS_PROFILE)


def pytest_report_header() -> str:
    return f"hypothesis profile: {HYPOTHESIS_PROFILE}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test old code: Python imports a compiled module (`make native`) in preference
    to its source, so one built before the source's last change would be tested instead."""
    stale = stale_build_message(native_state(package_dir()))
    if stale is not None:
        pytest.exit(stale, returncode=2)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` (make test): tests that share a module-scoped rig run on one
    worker, in file order (the rig is built once, and a module's closing checks see what its
    earlier tests did), a test's own `xdist_group` mark puts it with its group, and every
    other test goes to whichever worker is free. The longest chain, a group of its own
    (`xdist_group`: the chaos tests), is handed out first, then modules with slow tests, so the
    longest chains start at once (make test turns off xdist's reordering by group size, which
    would put the chaos group behind larger but quicker groups)."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        group = _group(item)
        if group is not None:
            # What pytest-xdist 3.8 itself does to `item._nodeid`, which pytest 9 no longer
            # reads: the node id, suffixed `@group`, is how the controller sees the group.
            item._id = NodeId.parse(f"{item.nodeid}@{group}")
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    grouped = {item.path for item in items if item.get_closest_marker("xdist_group")}
    # Stable: file order kept within each rank.
    items.sort(key=lambda item: (item.path not in grouped, item.path not in slow))


def _group(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    info = getattr(item, "_fixtureinfo", None)
    shared = sorted(
        name
        for name, definitions in (info.name2fixturedefs.items() if info else ())
        if definitions and definitions[-1].scope in ("module", "class", "package")
    )
    if not shared:
        return None
    # A parametrized module rig is one rig per parameter: each may go to its own worker.
    callspec = getattr(item, "callspec", None)
    params = [
        f"{name}={callspec.params[name]}" for name in shared if callspec and name in callspec.params
    ]
    module = item.nodeid.split("::")[0]
    return f"{module}({','.join(params)})" if params else module


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
