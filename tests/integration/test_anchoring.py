"""Anchoring over real PostgreSQL and anvil: batches, proofs, verification, failover, reconcile."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from epcis.event_hash import hash_id_from_digest
from ledger import log_store, merkle
from ledger.bundle import TrustedAnchor
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from ledger.proofs import build_bundle
from ledger.verify import verify_bundle
from records.db import Conn
from tests.support.cli import tracefin_only as tracefin
from tests.support.events import store_events, wait_anchored
from tests.support.processes import WorkerProcess
from tracefin.settings import DEVNET_PRIVATE_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(conn: Conn, chain_rpc_url: str) -> log_store.Deployment:
    return ensure_deployment(conn, connect(chain_rpc_url), DEVNET_PRIVATE_KEY).deployment


@pytest.mark.slow
def test_every_event_is_anchored_and_its_bundle_verifies_with_only_the_chain(
    conn: Conn,
    deployment: log_store.Deployment,
    start_anchor: Callable[..., WorkerProcess],
    fresh_database_url: str,
    chain_rpc_url: str,
    tmp_path: Path,
) -> None:
    digests = store_events(conn, 2_500)
    pending = build_bundle(conn, digests[0])
    assert pending is not None
    assert pending.to_json() == {
        "version": 1,
        "status": "pending",
        "event_hash": hash_id_from_digest(digests[0]),
    }
    start_anchor()
    wait_anchored(conn, deployment.id, 2_500)

    chain = Chain(connect(chain_rpc_url), deployment.anchor_address)
    assert chain.next_index() == 2_500
    recorded = log_store.batches(conn, deployment.id)
    assert [(b.first_index, b.count) for b in recorded] == [(0, 1000), (1000, 1000), (2000, 500)]
    # Positions follow ingest order.
    assert log_store.entries(conn, 0, 2_500) == digests

    db_env = {"TRACEFIN_DATABASE_URL": fresh_database_url, "TRACEFIN_CHAIN_RPC_URL": chain_rpc_url}
    nowhere = tmp_path / "verifier"  # no database settings, no .env: only the bundle and the RPC
    nowhere.mkdir()
    pin = ("--rpc", chain_rpc_url, "--chain-id", "31337", "--contract", deployment.anchor_address)
    for digest in (digests[0], digests[1_234], digests[-1]):
        printed = tracefin("proof", hash_id_from_digest(digest), env=db_env)
        assert printed.returncode == 0, printed.stderr
        bundle = json.loads(printed.stdout)
        assert bundle["status"] == "anchored"
        assert bundle["contract"] == deployment.anchor_address
        path = nowhere / "bundle.json"
        path.write_text(printed.stdout)
        verified = tracefin("verify", "--bundle", str(path), *pin, env={}, cwd=nowhere)
        assert (verified.returncode, json.loads(verified.stdout)) == (
            0,
            {"valid": True, "reasons": []},
        ), verified.stderr

    # Any change to the bundle is caught, with a reason.
    built = build_bundle(conn, digests[1_234])
    assert built is not None
    bundle = built.to_json()
    w3 = connect(chain_rpc_url)
    trusted = log_store.trusted_anchors(conn, frozenset())
    assert trusted == {TrustedAnchor.of(31337, deployment.anchor_address)}
    tampered_cases = {
        "audit_path": {
            **bundle,
            "audit_path": [
                bundle["audit_path"][1],
                bundle["audit_path"][0],
                *bundle["audit_path"][2:],
            ],
        },
        "leaf_index": {**bundle, "leaf_index": bundle["leaf_index"] + 1},
        "event_hash": {**bundle, "event_hash": hash_id_from_digest(digests[1_235])},
        "root": {**bundle, "root": "0x" + "11" * 32},
        "batch_id": {**bundle, "batch_id": 0},
        "chain_id": {**bundle, "chain_id": 1},
        "tx_hash": {**bundle, "tx_hash": "0x" + "22" * 32},
    }
    for field, tampered in tampered_cases.items():
        verdict = verify_bundle(tampered, w3, trusted)
        assert not verdict.valid, field
        assert verdict.reasons, field
    path = nowhere / "tampered.json"
    path.write_text(json.dumps(tampered_cases["root"]))
    refused = tracefin("verify", "--bundle", str(path), *pin, env={}, cwd=nowhere)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["valid"] is False

    # `tracefin verify EVENT_HASH` builds the bundle from the database and checks it the same way.
    by_hash = tracefin("verify", hash_id_from_digest(digests[7]), env=db_env)
    assert by_hash.returncode == 0, by_hash.stderr


def test_unknown_event_hash_is_a_clear_error(fresh_database_url: str) -> None:
    unknown = hash_id_from_digest(secrets.token_bytes(32))
    result = tracefin("proof", unknown, env={"TRACEFIN_DATABASE_URL": fresh_database_url})
    assert result.returncode == 2
    assert "no stored event has the hash" in result.stderr
    malformed = tracefin("proof", "sha256:abc", env={"TRACEFIN_DATABASE_URL": fresh_database_url})
    assert malformed.returncode == 2
    assert "not an EPCIS event hash id" in malformed.stderr


def test_a_second_anchor_takes_over_when_the_leader_dies(
    conn: Conn,
    deployment: log_store.Deployment,
    start_anchor: Callable[..., WorkerProcess],
    chain_rpc_url: str,
) -> None:
    first, second = start_anchor(), start_anchor()
    store_events(conn, 300)
    wait_anchored(conn, deployment.id, 300)
    leaders = [w for w in (first, second) if "this process is the leader" in w.log_text()]
    assert len(leaders) == 1
    leader = leaders[0]
    standby = second if leader is first else first
    leader.kill()
    store_events(conn, 300)
    took = wait_anchored(conn, deployment.id, 600, timeout=30)
    assert took < 15, f"stand-by took {took:.1f}s to take over"
    assert "this process is the leader" in standby.log_text()
    chain = Chain(connect(chain_rpc_url), deployment.anchor_address)
    # Nothing anchored twice: the chain's log is exactly the database's log.
    assert chain.next_index() == log_store.log_size(conn) == 600
    assert chain.batch_count() == log_store.batch_count(conn, deployment.id)


def test_a_batch_sent_but_not_recorded_is_reconciled_not_sent_again(
    conn: Conn,
    deployment: log_store.Deployment,
    start_anchor: Callable[..., WorkerProcess],
    chain_rpc_url: str,
) -> None:
    digests = store_events(conn, 120)
    # What a leader does before it crashes between sending and recording:
    assert log_store.assign_positions(conn, 100) == 100
    chain = Chain(connect(chain_rpc_url), deployment.anchor_address, None, DEVNET_PRIVATE_KEY)
    sent = chain.anchor_batch(0, 100, merkle.root(digests[:100]))
    assert log_store.batch_count(conn, deployment.id) == 0

    worker = start_anchor()
    wait_anchored(conn, deployment.id, 120)
    recorded = log_store.batches(conn, deployment.id)
    assert (recorded[0].batch_id, recorded[0].tx_hash, recorded[0].count) == (0, sent.tx_hash, 100)
    assert [(b.first_index, b.count) for b in recorded] == [(0, 100), (100, 20)]
    assert chain.batch_count() == 2
    assert "found on chain but not in the database" in worker.log_text()
