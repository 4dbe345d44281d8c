"""Verify a proof bundle with nothing but a chain RPC endpoint: no database, usable as a library."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

from ledger.bundle import AnchoredBatch, Bundle, BundleError, TrustedAnchor
from ledger.chain import Chain, ChainError

# The reason a bundle for a TraceAnchor the verifier does not trust starts with (design.md,
# "Proof bundle"): a machine-readable prefix, then the contract it names and the trusted ones.
UNKNOWN_CONTRACT = "unknown_contract"


@dataclass
class Verdict:
    valid: bool
    reasons: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "reasons": self.reasons}


def verify_bundle(bundle: Bundle | object, w3: Web3, trusted: Collection[TrustedAnchor]) -> Verdict:
    """Recompute the root from the event hash and path, then check it against the chain.

    `bundle` is a Bundle or its JSON (design.md, "Proof bundle"), read here. Only a batch on one
    of the `trusted` TraceAnchors can be valid: a bundle's own contract proves nothing, since
    anyone can deploy one and anchor what they like on it.
    """
    if not isinstance(bundle, Bundle):
        try:
            bundle = Bundle.from_json(bundle, anchored_only=True)
        except BundleError as exc:
            return Verdict(False, [str(exc)])
    if bundle.inclusion is None:
        return Verdict(False, ["the event is not anchored yet (status 'pending')"])
    batch = bundle.inclusion.batch
    distrust = untrusted(batch, trusted)
    if distrust is not None:
        return Verdict(False, [distrust])
    reasons: list[str] = []
    if not bundle.leads_to_root():
        reasons.append("the audit path does not lead from the event hash to the root")
    try:
        reasons.extend(contradictions(batch, w3))
    except ChainError as exc:
        return Verdict(False, [*reasons, f"cannot check the chain: {exc}"])
    except Exception as exc:  # a node answering garbage must not crash a verifier
        return Verdict(False, [*reasons, f"cannot check the chain: {exc}"])
    return Verdict(not reasons, reasons)


def untrusted(batch: AnchoredBatch, trusted: Collection[TrustedAnchor]) -> str | None:
    """The `unknown_contract` reason when `batch` is not on a trusted TraceAnchor, else None."""
    if batch.anchor in trusted:
        return None
    expected = ", ".join(sorted(str(anchor) for anchor in trusted)) or "none configured"
    return (
        f"{UNKNOWN_CONTRACT}: the bundle's TraceAnchor {batch.anchor} is not one this verifier"
        f" trusts ({expected})"
    )


def contradictions(batch: AnchoredBatch, w3: Web3) -> list[str]:
    """What the chain behind `w3` says against a bundle's batch record (nothing: it agrees);
    raises when the node cannot be asked."""
    chain_id = int(w3.eth.chain_id)
    if chain_id != batch.chain_id:
        return [f"chain id is {chain_id}, bundle says {batch.chain_id}"]
    return check_chain(batch, Chain(w3, batch.contract))


def check_chain(record: AnchoredBatch, chain: Chain) -> list[str]:
    """What `chain` says against the batch record (its contract, not `record.chain_id`)."""
    reasons = []
    if chain.batch_count() <= record.batch_id:
        return [f"batch {record.batch_id} does not exist on contract {record.contract}"]
    batch = chain.batch(record.batch_id)
    if batch.root != record.root:
        reasons.append(f"batch {record.batch_id} on chain has root 0x{batch.root.hex()}")
    if (batch.first_index, batch.count) != (record.first_index, record.tree_size):
        reasons.append(
            f"batch {record.batch_id} on chain covers {batch.count} positions from"
            f" {batch.first_index}, bundle says {record.tree_size} from {record.first_index}"
        )
    try:
        receipt = chain.w3.eth.get_transaction_receipt(HexBytes(record.tx_hash))
    except Exception:
        return [*reasons, f"transaction 0x{record.tx_hash.hex()} not found on chain"]
    if receipt["status"] != 1 or int(receipt["blockNumber"]) != record.block_number:
        reasons.append("the transaction failed or is not in the bundle's block")
    logs = [
        event["args"]
        for event in chain.anchor.events.BatchAnchored().process_receipt(receipt)
        if str(event["address"]).lower() == record.contract.lower()
    ]
    expected = (record.batch_id, record.root, record.first_index, record.tree_size)
    if not any(
        (int(a["batchId"]), bytes(a["root"]), int(a["firstIndex"]), int(a["count"])) == expected
        for a in logs
    ):
        reasons.append("the transaction has no BatchAnchored log matching the bundle")
    return reasons
