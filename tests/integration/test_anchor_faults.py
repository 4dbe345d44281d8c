"""Anchoring under chain faults: a node that stops answering, and a devnet that is reset."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger import log_store
from ledger.bundle import TrustedAnchor
from ledger.chain import connect
from ledger.deployment import ensure_deployment
from ledger.proofs import build_bundle
from ledger.verify import verify_bundle
from records.db import Conn
from tests.support.events import store_events, wait_anchored
from tests.support.processes import WorkerProcess
from tracefin.embedded import RunningService, free_port, start_anvil
from tracefin.settings import DEVNET_PRIVATE_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def private_chain() -> Iterator[list[RunningService]]:
    """An anvil of this test's own (it gets stopped and reset); the list holds every life."""
    port = free_port()
    lives = [start_anvil(port)]
    yield lives
    for node in lives:
        if node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGCONT)
        node.stop()


def recorded(conn: Conn) -> frozenset[TrustedAnchor]:
    """The TraceAnchors of every deployment the database recorded: what a verifier trusts."""
    return log_store.trusted_anchors(conn, frozenset())


def status(conn: Conn) -> tuple[str, str] | None:
    return log_store.worker_state(conn, "anchor")


def wait_status(conn: Conn, state: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while (status(conn) or ("", ""))[0] != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"anchor state is {status(conn)}, expected {state}")
        time.sleep(0.1)


def test_chain_down_then_back_catches_up(
    conn: Conn,
    private_chain: list[RunningService],
    start_anchor: Callable[..., WorkerProcess],
) -> None:
    node = private_chain[0]
    deployment = ensure_deployment(conn, connect(node.url), DEVNET_PRIVATE_KEY).deployment
    worker = start_anchor(node.url, anchor_receipt_timeout_s="2")
    store_events(conn, 200)
    wait_anchored(conn, deployment.id, 200)

    os.killpg(node.process.pid, signal.SIGSTOP)  # the node hangs: no answers, no errors
    try:
        store_events(conn, 300)  # the event store keeps taking events meanwhile
        wait_status(conn, "chain_unavailable")
        assert log_store.anchored_end(conn, deployment.id) == 200
        assert worker.alive
    finally:
        os.killpg(node.process.pid, signal.SIGCONT)
    wait_anchored(conn, deployment.id, 500, timeout=60)
    assert log_store.anchored_end(conn, deployment.id) == log_store.log_size(conn) == 500
    assert "chain unavailable" in worker.log_text()


def test_devnet_reset_stops_anchoring_until_redeployed_then_reanchors_from_zero(
    conn: Conn,
    private_chain: list[RunningService],
    start_anchor: Callable[..., WorkerProcess],
    fresh_database_url: str,
    tmp_path: Path,
) -> None:
    node = private_chain[0]
    old = ensure_deployment(conn, connect(node.url), DEVNET_PRIVATE_KEY).deployment
    worker = start_anchor(node.url)
    digests = store_events(conn, 150)
    wait_anchored(conn, old.id, 150)
    old_bundle = build_bundle(conn, digests[10])
    assert old_bundle is not None
    assert verify_bundle(old_bundle, connect(node.url), recorded(conn)).valid

    # Reset: a fresh chain on the same URL (same chain id, new genesis, no contracts).
    port = int(node.url.rsplit(":", 1)[1])
    node.stop()
    private_chain.append(start_anvil(port))
    store_events(conn, 50)
    wait_status(conn, "devnet_reset")
    assert "DEVNET RESET" in worker.log_text()
    time.sleep(1)
    assert log_store.anchored_end(conn, old.id) == 150  # nothing anchored on the new chain
    # The old proof is not claimed valid against the new chain.
    verdict = verify_bundle(old_bundle, connect(node.url), recorded(conn))
    assert not verdict.valid

    outcome = ensure_deployment(conn, connect(node.url), DEVNET_PRIVATE_KEY)
    assert outcome.created
    assert outcome.replaced is not None
    assert outcome.replaced.id == old.id
    wait_anchored(conn, outcome.deployment.id, 200, timeout=60)
    new_bundle = build_bundle(conn, digests[10])
    assert new_bundle is not None
    assert new_bundle.to_json()["contract"] == outcome.deployment.anchor_address
    assert verify_bundle(new_bundle, connect(node.url), recorded(conn)).valid
    assert json.dumps(new_bundle.to_json()) != json.dumps(old_bundle.to_json())
