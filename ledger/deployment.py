"""`tracefin chain deploy`: deploy the contracts once per chain and record where they are."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from web3 import Web3

from ledger import log_store
from ledger.chain import Chain, build_code_hash, code_hash, deploy, identity
from ledger.contracts import PLEDGE_REGISTRY, TRACE_ANCHOR
from ledger.log_store import Deployment
from records.db import Conn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployOutcome:
    deployment: Deployment
    created: bool
    # The deployment this one replaces, if any: its chain was reset, or (`upgraded`) its contracts
    # are still there but are an older build than this one's.
    replaced: Deployment | None
    upgraded: bool = False


def is_live(w3: Web3, deployment: Deployment) -> bool:
    """True when the chain is the recorded one and both contracts' code is still there."""
    seen = identity(w3)
    return (
        (seen.chain_id, seen.genesis_hash) == (deployment.chain_id, deployment.genesis_hash)
        and code_hash(w3, deployment.anchor_address) == deployment.anchor_code_hash
        and code_hash(w3, deployment.pledge_address) == deployment.pledge_code_hash
    )


def is_current_build(deployment: Deployment) -> bool:
    """True when the deployment's contracts are this build's (their recorded code is the
    artifacts' runtime code): false after a contract changed, e.g. PledgeRegistry version 2."""
    return deployment.anchor_code_hash == build_code_hash(
        TRACE_ANCHOR
    ) and deployment.pledge_code_hash == build_code_hash(PLEDGE_REGISTRY)


def ensure_deployment(conn: Conn, w3: Web3, private_key: str) -> DeployOutcome:
    """Reuse the recorded deployment when it is live on this chain and of this build, else deploy
    and record. An upgrade is a new deployment, as a reset is: the log is anchored again on the
    new TraceAnchor (the old one's batches stay valid there), and `restore_pledges` puts the live
    pledges on the new PledgeRegistry."""
    upgraded = False
    with conn.transaction():
        log_store.lock_deployments(conn)  # concurrent deploys: one at a time
        current = log_store.current_deployment(conn)
        if current is not None and is_live(w3, current):
            if is_current_build(current):
                return DeployOutcome(current, created=False, replaced=None)
            upgraded = True
        seen = identity(w3)
        anchor_address, block = deploy(w3, private_key, TRACE_ANCHOR)
        pledge_address, _ = deploy(w3, private_key, PLEDGE_REGISTRY)
        deployment = log_store.record_deployment(
            conn,
            chain_id=seen.chain_id,
            genesis_hash=seen.genesis_hash,
            anchor_address=anchor_address,
            pledge_address=pledge_address,
            anchor_code_hash=code_hash(w3, anchor_address),
            pledge_code_hash=code_hash(w3, pledge_address),
            deployed_block=block,
        )
    if upgraded:
        assert current is not None
        log.warning(
            "the recorded contracts (TraceAnchor %s on chain %d) are an older build: deployed"
            " this build's at %s; the log will be anchored again from position 0 on it.",
            current.anchor_address,
            current.chain_id,
            anchor_address,
        )
    elif current is not None:
        log.warning(
            "the recorded deployment (TraceAnchor %s on chain %d) is gone: the chain was reset."
            " The log will be anchored again from position 0 on %s.",
            current.anchor_address,
            current.chain_id,
            anchor_address,
        )
    return DeployOutcome(deployment, created=True, replaced=current, upgraded=upgraded)


def deployed_chain(w3: Web3, deployment: Deployment, private_key: str | None = None) -> Chain:
    """The contracts of `deployment` on `w3`; transactions are signed with `private_key`."""
    return Chain(w3, deployment.anchor_address, deployment.pledge_address, private_key)


def current_chain(conn: Conn, w3: Web3, private_key: str | None = None) -> Chain | None:
    """The contracts of the current deployment on `w3`; None while none is recorded."""
    deployment = log_store.current_deployment(conn)
    return deployed_chain(w3, deployment, private_key) if deployment is not None else None
