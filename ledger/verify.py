"""Verify a proof bundle with nothing but a chain RPC endpoint: no database, usable as a library."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

from epcis.event_hash import digest_from_hash_id
from ledger.chain import Chain, ChainError
from ledger.merkle import verify_inclusion

_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class BundleError(ValueError):
    """The bundle is not a well-formed tracefin proof bundle."""


@dataclass(frozen=True)
class Bundle:
    digest: bytes
    leaf_index: int
    tree_size: int
    audit_path: tuple[bytes, ...]
    root: bytes
    batch_id: int
    first_index: int
    chain_id: int
    contract: str
    tx_hash: bytes
    block_number: int


@dataclass
class Verdict:
    valid: bool
    reasons: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "reasons": self.reasons}


def parse_bundle(raw: object) -> Bundle:
    """Check the bundle's shape (design.md, "Proof bundle"); BundleError says what is wrong."""
    if not isinstance(raw, Mapping):
        raise BundleError("a bundle is a JSON object")
    if raw.get("version") != 1:
        raise BundleError(f"unsupported bundle version {raw.get('version')!r}")
    if raw.get("status") != "anchored":
        raise BundleError(f"the event is not anchored yet (status {raw.get('status')!r})")
    try:
        digest = digest_from_hash_id(str(raw.get("event_hash")))
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    path = raw.get("audit_path")
    if not isinstance(path, list) or not all(
        isinstance(p, str) and _BYTES32.match(p) for p in path
    ):
        raise BundleError("audit_path must be a list of 0x-prefixed 32-byte hex strings")
    return Bundle(
        digest=digest,
        leaf_index=_int(raw, "leaf_index"),
        tree_size=_int(raw, "tree_size"),
        audit_path=tuple(bytes.fromhex(p[2:]) for p in path),
        root=_bytes32(raw, "root"),
        batch_id=_int(raw, "batch_id"),
        first_index=_int(raw, "first_index"),
        chain_id=_int(raw, "chain_id"),
        contract=_address(raw, "contract"),
        tx_hash=_bytes32(raw, "tx_hash"),
        block_number=_int(raw, "block_number"),
    )


def verify_bundle(raw: object, w3: Web3) -> Verdict:
    """Recompute the root from the event hash and path, then check it against the chain."""
    try:
        bundle = parse_bundle(raw)
    except BundleError as exc:
        return Verdict(False, [str(exc)])
    reasons: list[str] = []
    if not verify_inclusion(
        bundle.digest, bundle.leaf_index, bundle.tree_size, bundle.audit_path, bundle.root
    ):
        reasons.append("the audit path does not lead from the event hash to the root")
    try:
        reasons.extend(contradictions(bundle, w3))
    except ChainError as exc:
        return Verdict(False, [*reasons, f"cannot check the chain: {exc}"])
    except Exception as exc:  # a node answering garbage must not crash a verifier
        return Verdict(False, [*reasons, f"cannot check the chain: {exc}"])
    return Verdict(not reasons, reasons)


def contradictions(bundle: Bundle, w3: Web3) -> list[str]:
    """What the chain behind `w3` says against the bundle's batch record (nothing: it agrees);
    raises when the node cannot be asked."""
    chain_id = int(w3.eth.chain_id)
    if chain_id != bundle.chain_id:
        return [f"chain id is {chain_id}, bundle says {bundle.chain_id}"]
    return check_chain(bundle, Chain(w3, bundle.contract))


def check_chain(bundle: Bundle, chain: Chain) -> list[str]:
    reasons = []
    if chain.batch_count() <= bundle.batch_id:
        return [f"batch {bundle.batch_id} does not exist on contract {bundle.contract}"]
    batch = chain.batch(bundle.batch_id)
    if batch.root != bundle.root:
        reasons.append(f"batch {bundle.batch_id} on chain has root 0x{batch.root.hex()}")
    if (batch.first_index, batch.count) != (bundle.first_index, bundle.tree_size):
        reasons.append(
            f"batch {bundle.batch_id} on chain covers {batch.count} positions from"
            f" {batch.first_index}, bundle says {bundle.tree_size} from {bundle.first_index}"
        )
    try:
        receipt = chain.w3.eth.get_transaction_receipt(HexBytes(bundle.tx_hash))
    except Exception:
        return [*reasons, f"transaction 0x{bundle.tx_hash.hex()} not found on chain"]
    if receipt["status"] != 1 or int(receipt["blockNumber"]) != bundle.block_number:
        reasons.append("the transaction failed or is not in the bundle's block")
    logs = [
        event["args"]
        for event in chain.anchor.events.BatchAnchored().process_receipt(receipt)
        if str(event["address"]).lower() == bundle.contract.lower()
    ]
    expected = (bundle.batch_id, bundle.root, bundle.first_index, bundle.tree_size)
    if not any(
        (int(a["batchId"]), bytes(a["root"]), int(a["firstIndex"]), int(a["count"])) == expected
        for a in logs
    ):
        reasons.append("the transaction has no BatchAnchored log matching the bundle")
    return reasons


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BundleError(f"{key} must be a non-negative integer")
    return value


def _bytes32(raw: Mapping[str, Any], key: str) -> bytes:
    value = raw.get(key)
    if not isinstance(value, str) or not _BYTES32.match(value):
        raise BundleError(f"{key} must be a 0x-prefixed 32-byte hex string")
    return bytes.fromhex(value[2:])


def _address(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise BundleError(f"{key} must be a 0x-prefixed 20-byte address")
    return value
