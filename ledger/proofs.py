"""Proof bundles from the database: an event's log position, its batch and its audit path."""

from __future__ import annotations

from collections.abc import Sequence

from ledger import log_store
from ledger.bundle import AnchoredBatch, Bundle, Inclusion
from ledger.merkle import MerkleTree
from records import event_store
from records.db import Conn


def build_bundle(conn: Conn, digest: bytes) -> Bundle | None:
    """The bundle of a stored event (pending or anchored), by its id or by an id it had under
    an earlier hash rule; None for an unknown event."""
    if not event_store.event_exists(conn, digest):
        current = event_store.event_of_alias(conn, digest)
        if current is None:
            return None
        digest = current
    return build_bundles(conn, [digest])[digest]


def build_bundles(conn: Conn, digests: Sequence[bytes]) -> dict[bytes, Bundle]:
    """The bundles of many stored events at once: one tree per batch, however many events in it.

    The caller vouches that the events are stored (a provenance page just read them). An event
    the log holds under its id of an earlier hash rule gets the bundle of that id (the leaf on
    chain was made from it), naming the current id beside it.
    """
    bundles = {digest: Bundle(digest) for digest in digests}
    deployment = log_store.current_deployment(conn)
    leaves = log_store.leaves_of(conn, list(bundles))
    if deployment is None or not leaves:
        return bundles
    covering = log_store.batches_covering(
        conn, deployment.id, sorted(leaf.log_index for leaf in leaves.values())
    )
    trees: dict[int, MerkleTree] = {}
    anchored: dict[int, AnchoredBatch] = {}
    for digest, leaf in leaves.items():
        position = leaf.log_index
        current = digest if leaf.leaf != digest else None
        batch = covering.get(position)
        if batch is None:
            bundles[digest] = Bundle(leaf.leaf, position, current=current)
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
        bundles[digest] = Bundle(leaf.leaf, position, inclusion, current)
    return bundles
