"""Re-identify stored events when the event hash rule changes, keeping every anchored proof.

The migration runner's data step (`tracefin.schema.migrate`, after the SQL migrations) calls
`rehash_stored_events` while the stored rule (`event_hash_rule`) is older than
`epcis.event_hash.HASH_RULE`. In one transaction, with writers of events and of the log held:

- every stored event is hashed again by the current rule from its stored JSON and context; a
  row that hashes to its id under neither rule (edited since) is left as it is, for the audit;
- an event whose id changes is re-keyed: its row, its attestations, its queued log entry and
  every column the caller names as holding event digests (finance's) take the new id; its old
  id becomes an alias (`event_hash_aliases`) that still finds it;
- a log position keeps the leaf it was given (`log_entries.leaf_hash`): the Merkle roots on
  chain were computed from the old ids, so proofs of anchored events are bundles of the old id
  (`ledger.proofs`), valid as they were, naming the current id beside it;
- events the old rule stored twice and the new rule makes one (a prefix renamed) are folded
  into the first stored: its attestations gain the other's, the other's id is an alias.

Records that must keep the ids they were written with (the sealed finance journal, decision
evidence) are not touched: the aliases resolve them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from epcis.event_hash import (
    HASH_RULE,
    HashContext,
    event_hash_digest,
    hash_context,
    hash_id_from_digest,
)
from ledger import log_store
from ledger.rehash_store import (
    Duplicate,
    Reference,
    Rekey,
    cycles,
    drop_duplicates,
    hash_rule,
    load_rekeys,
    lock_for_rehash,
    merged_duplicates,
    record_aliases,
    rekey_column,
    rekey_events,
    rekey_log,
    set_hash_rule,
)
from records.db import Conn

# The columns of the ledger's and records' own tables that hold event digests and follow an
# event to its new id. (log_entries is re-keyed apart: its leaf stays.)
OWN_REFERENCES = (Reference("attestations", "event_hash"), Reference("log_queue", "event_hash"))
# Documents share few contexts; prepared once each (bounded, for a store of odd ones).
_CONTEXTS_KEPT = 1024


class RehashConflict(RuntimeError):
    """The re-identification would need two events to swap ids; nothing was changed."""


@dataclass(frozen=True)
class RehashReport:
    from_rule: int
    to_rule: int
    events_checked: int
    rekeyed: int  # events whose id changed (folded duplicates included)
    folded: int  # of those, duplicates folded into an event they repeat
    log_positions_kept: int  # positioned events whose leaf keeps their old id
    left_altered: int  # rows that hash to their id under neither rule (edited): left as they are


def rehash_stored_events(conn: Conn, references: Sequence[Reference] = ()) -> RehashReport | None:
    """Re-identify every stored event under the current rule, if the stored rule is older;
    None when there is nothing to do. Call inside a transaction (the runner's)."""
    stored_rule = hash_rule(conn)
    if stored_rule is None or stored_rule >= HASH_RULE:
        return None
    everything = [*OWN_REFERENCES, *(r for r in references if r not in OWN_REFERENCES)]
    lock_for_rehash(conn, everything)
    from_rule = hash_rule(conn)  # again, under the locks: a concurrent migrator may have done it
    if from_rule is None or from_rule >= HASH_RULE:
        return None
    checked = 0
    altered = 0
    rekeys: list[Rekey] = []
    contexts: dict[str | None, tuple[HashContext, HashContext]] = {}
    # Read as the audit reads them (JSON text, orjson): the new id is what the audit will
    # recompute from the same row.
    for stored_digest, event, context, *_ in log_store.stored_event_rows(conn, "ingest_seq"):
        checked += 1
        digest = bytes(stored_digest)
        try:
            prepared = contexts.get(context)
            if prepared is None:
                raw = orjson.loads(context) if context else None
                prepared = (hash_context(raw), hash_context(raw, rule=from_rule))
                if len(contexts) < _CONTEXTS_KEPT:
                    contexts[context] = prepared
            stored = orjson.loads(event)
            now = event_hash_digest(stored, prepared[0])
            if now == digest:
                continue
            # Only a row intact under the rule it was stored by is re-keyed: an edited one
            # keeps its id, so the audit goes on reporting it (a new id would launder the edit).
            intact = event_hash_digest(stored, prepared[1]) == digest
        except Exception:  # junk an editor left is not an event: left for the audit too
            intact = False
        if not intact:
            altered += 1
            continue
        rekeys.append(Rekey(digest, now))
    folded: list[Duplicate] = []
    positions = 0
    if rekeys:
        load_rekeys(conn, rekeys)
        swapped = cycles(conn)
        if swapped:
            raise RehashConflict(
                "re-identifying would give events ids other events have now: "
                + ", ".join(hash_id_from_digest(d) for d in swapped[:10])
            )
        folded = merged_duplicates(conn)
        if folded:
            drop_duplicates(conn, folded)
        positions = rekey_log(conn, folded)
        for reference in everything:
            rekey_column(conn, reference)
        rekey_events(conn)
        record_aliases(conn, from_rule)
    set_hash_rule(conn, HASH_RULE)
    return RehashReport(from_rule, HASH_RULE, checked, len(rekeys), len(folded), positions, altered)
