"""web3 adapter: a deployment's contracts on an EVM JSON-RPC endpoint, TraceAnchor's calls.

PledgeRegistry's calls are finance's (finance/pledges.py); they go through `Chain.call` and
`Chain.transact`, so every transaction shares one account and its nonce handling.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    Web3RPCError,
)
from web3.types import TxParams, TxReceipt

from epcis.signatures import keccak256
from ledger.contracts import ARTIFACTS_DIR, TRACE_ANCHOR, load_artifact

log = logging.getLogger(__name__)

_NONCE_ATTEMPTS = 5
_NONCE_RACE_MARKERS = ("nonce too low", "replacement transaction underpriced")


class ChainError(Exception):
    """The node is unreachable, slow, or refused a transaction."""


class ChainReverted(ChainError):
    """A transaction reverted; `error` names the custom error when it could be decoded."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class ChainIdentity:
    """What identifies a chain beyond its id: a reset devnet keeps the id, not the genesis."""

    chain_id: int
    genesis_hash: bytes


@dataclass(frozen=True)
class OnChainBatch:
    batch_id: int
    root: bytes
    first_index: int
    count: int
    block_number: int


@dataclass(frozen=True)
class SentBatch:
    batch_id: int
    tx_hash: bytes
    block_number: int


@lru_cache(maxsize=4)
def _abi(name: str) -> list[dict[str, Any]]:
    """A contract's ABI, read from its artifact once per process."""
    return load_artifact(name).abi


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def identity(w3: Web3) -> ChainIdentity:
    try:
        genesis = w3.eth.get_block(0)
        return ChainIdentity(int(w3.eth.chain_id), bytes(genesis["hash"]))
    except Exception as exc:  # requests and web3 raise a zoo of types for a dead node
        raise ChainError(f"chain node unreachable: {exc}") from exc


def build_code_hash(name: str) -> bytes:
    """keccak of the runtime code this build deploys for contract `name` (its artifact)."""
    return keccak256(bytes.fromhex(load_artifact(name).deployed_bytecode[2:]))


def code_hash(w3: Web3, address: str) -> bytes:
    """keccak of the runtime code at `address` (keccak of b"" where there is none)."""
    try:
        return keccak256(bytes(w3.eth.get_code(Web3.to_checksum_address(address))))
    except Exception as exc:
        raise ChainError(f"chain node unreachable: {exc}") from exc


class Chain:
    """The two contracts of one deployment, and an account that sends transactions."""

    def __init__(
        self,
        w3: Web3,
        anchor_address: str,
        pledge_address: str | None = None,
        private_key: str | None = None,
        receipt_timeout: float = 30.0,
    ) -> None:
        self.w3 = w3
        self.anchor: Contract = w3.eth.contract(
            address=Web3.to_checksum_address(anchor_address),
            abi=_abi(TRACE_ANCHOR),
        )
        # The deployment's PledgeRegistry, whose calls finance makes (finance/pledges.py).
        self.pledge_address = pledge_address or None
        self.account: LocalAccount | None = (
            Account.from_key(private_key) if private_key is not None else None
        )
        self._receipt_timeout = receipt_timeout

    def next_index(self) -> int:
        return int(self.call(self.anchor.functions.nextIndex()))

    def batch_count(self) -> int:
        return int(self.call(self.anchor.functions.batchCount()))

    def batch(self, batch_id: int) -> OnChainBatch:
        raw = self.call(self.anchor.functions.batch(batch_id))
        return OnChainBatch(
            batch_id=batch_id,
            root=bytes(raw[0]),
            first_index=int(raw[1]),
            count=int(raw[2]),
            block_number=int(raw[3]),
        )

    def batch_anchored_tx(self, batch_id: int, from_block: int) -> tuple[bytes, int] | None:
        """(tx hash, block) of the BatchAnchored log of `batch_id`, searched from `from_block`."""
        try:
            logs = self.anchor.events.BatchAnchored().get_logs(
                from_block=from_block, argument_filters={"batchId": batch_id}
            )
        except Exception as exc:
            raise ChainError(f"cannot read logs: {exc}") from exc
        for entry in logs:
            return bytes(entry["transactionHash"]), int(entry["blockNumber"])
        return None

    def anchor_batch(self, first_index: int, count: int, root: bytes) -> SentBatch:
        """Send anchorBatch, wait for its receipt, return the batch id the contract assigned."""
        receipt = self.transact(self.anchor.functions.anchorBatch(first_index, count, root))
        events = self.anchor.events.BatchAnchored().process_receipt(receipt)
        if not events:
            raise ChainError("anchorBatch receipt has no BatchAnchored event")
        return SentBatch(
            batch_id=int(events[0]["args"]["batchId"]),
            tx_hash=bytes(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
        )

    def contract(self, name: str, address: str) -> Contract:
        """The contract `name` (its artifact's ABI) at `address` on this chain."""
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=_abi(name))

    def call(self, function: Any, contract: Contract | None = None) -> Any:
        """A read-only call; a revert names `contract`'s custom error (TraceAnchor's by default)."""
        try:
            return function.call()
        except (ContractCustomError, ContractLogicError) as exc:
            raise ChainReverted(
                f"call reverted: {exc}", _error_name(contract or self.anchor, exc)
            ) from exc
        except Exception as exc:
            raise ChainError(f"chain node unreachable: {exc}") from exc

    def transact(self, function: Any, contract: Contract | None = None) -> TxReceipt:
        """Send a transaction from the chain's account and wait for its receipt."""
        if self.account is None:
            raise ChainError("no TRACEFIN_CHAIN_PRIVATE_KEY: cannot send transactions")
        try:
            tx_hash = self._send(function)
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self._receipt_timeout, poll_latency=0.05
            )
        except (ContractCustomError, ContractLogicError) as exc:
            raise ChainReverted(
                f"transaction reverted: {exc}", _error_name(contract or self.anchor, exc)
            ) from exc
        except TimeExhausted as exc:
            raise ChainError(f"no receipt within {self._receipt_timeout:.0f}s") from exc
        except Exception as exc:
            raise ChainError(f"chain node unreachable: {exc}") from exc
        if receipt["status"] != 1:
            raise ChainReverted(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def _send(self, function: Any) -> HexBytes:
        """Sign and send with the next nonce, taking a fresh one if another process took it.

        Two processes may hold the same key (the anchor worker and a CLI pledge, say): the loser
        of a nonce race is told "nonce too low" or "replacement underpriced" and simply retries.
        """
        assert self.account is not None
        for attempt in range(_NONCE_ATTEMPTS):
            # 'pending' counts our own unmined transactions, so a resend never reuses a nonce.
            nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
            params: TxParams = {"from": self.account.address, "nonce": nonce}
            tx = function.build_transaction(params)  # estimates gas and EIP-1559 fees
            signed = self.account.sign_transaction(tx)
            try:
                return self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Web3RPCError as exc:
                message = str(exc).lower()
                if attempt + 1 == _NONCE_ATTEMPTS or not any(
                    marker in message for marker in _NONCE_RACE_MARKERS
                ):
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")


def _error_name(contract: Contract, exc: Exception) -> str | None:
    """The custom error's name, from the 4-byte selector in the revert data."""
    data = getattr(exc, "data", None)
    if not isinstance(data, str) or len(data) < 10:
        return None
    selector = data[2:10]
    for entry in _error_entries(contract):
        inputs = ",".join(str(item["type"]) for item in entry.get("inputs", []))
        if keccak256(f"{entry['name']}({inputs})".encode())[:4].hex() == selector:
            return str(entry["name"])
    return None


def _error_entries(contract: Contract) -> list[dict[str, Any]]:
    return [dict(entry) for entry in contract.abi if entry.get("type") == "error"]


def deploy(
    w3: Web3, private_key: str, name: str, artifacts_dir: Path = ARTIFACTS_DIR
) -> tuple[str, int]:
    """Deploy one contract from its artifact; returns (address, block number)."""
    artifact = load_artifact(name, artifacts_dir)
    account: LocalAccount = Account.from_key(private_key)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    try:
        nonce = w3.eth.get_transaction_count(account.address, "pending")
        tx = factory.constructor().build_transaction({"from": account.address, "nonce": nonce})
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    except Exception as exc:
        raise ChainError(f"deploying {name} failed: {exc}") from exc
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise ChainError(f"deploying {name} reverted")
    return str(receipt["contractAddress"]), int(receipt["blockNumber"])
