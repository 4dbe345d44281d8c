"""Batches the provenance pages call anchored, confirmed against the chain once per batch record.

A page is built from the database, so an edited `anchor_batches` row (another transaction, another
block) would otherwise be shown as anchored with the forged transaction as its evidence. Each
distinct batch record a page cites is checked against the chain the way `tracefin verify`
checks a bundle, and the verdict is kept in this process (not in the database an attacker could
edit): confirmations for good, refutations for a minute (a node failing mid-check must not
condemn a batch for ever). While the node is unreachable nothing is decided and pages say what
the records say, uncached.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Collection, Mapping

from web3 import Web3

from ledger.bundle import AnchoredBatch, Bundle, TrustedAnchor
from ledger.chain import connect
from ledger.verify import contradictions, untrusted

log = logging.getLogger(__name__)

_REFUTED_FOR_S = 60.0
_UNREACHABLE_BACKOFF_S = 5.0
_MAX_VERDICTS = 100_000


def _key(batch: AnchoredBatch) -> AnchoredBatch:
    # Addresses differ in case only (EIP-55 checksums): one record, one verdict.
    return dataclasses.replace(batch, contract=batch.contract.lower())


class BatchConfirmations:
    """Asks the chain whether batch records are true; None for every answer without a chain."""

    def __init__(self, rpc_url: str | None, pinned: frozenset[TrustedAnchor] = frozenset()) -> None:
        self._w3 = connect(rpc_url, timeout=2.0) if rpc_url else None
        # The TraceAnchors the operator pinned (TRACEFIN_CHAIN_TRUSTED_ANCHORS); empty: the
        # deployments the database recorded (log_store.trusted_anchors).
        self.pinned = pinned
        self._lock = threading.Lock()
        self._verdicts: dict[AnchoredBatch, tuple[bool, float]] = {}  # true?, valid until
        self._unreachable_until = 0.0

    @property
    def asks_a_chain(self) -> bool:
        return self._w3 is not None

    def refuted(
        self, bundles: Mapping[bytes, Bundle], trusted: Collection[TrustedAnchor]
    ) -> dict[bytes, bool | None]:
        """Per event digest of `bundles`: True when the chain contradicts its batch record or
        the record names a TraceAnchor not `trusted`, False when the chain confirms it, None
        when the chain could not be asked. Bundles that are not anchored are left out. Each
        distinct batch record is asked about once."""
        records: dict[bytes, AnchoredBatch] = {}
        first: dict[AnchoredBatch, AnchoredBatch] = {}
        for digest, bundle in bundles.items():
            if bundle.inclusion is None:
                continue  # pending: nothing to confirm
            batch = bundle.inclusion.batch
            records[digest] = _key(batch)
            first.setdefault(records[digest], batch)
        verdicts = {
            key: True if untrusted(batch, trusted) else self._refuted(key, batch)
            for key, batch in first.items()
        }
        return {digest: verdicts[key] for digest, key in records.items()}

    def _refuted(self, key: AnchoredBatch, batch: AnchoredBatch) -> bool | None:
        now = time.monotonic()
        with self._lock:
            known = self._verdicts.get(key)
            if known is not None and known[1] > now:
                return not known[0]
            if self._w3 is None or self._unreachable_until > now:
                return None
        try:
            reasons = self._contradictions(batch, self._w3)
        except Exception as exc:  # a dead or garbled node: decide nothing
            log.warning("cannot confirm batch %d against the chain: %s", batch.batch_id, exc)
            with self._lock:
                self._unreachable_until = time.monotonic() + _UNREACHABLE_BACKOFF_S
            return None
        if reasons:
            log.warning("batch %d record contradicts the chain: %s", batch.batch_id, reasons)
        with self._lock:
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()
            until = now + _REFUTED_FOR_S if reasons else float("inf")
            self._verdicts[key] = (not reasons, until)
        return bool(reasons)

    @staticmethod
    def _contradictions(batch: AnchoredBatch, w3: Web3) -> list[str]:
        # No code at the address is a contradiction, not a node that cannot be asked (as the
        # calls to a missing contract would otherwise make it look): an edited deployment row.
        if not w3.eth.get_code(Web3.to_checksum_address(batch.contract)):
            return [f"no contract at {batch.contract}"]
        return contradictions(batch, w3)
