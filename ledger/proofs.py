"""Proof bundles from the database: an event's log position, its batch and its audit path."""

from __future__ import annotations

from collections.abc import Sequence

from ledger import log_store
from ledger.bundle import AnchoredBatch, Bundle, Inclusion
from ledger.merkle import MerkleTree
from records import event_store
from records.db import Conn


def build_bundle(conn: Conn, digest: bytes) -> Bundle | None:
    """The bundle of a stored event (pending or anchored); None for an unknown event."""
    if not event_store.event_exists(conn, digest):
        return None
    return build_bundles(conn, [digest])[digest]


def build_bundles(conn: Conn, digests: Sequence[bytes]) -> dict[bytes, Bundle]:
    """The bundles of many stored events at once: one tree per batch, however many events in it.

    The caller vouches that the events are stored (a provenance page just read them).
    """
    bundles = {digest: Bundle(digest) for digest in digests}
    deployment = log_store.current_deployment(conn)
    positions = log_store.positions_of(conn, list(bundles))
    if deployment is None or not positions:
        return bundles
    covering = log_store.batches_covering(conn, deployment.id, sorted(positions.values()))
    trees: dict[int, MerkleTree] = {}
    anchored: dict[int, AnchoredBatch] = {}
    for digest, position in positions.items():
        batch = covering.get(position)
        if batch is None:
            bundles[digest] = Bundle(digest, position)
            continue
        tree = trees.get(batch.batch_id)
        if tree is None:
            tree = trees[batch.batch_id] = MerkleTree(
                log_store.entries(conn, batch.first_index, batch.count)
            )
            anchored[batch.batch_id] = AnchoredBatch(
                batch_id=batch.batch_id,
                root=batch.root,
                first_index=batch.first_index,
                tree_size=batch.count,
                chain_id=deployment.chain_id,
                contract=deployment.anchor_address,
                tx_hash=batch.tx_hash,
                block_number=batch.block_number,
            )
        leaf_index = position - batch.first_index
        inclusion = Inclusion(
            leaf_index, tuple(tree.audit_path(leaf_index)), anchored[batch.batch_id]
        )
        bundles[digest] = Bundle(digest, position, inclusion)
    return bundles
