"""Pledges on chain: lot keys, PledgeRegistry's calls, and restoring live pledges after a reset.

PledgeRegistry is what stops two banks taking the same goods as collateral: other banks'
systems share only the chain, not this database. A devnet reset leaves a new, empty registry, so
every deploy is followed by `restore_pledges` (`deploy_and_restore` does both, for
`tracefin chain deploy` and `tracefin up`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3
from web3.contract import Contract

from epcis.signatures import keccak256
from finance.errors import FinanceError, FinanceErrorCode
from finance.store import attribution, audit, credit
from finance.store.journal import Journal
from ledger.chain import Chain, ChainError, ChainReverted
from ledger.contracts import PLEDGE_REGISTRY
from ledger.deployment import DeployOutcome, deployed_chain, ensure_deployment
from records import registry_store
from records.db import Conn
from records.registry_store import Org

log = logging.getLogger(__name__)


def lot_key(lot_uri: str) -> bytes:
    """The bytes32 a lot is known by on PledgeRegistry: keccak of its Digital Link URI."""
    return keccak256(lot_uri.encode())


def org_address(org: Org) -> str:
    """The on-chain identity of an organisation (a stable pseudo-address from its slug)."""
    return "0x" + keccak256(b"tracefin-org:" + org.slug.encode())[-20:].hex()


def checksum(address: str) -> str:
    """An address as PledgeRegistry reports it (EIP-55 mixed case)."""
    return str(Web3.to_checksum_address(address))


class PledgeRegistry:
    """The PledgeRegistry of a chain's deployment, called with the chain's account."""

    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self._contract: Contract | None = (
            chain.contract(PLEDGE_REGISTRY, chain.pledge_address) if chain.pledge_address else None
        )

    @property
    def address(self) -> str | None:
        return self._chain.pledge_address

    def pledge(self, key: bytes, financier: str, evidence: bytes) -> bytes:
        """PledgeRegistry.pledge as the operator; ChainReverted('AlreadyPledged') if taken."""
        registry = self._registry()
        receipt = self._chain.transact(
            registry.functions.pledge(key, Web3.to_checksum_address(financier), evidence),
            registry,
        )
        return bytes(receipt["transactionHash"])

    def release(self, key: bytes) -> bytes:
        registry = self._registry()
        receipt = self._chain.transact(registry.functions.release(key), registry)
        return bytes(receipt["transactionHash"])

    def pledgee(self, key: bytes) -> str | None:
        """The financier address a lot key is pledged to on chain, or None."""
        registry = self._registry()
        if not self._call(registry, registry.functions.isPledged(key)):
            return None
        return str(self._call(registry, registry.functions.pledgeOf(key))[0])

    def pledged_lot_keys(self, from_block: int) -> set[bytes]:
        """Every lot key a `Pledged` log of the registry names, from `from_block` on.

        The registry cannot list its pledges; its logs can. `pledgee` then says which of these
        keys are still pledged, and to whom.
        """
        try:
            logs = self._registry().events.Pledged().get_logs(from_block=from_block)
        except Exception as exc:
            raise ChainError(f"cannot read logs: {exc}") from exc
        return {bytes(entry["args"]["lotKey"]) for entry in logs}

    def _call(self, registry: Contract, function: Any) -> Any:
        return self._chain.call(function, registry)

    def _registry(self) -> Contract:
        if self._contract is None:
            raise ChainError("no PledgeRegistry address for this chain")
        return self._contract


@dataclass(frozen=True)
class RestoredPledges:
    """What `restore_pledges` did: lots put back on the registry, lots someone else holds."""

    restored: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)


def restore_pledges(conn: Conn, journal: Journal, chain: Chain) -> RestoredPledges:
    """Put every live pledge the registry does not show back on it; run after every deploy.

    A devnet reset leaves a new, empty PledgeRegistry, and it is the registry, not this database,
    that stops another bank pledging the same goods. Idempotent: pledges the registry already
    shows are left alone, so a deploy interrupted half way is finished by running it again. A lot
    the new registry shows pledged to someone else is not overwritten: it is flagged
    `double_pledge` and returned under `conflicting`.
    """
    registry = PledgeRegistry(chain)
    outcome = RestoredPledges()
    for pledge in audit.pledges_for_audit(conn):
        if not pledge.live:
            continue
        ours = checksum(org_address(Org(pledge.financier_org_id, pledge.financier, "financier")))
        on_chain = registry.pledgee(pledge.lot_key)
        if on_chain == ours:
            continue
        if on_chain is None:
            lot = attribution.get_lot(conn, pledge.lot_uri)
            evidence = (lot.last_inspection_hash if lot else None) or bytes(32)
            try:
                tx = registry.pledge(pledge.lot_key, ours, evidence)
            except ChainReverted as exc:
                if exc.error != "AlreadyPledged":
                    raise
                on_chain = registry.pledgee(pledge.lot_key)  # taken since we looked
            else:
                with conn.transaction():
                    credit.set_pledge_tx(conn, pledge.lot_uri, tx)
                    journal.write(
                        conn,
                        "operator",
                        "pledge_restored",
                        pledge.lot_uri,
                        {"line": pledge.line_id, "tx": "0x" + tx.hex()},
                    )
                outcome.restored.append(pledge.lot_uri)
                continue
        if on_chain != ours:
            detail = f"the registry shows it pledged to {on_chain}, not to {pledge.financier}"
            if credit.raise_flag(conn, "double_pledge", detail, lot_uri=pledge.lot_uri):
                journal.write(
                    conn, "operator", "pledge_conflict", pledge.lot_uri, {"detail": detail}
                )
            outcome.conflicting.append(pledge.lot_uri)
    if outcome.restored or outcome.conflicting:
        log.warning(
            "PledgeRegistry %s: %d live pledges restored, %d held by someone else",
            registry.address or "?",
            len(outcome.restored),
            len(outcome.conflicting),
        )
    return outcome


@dataclass(frozen=True)
class ClearedKey:
    """What `clear_pledge_key` did: whose pledge it released, and what it put back."""

    lot_uri: str
    released_pledgee: str
    tx: str  # 0x-hex
    pledges: RestoredPledges


def clear_pledge_key(
    conn: Conn, journal: Journal, chain: Chain, lot_uri: str, reason: str
) -> ClearedKey:
    """Release, as the operator, a lot key pledged on chain to anyone but this ledger's own live
    pledge of it: squatted (on a registry older than version 2 anyone could pledge any key, and
    lot keys are predictable) or stale (a registered financier's pledge it no longer stands by).
    Journaled `pledge_key_cleared` with the reason; then `restore_pledges` puts this ledger's live
    pledge of the lot, if any, on the key. Refused `our_live_pledge` when the key already holds
    it (release that through its line), `not_pledged` when the key is free."""
    if not reason.strip():
        raise FinanceError(FinanceErrorCode.INVALID_INPUT, "say why the key is cleared")
    registry = PledgeRegistry(chain)
    key = lot_key(lot_uri)
    on_chain = registry.pledgee(key)
    if on_chain is None:
        raise FinanceError(FinanceErrorCode.NOT_PLEDGED, f"{lot_uri} is not pledged on chain")
    ours = credit.live_pledge(conn, lot_uri)
    line = credit.get_line(conn, ours.line_id) if ours is not None else None
    if line is not None:
        financier = Org(
            line.financier_org_id,
            registry_store.slug_of(conn, line.financier_org_id) or "",
            "financier",
        )
        if checksum(org_address(financier)) == on_chain:
            raise FinanceError(
                FinanceErrorCode.OUR_LIVE_PLEDGE,
                f"{lot_uri} holds this ledger's live pledge to {financier.slug}: release it"
                " through its line (tracefin lot release)",
            )
    tx = registry.release(key)
    journal.write(
        conn,
        "operator",
        "pledge_key_cleared",
        lot_uri,
        {"pledgee": on_chain, "reason": reason.strip(), "tx": "0x" + tx.hex()},
    )
    return ClearedKey(lot_uri, on_chain, "0x" + tx.hex(), restore_pledges(conn, journal, chain))


@dataclass(frozen=True)
class Deployed:
    """The contracts in use after `deploy_and_restore`, and what happened to live pledges."""

    outcome: DeployOutcome
    pledges: RestoredPledges


def deploy_and_restore(conn: Conn, journal: Journal, w3: Web3, private_key: str) -> Deployed:
    """Deploy the contracts unless live recorded ones exist, then put live pledges back on the
    registry in use (a new registry, after a devnet reset, starts empty). Raises ChainError."""
    outcome = ensure_deployment(conn, w3, private_key)
    chain = deployed_chain(w3, outcome.deployment, private_key)
    return Deployed(outcome, restore_pledges(conn, journal, chain))
