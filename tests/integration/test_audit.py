"""`tracefin audit` catches every kind of tampering with stored history, and passes a clean log."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ledger import log_store
from ledger.audit import audit
from ledger.chain import connect
from ledger.deployment import ensure_deployment
from records.db import Conn
from tests.support.cli import run_audit_cli
from tests.support.events import store_events, wait_anchored
from tests.support.processes import WorkerProcess
from tracefin.settings import DEVNET_PRIVATE_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def anchored(
    conn: Conn, chain_rpc_url: str, start_anchor: Callable[..., WorkerProcess]
) -> tuple[log_store.Deployment, list[bytes]]:
    """A log of 60 events in batches of 25, all anchored, and the anchor worker stopped."""
    deployment = ensure_deployment(conn, connect(chain_rpc_url), DEVNET_PRIVATE_KEY).deployment
    digests = store_events(conn, 60)
    worker = start_anchor(anchor_batch_size="25")
    wait_anchored(conn, deployment.id, 60)
    assert worker.terminate() == 0
    return deployment, digests


def kinds(conn: Conn, chain_rpc_url: str) -> set[str]:
    return {finding.kind for finding in audit(conn, connect(chain_rpc_url)).findings}


def test_untouched_history_audits_clean(
    anchored: tuple[log_store.Deployment, list[bytes]],
    fresh_database_url: str,
    chain_rpc_url: str,
) -> None:
    result = run_audit_cli(fresh_database_url, chain_rpc_url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report == {"clean": True, "events_checked": 60, "batches_checked": 3, "findings": []}


def test_an_edited_event_row_is_caught(
    anchored: tuple[log_store.Deployment, list[bytes]],
    conn: Conn,
    chain_rpc_url: str,
    fresh_database_url: str,
) -> None:
    _, digests = anchored
    conn.execute(
        "UPDATE events SET event = jsonb_set(event, '{disposition}', '\"damaged\"')"
        " WHERE event_hash = %s",
        (digests[5],),
    )
    assert kinds(conn, chain_rpc_url) == {"event_altered"}
    result = run_audit_cli(fresh_database_url, chain_rpc_url)
    assert result.returncode == 1
    findings = json.loads(result.stdout)["findings"]
    assert [f["kind"] for f in findings] == ["event_altered"]
    assert digests[5].hex() in findings[0]["detail"]


def test_an_edited_event_with_a_rewritten_hash_is_caught(
    anchored: tuple[log_store.Deployment, list[bytes]], conn: Conn, chain_rpc_url: str
) -> None:
    # A careful forger recomputes the hash column too: the log no longer finds the event.
    _, digests = anchored
    conn.execute(
        "UPDATE events SET event_hash = %s WHERE event_hash = %s", (b"\x01" * 32, digests[5])
    )
    assert {"event_missing", "event_altered", "event_unlogged"} <= kinds(conn, chain_rpc_url)


def test_a_deleted_event_is_caught(
    anchored: tuple[log_store.Deployment, list[bytes]], conn: Conn, chain_rpc_url: str
) -> None:
    _, digests = anchored
    conn.execute("DELETE FROM events WHERE event_hash = %s", (digests[42],))
    assert kinds(conn, chain_rpc_url) == {"event_missing"}


def test_two_swapped_events_are_caught(
    anchored: tuple[log_store.Deployment, list[bytes]], conn: Conn, chain_rpc_url: str
) -> None:
    _, digests = anchored
    with conn.transaction():
        conn.execute("UPDATE log_entries SET log_index = 999999 WHERE log_index = 3")
        conn.execute("UPDATE log_entries SET log_index = 3 WHERE log_index = 4")
        conn.execute("UPDATE log_entries SET log_index = 4 WHERE log_index = 999999")
    assert log_store.entries(conn, 3, 2) == [digests[4], digests[3]]
    assert kinds(conn, chain_rpc_url) == {"batch_root_mismatch"}


def test_an_edited_batch_root_is_caught(
    anchored: tuple[log_store.Deployment, list[bytes]], conn: Conn, chain_rpc_url: str
) -> None:
    deployment, _ = anchored
    conn.execute(
        "UPDATE anchor_batches SET root = %s WHERE deployment_id = %s AND batch_id = 1",
        (b"\x07" * 32, deployment.id),
    )
    assert kinds(conn, chain_rpc_url) == {"batch_root_mismatch", "batch_differs_from_chain"}


def test_a_forged_batch_not_on_chain_is_caught(
    anchored: tuple[log_store.Deployment, list[bytes]], conn: Conn, chain_rpc_url: str
) -> None:
    deployment, _ = anchored
    store_events(conn, 10)
    log_store.assign_positions(conn, 10)
    from ledger import merkle

    log_store.record_batch(
        conn,
        deployment.id,
        batch_id=3,
        first_index=60,
        count=10,
        root=merkle.root(log_store.entries(conn, 60, 10)),
        tx_hash=b"\x09" * 32,
        block_number=1,
    )
    assert kinds(conn, chain_rpc_url) == {"batch_not_on_chain"}
