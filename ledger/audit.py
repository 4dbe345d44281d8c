"""Audit: recompute every stored hash and batch root and compare them with the chain.

`tracefin audit` and `GET /v1/audit` run `audit`. Each finding has a stable `kind`; its `detail`
is for people.

Events (the whole store, streamed):
- `event_altered`: the stored event JSON no longer hashes to the event's identity (or is not
  even an event object).
- `event_columns_altered`: the JSON is intact but the index columns stored beside it (event time
  and offset, type, action, bizStep, disposition, stage, readPoint, bizLocation, EPCs, lots)
  differ from what the JSON implies. Pages and finance read those columns, so an edit there
  changes what people see without touching the hash. The check is `provenance.row_is_intact`,
  the one the pages use, so the audit and the pages agree on which rows are intact.
- `event_captured_altered`: the stored JSON is intact, but the event as captured kept beside it
  (`as_captured`, what the REST binding answers) no longer hashes to the event's identity.
- `event_missing`: a log position whose event row is gone (deleted or re-keyed).
- `event_unlogged`: a stored event neither in the log nor queued for it.
- `alias_dangling`: an earlier id of an event (`event_hash_aliases`, kept when a hash rule
  change re-identified it) that names no stored event.
- `leaf_not_alias`: a log position whose leaf differs from its event's id without being an
  earlier id of that event (a re-identified event keeps its leaf; nothing else may differ).

Anchor batches (of the current deployment):
- `log_incomplete`, `batch_root_mismatch`: the log positions of a recorded batch are missing, or
  give another Merkle root than the one recorded.
- `batch_differs_from_chain`: the recorded root, first index or count differs from
  `TraceAnchor.batch(id)`.
- `batch_tx_mismatch`: the recorded transaction and block are not the ones that anchored the
  batch: no receipt, a failed one, another block, or no `BatchAnchored` log of this deployment's
  TraceAnchor with the batch's id, root and range (the check `ledger.verify` makes of a bundle).
  Such a log can only come from the anchoring call itself (the contract emits it once per batch
  id), so it also proves the transaction is the one that anchored the batch.
- `batch_not_on_chain`, `batch_unrecorded`: a recorded batch the contract lacks; a batch on chain
  that is not recorded.

Records kept beside the log add their own checks through `extra` (finance/audit.py: pledges
against PledgeRegistry and decisions against the journal; `tracefin audit` and the API run
those too).

Always possible:
- `chain_unavailable`: the node failed while being read; `chain_not_checked`: no RPC URL given
  (or no deployment recorded), so batches were not compared with the chain.

Limits. Findings reflect the moment each table was read: the audit does not stop writers, so
a write racing it may show as a finding that a second run no longer reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson
from web3 import Web3

from epcis.capture import IndexColumns, stored_index_columns
from epcis.event_hash import event_hash_digest, hash_id_from_digest
from ledger import log_store, merkle
from ledger.bundle import AnchoredBatch
from ledger.chain import Chain, ChainError, ChainReverted
from ledger.deployment import deployed_chain
from ledger.log_store import Deployment
from ledger.provenance import row_is_intact
from ledger.provenance_store import STORED_COLUMNS, stored_columns
from ledger.verify import check_chain
from records import event_store
from records.db import Conn


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


# A check of records kept beside the log (finance adds pledges and decisions): it gets the chain
# (None when not reachable or not given) and the current deployment.
ExtraCheck = Callable[[Conn, Chain | None, Deployment | None], list["Finding"]]


def audit(conn: Conn, w3: Web3 | None, extra: Sequence[ExtraCheck] = ()) -> AuditReport:
    """Everything that differs; with `w3` None the chain comparison is reported as skipped."""
    events_checked, findings = _audit_events(conn)
    for position, digest in event_store.logged_but_missing(conn):
        findings.append(
            Finding("event_missing", f"log position {position}: {hash_id_from_digest(digest)}")
        )
    for digest in event_store.unlogged_events(conn):
        findings.append(Finding("event_unlogged", hash_id_from_digest(digest)))
    for alias, digest in event_store.dangling_aliases(conn):
        findings.append(
            Finding(
                "alias_dangling",
                f"{hash_id_from_digest(alias)} names {hash_id_from_digest(digest)}, not stored",
            )
        )
    for position, leaf, digest in log_store.leaves_not_aliases(conn):
        findings.append(
            Finding(
                "leaf_not_alias",
                f"log position {position}: leaf {hash_id_from_digest(leaf)} is no earlier id"
                f" of its event {hash_id_from_digest(digest)}",
            )
        )
    deployment = log_store.current_deployment(conn)
    recorded = log_store.batches(conn, deployment.id) if deployment else []
    chain = deployed_chain(w3, deployment) if w3 is not None and deployment is not None else None
    if chain is None and recorded:
        reason = "no chain RPC URL given" if w3 is None else "no contract deployment recorded"
        findings.append(Finding("chain_not_checked", reason))
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
    for check in extra:
        findings.extend(check(conn, chain, deployment))
    return AuditReport(events_checked, len(recorded), findings)


# --- events ----------------------------------------------------------------------------------


def _audit_events(conn: Conn) -> tuple[int, list[Finding]]:
    """Check every stored row as the pages do: JSON hashes to its digest, columns follow it."""
    checked = 0
    findings = []
    rows = log_store.stored_event_rows(conn, f"{STORED_COLUMNS}, as_captured::text")
    for digest, event, context, *values, captured in rows:
        checked += 1
        digest = bytes(digest)
        columns = stored_columns(values)
        try:
            intact = row_is_intact(digest, event, context, columns)
        except Exception:  # junk a tamperer left must give a finding, never stop the audit
            intact = False
        if not intact:
            findings.append(_event_finding(digest, event, context, columns))
        elif captured is not None and not _hashes_to(digest, captured, context):
            findings.append(
                Finding(
                    "event_captured_altered",
                    f"{hash_id_from_digest(digest)}: the event as captured (what the REST"
                    " binding answers) no longer hashes to its identity",
                )
            )
    return checked, findings


def _hashes_to(digest: bytes, event: str, context: str | None) -> bool:
    try:
        found = orjson.loads(event)
        return isinstance(found, dict) and digest == event_hash_digest(
            found, orjson.loads(context) if context else None
        )
    except Exception:  # junk a tamperer left is simply altered
        return False


def _event_finding(
    digest: bytes, event: str, context: str | None, columns: IndexColumns
) -> Finding:
    """Why `row_is_intact` refused a row (rare: only tampered rows come here)."""
    label = hash_id_from_digest(digest)
    try:
        stored = orjson.loads(event)
        if not isinstance(stored, dict):
            return Finding("event_altered", f"{label}: not an object")
        recomputed = event_hash_digest(stored, orjson.loads(context) if context else None)
    except Exception as exc:
        return Finding("event_altered", f"{label}: {exc}")
    if recomputed != digest:
        return Finding(
            "event_altered",
            f"{label}: stored JSON now hashes to {hash_id_from_digest(recomputed)}",
        )
    try:
        expected = stored_index_columns(stored)
    except Exception:
        expected = None
    if expected is None:
        return Finding(
            "event_columns_altered",
            f"{label}: its JSON no longer parses as an event, so its columns cannot be vouched for",
        )
    differing = [
        column.name
        for column in fields(IndexColumns)
        if getattr(expected, column.name) != getattr(columns, column.name)
    ]
    return Finding(
        "event_columns_altered",
        f"{label}: stored {', '.join(differing) or 'index columns'}"
        f" {'differs' if len(differing) == 1 else 'differ'} from its JSON",
    )


# --- anchor batches --------------------------------------------------------------------------


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
    return [
        *findings,
        *_audit_batch_tx(batch, on_chain.root, on_chain.first_index, on_chain.count, chain),
    ]


def _audit_batch_tx(
    batch: log_store.BatchRecord, root: bytes, first_index: int, count: int, chain: Chain
) -> list[Finding]:
    """The recorded transaction and block must be those whose log anchored this batch.

    Checked as `ledger.verify` checks a bundle's transaction, against the batch as the chain
    holds it (a recorded root or range that differs is `batch_differs_from_chain` already).
    """
    record = AnchoredBatch(
        batch_id=batch.batch_id,
        root=root,
        first_index=first_index,
        tree_size=count,
        chain_id=0,  # not read: the chain is given
        contract=str(chain.anchor.address),
        tx_hash=batch.tx_hash,
        block_number=batch.block_number,
    )
    try:
        reasons = check_chain(record, chain)
    except ChainError as exc:
        return [Finding("chain_unavailable", str(exc))]
    except Exception as exc:  # a node answering garbage
        return [Finding("chain_unavailable", f"cannot check batch {batch.batch_id}: {exc}")]
    if not reasons:
        return []
    return [
        Finding(
            "batch_tx_mismatch",
            f"batch {batch.batch_id}: recorded transaction 0x{batch.tx_hash.hex()} in block"
            f" {batch.block_number} did not anchor it (as a proof bundle of this row:"
            f" {'; '.join(reasons)})",
        )
    ]
