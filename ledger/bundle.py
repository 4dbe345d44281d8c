"""Proof bundles: what proves an event's inclusion in an anchored batch, typed; pure (no database).

Field names and meanings of the JSON are a public contract (design.md, "Proof bundle"):
`Bundle.to_json` writes it, `Bundle.from_json` reads it, and nothing else spells it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from epcis.event_hash import digest_from_hash_id, hash_id_from_digest
from ledger.merkle import verify_inclusion

BUNDLE_VERSION = 1
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class BundleError(ValueError):
    """The JSON is not a well-formed tracefin proof bundle."""


@dataclass(frozen=True)
class AnchoredBatch:
    """What a bundle says about its batch: the part every event of the batch shares."""

    batch_id: int
    root: bytes
    first_index: int
    tree_size: int
    chain_id: int
    contract: str  # the TraceAnchor address, as recorded
    tx_hash: bytes
    block_number: int

    @property
    def anchor(self) -> TrustedAnchor:
        """The TraceAnchor this record says the batch is on."""
        return TrustedAnchor(self.chain_id, self.contract.lower())


@dataclass(frozen=True)
class TrustedAnchor:
    """A TraceAnchor whose batches a verifier accepts: a chain id and an address (lower case).

    A bundle names its own contract, and anyone can deploy a TraceAnchor and anchor anything
    on it: only a bundle whose contract is one the verifier trusts proves the event was in
    *this* deployment's log.
    """

    chain_id: int
    contract: str

    @classmethod
    def of(cls, chain_id: int, contract: str) -> TrustedAnchor:
        if not _ADDRESS.match(contract):
            raise BundleError(f"{contract!r} is not a 0x-prefixed 20-byte address")
        if chain_id < 0:
            raise BundleError("a chain id is a non-negative integer")
        return cls(chain_id, contract.lower())

    @classmethod
    def parse(cls, text: str) -> TrustedAnchor:
        """`CHAIN_ID:0xADDRESS`, as TRACEFIN_CHAIN_TRUSTED_ANCHORS lists them."""
        chain_id, sep, contract = text.strip().partition(":")
        if not sep or not chain_id.isdigit():
            raise BundleError(f"{text!r} is not CHAIN_ID:0xADDRESS")
        return cls.of(int(chain_id), contract.strip())

    def __str__(self) -> str:
        return f"{self.contract} on chain {self.chain_id}"


def parse_trusted_anchors(text: str) -> frozenset[TrustedAnchor]:
    """A comma-separated list of `CHAIN_ID:0xADDRESS`; BundleError names the bad entry."""
    return frozenset(TrustedAnchor.parse(item) for item in text.split(",") if item.strip())


def anchors_of_deployment(raw: object) -> frozenset[TrustedAnchor]:
    """The `trusted_anchors` of a deployment document (GET /v1/deployment's JSON)."""
    listed = raw.get("trusted_anchors") if isinstance(raw, Mapping) else None
    if not isinstance(listed, list) or not listed:
        raise BundleError("a deployment document lists its trusted_anchors")
    anchors = set()
    for item in listed:
        if not isinstance(item, Mapping):
            raise BundleError("each trusted anchor is an object with chain_id and contract")
        chain_id, contract = item.get("chain_id"), item.get("contract")
        if isinstance(chain_id, bool) or not isinstance(chain_id, int):
            raise BundleError("a trusted anchor's chain_id is an integer")
        if not isinstance(contract, str):
            raise BundleError("a trusted anchor's contract is an address")
        anchors.add(TrustedAnchor.of(chain_id, contract))
    return frozenset(anchors)


@dataclass(frozen=True)
class Inclusion:
    """Where the event sits in its batch's tree, and the path from it to the root."""

    leaf_index: int
    audit_path: tuple[bytes, ...]
    batch: AnchoredBatch


@dataclass(frozen=True)
class Bundle:
    """An event's proof: pending (`inclusion` None) until a batch covering it is anchored."""

    digest: bytes  # what the log holds: the leaf is made from it
    log_index: int | None = None  # None: not positioned in the log yet
    inclusion: Inclusion | None = None
    # The event's identity now, when the log holds it under the id of an earlier hash rule
    # (docs/epcis-hash.md): the proof is of `digest`, the alias that still names the event.
    current: bytes | None = None

    @property
    def status(self) -> Literal["anchored", "pending"]:
        return "pending" if self.inclusion is None else "anchored"

    @property
    def hash_id(self) -> str:
        return hash_id_from_digest(self.digest)

    def leads_to_root(self) -> bool:
        """The audit path leads from the event's digest to the batch root it names."""
        included = self.inclusion
        if included is None:
            return False
        return verify_inclusion(
            self.digest,
            included.leaf_index,
            included.batch.tree_size,
            included.audit_path,
            included.batch.root,
        )

    def to_json(self) -> dict[str, Any]:
        """The public JSON (design.md, "Proof bundle"), fields in their documented order."""
        body: dict[str, Any] = {
            "version": BUNDLE_VERSION,
            "status": self.status,
            "event_hash": self.hash_id,
        }
        included = self.inclusion
        if included is not None:
            batch = included.batch
            body.update(
                leaf_index=included.leaf_index,
                tree_size=batch.tree_size,
                audit_path=[_hex(node) for node in included.audit_path],
                root=_hex(batch.root),
                batch_id=batch.batch_id,
                first_index=batch.first_index,
                chain_id=batch.chain_id,
                contract=batch.contract,
                tx_hash=_hex(batch.tx_hash),
                block_number=batch.block_number,
            )
        if self.log_index is not None:
            body["log_index"] = self.log_index
        if self.current is not None:
            body["current_event_hash"] = hash_id_from_digest(self.current)
        return body

    @classmethod
    def from_json(cls, raw: object, *, anchored_only: bool = False) -> Bundle:
        """Read a bundle, checking its shape; BundleError says what is wrong.

        With `anchored_only` (what a verifier wants) a pending bundle is refused as such before
        anything else of it is looked at.
        """
        if not isinstance(raw, Mapping):
            raise BundleError("a bundle is a JSON object")
        if raw.get("version") != BUNDLE_VERSION:
            raise BundleError(f"unsupported bundle version {raw.get('version')!r}")
        status = raw.get("status")
        if status != "anchored" and (anchored_only or status != "pending"):
            raise BundleError(f"the event is not anchored yet (status {status!r})")
        try:
            digest = digest_from_hash_id(str(raw.get("event_hash")))
        except ValueError as exc:
            raise BundleError(str(exc)) from None
        # Informational: nothing of the proof rests on it, so a verifier never refuses it.
        log_index = raw.get("log_index")
        if isinstance(log_index, bool) or not isinstance(log_index, int) or log_index < 0:
            log_index = None
        current = _optional_digest(raw.get("current_event_hash"))
        if status == "pending":
            return cls(digest, log_index, current=current)
        path = raw.get("audit_path")
        if not isinstance(path, list) or not all(
            isinstance(p, str) and _BYTES32.match(p) for p in path
        ):
            raise BundleError("audit_path must be a list of 0x-prefixed 32-byte hex strings")
        inclusion = Inclusion(
            leaf_index=_int(raw, "leaf_index"),
            audit_path=tuple(bytes.fromhex(p[2:]) for p in path),
            batch=AnchoredBatch(
                tree_size=_int(raw, "tree_size"),
                root=_bytes32(raw, "root"),
                batch_id=_int(raw, "batch_id"),
                first_index=_int(raw, "first_index"),
                chain_id=_int(raw, "chain_id"),
                contract=_address(raw, "contract"),
                tx_hash=_bytes32(raw, "tx_hash"),
                block_number=_int(raw, "block_number"),
            ),
        )
        return cls(digest, log_index, inclusion, current)


def _optional_digest(value: object) -> bytes | None:
    """Informational like log_index: a malformed value is ignored, never refused."""
    try:
        return digest_from_hash_id(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


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
