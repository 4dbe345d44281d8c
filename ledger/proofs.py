"""Proof bundles: the self-contained JSON that proves an event's inclusion in an anchored batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from epcis.event_hash import hash_id_from_digest
from ledger import log_store
from ledger.merkle import MerkleTree
from records import event_store
from records.db import Conn

BUNDLE_VERSION = 1


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def build_bundle(conn: Conn, digest: bytes) -> dict[str, Any] | None:
    """The bundle of a stored event (`status` pending or anchored); None for an unknown event.

    Field names and meanings are a public contract (design.md, "Proof bundle").
    """
    if not event_store.event_exists(conn, digest):
        return None
    return build_bundles(conn, [digest])[digest]


def build_bundles(conn: Conn, digests: Sequence[bytes]) -> dict[bytes, dict[str, Any]]:
    """The bundles of many stored events at once: one tree per batch, however many events in it.

    The caller vouches that the events are stored (a provenance page just read them).
    """
    bundles = {
        digest: {
            "version": BUNDLE_VERSION,
            "status": "pending",
            "event_hash": hash_id_from_digest(digest),
        }
        for digest in digests
    }
    deployment = log_store.current_deployment(conn)
    positions = log_store.positions_of(conn, list(bundles))
    if deployment is None or not positions:
        return bundles
    covering = log_store.batches_covering(conn, deployment.id, sorted(positions.values()))
    trees: dict[int, MerkleTree] = {}
    for digest, position in positions.items():
        batch = covering.get(position)
        if batch is None:
            bundles[digest]["log_index"] = position
            continue
        tree = trees.get(batch.batch_id)
        if tree is None:
            tree = trees[batch.batch_id] = MerkleTree(
                log_store.entries(conn, batch.first_index, batch.count)
            )
        leaf_index = position - batch.first_index
        bundles[digest] = {
            "version": BUNDLE_VERSION,
            "status": "anchored",
            "event_hash": hash_id_from_digest(digest),
            "leaf_index": leaf_index,
            "tree_size": batch.count,
            "audit_path": [_hex(node) for node in tree.audit_path(leaf_index)],
            "root": _hex(batch.root),
            "batch_id": batch.batch_id,
            "first_index": batch.first_index,
            "chain_id": deployment.chain_id,
            "contract": deployment.anchor_address,
            "tx_hash": _hex(batch.tx_hash),
            "block_number": batch.block_number,
            "log_index": position,
        }
    return bundles
