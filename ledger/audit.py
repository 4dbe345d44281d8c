"""Audit: recompute every stored hash and batch root and compare them with the chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from ledger import event_store, log_store, merkle
from ledger.chain import Chain, ChainError, ChainReverted
from ledger.db import Conn
from ledger.event_hash import event_hash_digest, hash_id_from_digest


@dataclass(frozen=True)
class Finding:
    """One difference between what is stored and what it should be; `kind` is a stable code."""

    kind: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass
class AuditReport:
    events_checked: int
    batches_checked: int
    findings: list[Finding]

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "events_checked": self.events_checked,
            "batches_checked": self.batches_checked,
            "findings": [finding.as_json() for finding in self.findings],
        }


def audit(conn: Conn, w3: Web3 | None) -> AuditReport:
    """Everything that differs; with `w3` None the chain comparison is reported as skipped."""
    findings: list[Finding] = []
    events_checked = 0
    for digest, event, context in event_store.stored_events(conn):
        events_checked += 1
        if not isinstance(event, dict):
            findings.append(
                Finding("event_altered", f"{hash_id_from_digest(digest)}: not an object")
            )
            continue
        try:
            recomputed = event_hash_digest(event, context)
        except ValueError as exc:
            findings.append(Finding("event_altered", f"{hash_id_from_digest(digest)}: {exc}"))
            continue
        if recomputed != digest:
            findings.append(
                Finding(
                    "event_altered",
                    f"{hash_id_from_digest(digest)}: stored JSON now hashes to"
                    f" {hash_id_from_digest(recomputed)}",
                )
            )
    for position, digest in event_store.logged_but_missing(conn):
        findings.append(
            Finding("event_missing", f"log position {position}: {hash_id_from_digest(digest)}")
        )
    for digest in event_store.unlogged_events(conn):
        findings.append(Finding("event_unlogged", hash_id_from_digest(digest)))
    deployment = log_store.current_deployment(conn)
    recorded = log_store.batches(conn, deployment.id) if deployment else []
    chain = (
        Chain(w3, deployment.anchor_address) if w3 is not None and deployment is not None else None
    )
    if w3 is None and recorded:
        findings.append(Finding("chain_not_checked", "no chain RPC URL given"))
    for batch in recorded:
        findings.extend(_audit_batch(conn, batch, chain))
    if chain is not None:
        try:
            on_chain = chain.batch_count()
        except ChainError as exc:
            findings.append(Finding("chain_unavailable", str(exc)))
        else:
            for batch_id in range(len(recorded), on_chain):
                findings.append(
                    Finding("batch_unrecorded", f"batch {batch_id} is on chain, not recorded")
                )
    return AuditReport(events_checked, len(recorded), findings)


def _audit_batch(conn: Conn, batch: log_store.BatchRecord, chain: Chain | None) -> list[Finding]:
    findings = []
    label = f"batch {batch.batch_id} (positions {batch.first_index}..{batch.end_index - 1})"
    try:
        root = merkle.root(log_store.entries(conn, batch.first_index, batch.count))
    except LookupError as exc:
        findings.append(Finding("log_incomplete", f"{label}: {exc}"))
    else:
        if root != batch.root:
            findings.append(
                Finding("batch_root_mismatch", f"{label}: its log positions give another root")
            )
    if chain is None:
        return findings
    try:
        on_chain = chain.batch(batch.batch_id)
    except ChainReverted:
        return [
            *findings,
            Finding("batch_not_on_chain", f"{label}: the contract has no such batch"),
        ]
    except ChainError as exc:
        return [*findings, Finding("chain_unavailable", str(exc))]
    if (on_chain.root, on_chain.first_index, on_chain.count) != (
        batch.root,
        batch.first_index,
        batch.count,
    ):
        findings.append(
            Finding("batch_differs_from_chain", f"{label}: recorded root or range differ")
        )
    return findings
