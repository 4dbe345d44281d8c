"""The pages' chain check decides nothing when it cannot ask a chain, and says so."""

from __future__ import annotations

import pytest

from ledger.bundle import Bundle, TrustedAnchor
from ledger.chain_confirmations import BatchConfirmations
from tracefin.embedded import free_port

pytestmark = pytest.mark.integration

JSON = {
    "version": 1,
    "status": "anchored",
    "event_hash": "ni:///sha-256;" + "ab" * 32 + "?ver=CBV2.0",
    "leaf_index": 0,
    "tree_size": 1,
    "audit_path": [],
    "root": "0x" + "ab" * 32,
    "batch_id": 0,
    "first_index": 0,
    "chain_id": 31337,
    "contract": "0x" + "11" * 20,
    "tx_hash": "0x" + "22" * 32,
    "block_number": 1,
}
BUNDLE = Bundle.from_json(JSON)
PENDING = Bundle.from_json({**JSON, "status": "pending"})
TRUSTED = {TrustedAnchor.of(31337, "0x" + "11" * 20)}


def test_an_unreachable_node_neither_confirms_nor_refutes() -> None:
    confirmations = BatchConfirmations(f"http://127.0.0.1:{free_port()}")
    assert confirmations.asks_a_chain
    assert confirmations.refuted({b"a": BUNDLE, b"b": PENDING}, TRUSTED) == {b"a": None}


def test_without_a_chain_nothing_is_asked() -> None:
    confirmations = BatchConfirmations(None)
    assert not confirmations.asks_a_chain
    assert confirmations.refuted({b"a": BUNDLE}, TRUSTED) == {b"a": None}


def test_a_contract_that_is_not_there_refutes_the_record(chain_rpc_url: str) -> None:
    """A real node that answers, but no contract at the bundle's address (an edited deployment
    record, say): refuted, not merely unknown."""
    confirmations = BatchConfirmations(chain_rpc_url)
    assert confirmations.refuted({b"a": BUNDLE}, TRUSTED) == {b"a": True}


def test_a_record_naming_an_untrusted_contract_is_refuted_without_asking() -> None:
    """A batch record edited to name another TraceAnchor (one an attacker deployed and anchored
    a forged tree on, which the chain would confirm) is refuted whatever that chain says."""
    confirmations = BatchConfirmations(None)
    other = {TrustedAnchor.of(31337, "0x" + "33" * 20)}
    assert confirmations.refuted({b"a": BUNDLE, b"b": PENDING}, other) == {b"a": True}
