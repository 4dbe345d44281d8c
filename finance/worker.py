"""The finance monitoring worker: follows the event log and keeps lots, lines and flags current.

Each chunk of log positions is applied and the durable cursor advanced in one transaction, so a
kill at any moment neither skips an event nor applies one twice. Error declarations reach it the
same way: each is applied (the lots holding the declared event folded again without it, the
reaction journaled) in the transaction that marks it applied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from epcis.authority import (
    PLACE_FACTS,
    Attestation,
    Evidence,
    Fact,
    Reason,
    evaluate,
    whereabouts_after,
)
from epcis.event_hash import hash_id_from_digest
from epcis.identifiers import parse_lot
from finance import valuation
from finance.store import attribution, credit, declarations, goods
from finance.store.attribution import EvidenceRow
from finance.store.credit import Pledge, Receivable
from finance.store.journal import Journal, JournalEntry
from finance.tracking import (
    FAILED_INSPECTION,
    LoggedEvent,
    LotChange,
    LotRecord,
    Split,
    apply_change,
    apply_split,
    attribute,
    claims_members,
    follow_recall,
    lot_change,
    moves_pledged_goods,
    order_key,
    registry_fingerprint,
    site_gln,
    split_of,
)
from records import attestation_store, registry_store
from records.db import Conn, run_connected

log = logging.getLogger(__name__)

WORKER = "finance"
ACTOR = "finance-worker"
# Failures of the connection, not of a chunk: never a reason to set an event aside.
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


@dataclass(frozen=True)
class FinanceConfig:
    chunk_size: int = 2000
    idle_sleep: timedelta = timedelta(milliseconds=100)
    conditions_check_every: timedelta = timedelta(seconds=1)


class FinanceWorker:
    def __init__(self, database_url: str, config: FinanceConfig, journal: Journal) -> None:
        self._database_url = database_url
        self._config = config
        self._journal = journal
        self._stop = threading.Event()
        self.applied = 0
        self.dead_lettered = 0  # log positions set aside (finance_dead_letters)
        self._registry: bytes | None = None  # the registry's fingerprint last noticed

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        run_connected(self._database_url, self._stop, self._start, "finance")

    def _start(self, conn: Conn) -> None:
        set_json_loads(orjson.loads, conn)  # event bodies: orjson is ~5x faster
        attribution.turn_off_jit(conn)
        self._follow(conn)

    def _follow(self, conn: Conn) -> None:
        checked = 0.0
        while not self._stop.is_set():
            applied = self.apply_next_chunk(conn)
            self.applied += applied
            now = time.monotonic()
            if now - checked >= self._config.conditions_check_every.total_seconds():
                with conn.transaction():
                    valuation.check_cold_chain(conn, self._journal, datetime.now(UTC))
                    valuation.check_expiry(conn, self._journal, datetime.now(UTC))
                    valuation.check_prices(conn, self._journal, datetime.now(UTC))
                    valuation.check_margin_calls(conn, self._journal, datetime.now(UTC))
                self.notice_registry(conn)
                checked = now
            if not applied:
                self._stop.wait(self._config.idle_sleep.total_seconds())

    def notice_registry(self, conn: Conn) -> bool:
        """Once the registry changed (a prefix, site, device binding, authorisation or rule
        added), evidence that did not count is judged again: the next chunk folds its lots
        afresh. The first look after a start counts as a change. True when it changed."""
        with conn.transaction():
            seen = registry_fingerprint(
                registry_store.authority_parties(conn), registry_store.rule_extensions(conn)
            )
            if seen == self._registry:
                return False
            attribution.rejudge_unattested(conn)
        self._registry = seen
        return True

    def apply_next_chunk(self, conn: Conn) -> int:
        """Apply the next positions of the log; returns how many (0: caught up).

        A chunk that fails for anything but the connection rolls back and is tried again in
        halves, down to the one position that fails alone: that one is set aside (a finance
        dead letter, journaled `event_not_applied`) and the worker carries on. One event can
        never stop monitoring for everyone else. Error declarations recorded since the last
        chunk are applied first (`apply_declarations`).
        """
        self.apply_declarations(conn)
        size = self._config.chunk_size
        while True:
            try:
                return self._apply_chunk(conn, size)
            except _CONNECTION_ERRORS:
                raise  # not the event's fault: run_connected reconnects and tries again
            except Exception as exc:  # any other failure is this chunk's
                if size > 1:
                    size //= 2
                    continue
                self._set_aside(conn, exc)
                return 1

    def apply_declarations(self, conn: Conn) -> int:
        """React to the error declarations recorded since: fold the lots holding each declared
        event again (it counts for nothing from now on, `error_declared`), journal
        `evidence_declared_erroneous` once per declaration (its digest sealed in the entry) and
        mark it applied, all in one transaction. Returns how many.

        As with log positions, one declaration finance cannot apply does not stop it: tried
        alone, it is set aside (journaled `declaration_not_applied`, marked applied)."""
        if not declarations.any_unapplied(conn):  # the usual case: one indexed look, no lock
            return 0
        try:
            return self._apply_declarations(conn, None)
        except _CONNECTION_ERRORS:
            raise
        except Exception:  # any other failure is some declaration's: find it
            log.exception("finance: declarations failed together; applying them one by one")
        applied = 0
        while True:
            try:
                done = self._apply_declarations(conn, 1)
            except _CONNECTION_ERRORS:
                raise
            except Exception as exc:  # this one declaration's fault
                self._set_declaration_aside(conn, exc)
                done = 1
            if not done:
                return applied
            applied += done

    def _apply_declarations(self, conn: Conn, limit: int | None) -> int:
        with conn.transaction():
            # The cursor's row lock: chunks and declarations are applied one at a time.
            attribution.claim_cursor(conn, WORKER)
            pending = declarations.unapplied(conn)[:limit]
            if not pending:
                return 0
            holding = declarations.lots_holding(conn, [d.event_hash for d in pending])
            refold = {uri for uris in holding.values() for uri in uris}
            _Chunk(conn, self._journal, [], refold).apply()
            for declaration in pending:
                self._journal.write(
                    conn,
                    ACTOR,
                    "evidence_declared_erroneous",
                    hash_id_from_digest(declaration.event_hash),
                    {
                        "declaration": declaration.digest.hex(),
                        "declared_by": declaration.org,
                        "reason": declaration.reason,
                        "declaration_time": declaration.declaration_time.isoformat(),
                        "lots": holding.get(declaration.event_hash, []),
                    },
                    [declaration.event_hash],
                )
            declarations.mark_applied(conn, [d.id for d in pending])
        log.info("finance: %d error declaration(s) applied", len(pending))
        return len(pending)

    def _set_declaration_aside(self, conn: Conn, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with conn.transaction():
            attribution.claim_cursor(conn, WORKER)
            pending = declarations.unapplied(conn)[:1]
            if not pending:
                return
            [declaration] = pending
            self._journal.write(
                conn,
                ACTOR,
                "declaration_not_applied",
                hash_id_from_digest(declaration.event_hash),
                {"declaration": declaration.digest.hex(), "error": error[:500]},
                [declaration.event_hash],
            )
            declarations.mark_applied(conn, [declaration.id])
        self.dead_lettered += 1
        log.error("finance: an error declaration set aside, not applied: %s", error)

    def _set_aside(self, conn: Conn, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with conn.transaction():
            index = attribution.claim_cursor(conn, WORKER)
            digest = attribution.dead_letter(conn, index, error)
            self._journal.write(
                conn,
                ACTOR,
                "event_not_applied",
                f"log:{index}",
                {"log_index": index, "error": error[:500]},
                [digest] if digest is not None else [],
                log_index=index,
            )
            attribution.advance_cursor(conn, WORKER, index + 1)
        self.dead_lettered += 1
        log.error("finance: log position %d set aside, not applied: %s", index, error)

    def _apply_chunk(self, conn: Conn, size: int) -> int:
        with conn.transaction():
            start = attribution.claim_cursor(conn, WORKER)
            expected = start
            events: list[LoggedEvent] = []
            for item in attribution.read_log(conn, start, size):
                index = item if isinstance(item, int) else item.log_index
                if index != expected:
                    break  # a hole cannot happen in a healthy log; never skip past it
                if isinstance(item, int):
                    self._journal.write(
                        conn,
                        ACTOR,
                        "event_missing",
                        f"log:{item}",
                        {"log_index": item},
                        log_index=item,
                    )
                else:
                    events.append(item)
                expected += 1
            # Lots holding an event that did not count and has been attested since: folded
            # again, so a rightful party's late attestation counts as if it had come first.
            refold = attribution.reattested_lots(conn)
            _Chunk(conn, self._journal, events, refold).apply()
            if expected != start:
                attribution.advance_cursor(conn, WORKER, expected)
            return expected - start


class _Chunk:
    """One transaction's worth of log positions, folded into lots by event time.

    Events arrive in any order (two ingest workers, a device that was offline), so log order is
    not the order things happened. Planning first attributes every event to the lots it touches,
    also events applied earlier whose items or pallet a late commissioning or packing in this
    chunk makes known. Each touched lot is then folded in event time: on from its stored state
    when everything new sorts after what it holds (the usual case), else afresh over all its
    evidence. The lots' folds run interleaved in one event-time order, so a line's revaluation
    sees its other lots as of the same moment.

    Finance believes only evidence: each step is judged by the authority rules
    (`epcis.authority.evaluate`) on the event's attestations, the registry as it is now and the
    lot's carrier in custody at that point of the fold. An event that does not count changes
    nothing about the lot (it is kept in the lot's evidence, marked, with the reason); an
    uncounted claim that pledged goods moved raises `disputed_movement` for the pledgee, never a
    freeze. `refold` names lots to fold afresh although no new event touches them (an event of
    theirs got a new attestation). Reactions (flags, freezes, receivables, proceeds) fire once
    per lot and event: when the event first counts for the lot.
    """

    def __init__(
        self,
        conn: Conn,
        journal: Journal,
        events: list[LoggedEvent],
        refold: set[str] | None = None,
    ) -> None:
        self._conn = conn
        self._journal = journal
        self._refold = refold or set()
        # The registry and the attestations the rules read, once per chunk: who may say what
        # the goods are decides memberships already (attribution), not only the fold.
        busy = bool(events or self._refold)
        self._parties = registry_store.authority_parties(conn) if busy else None
        self._extensions = registry_store.rule_extensions(conn) if busy else {}
        self._attested: dict[bytes, list[Attestation]] = {}
        self._attested_known: set[bytes] = set()
        self._declared: set[bytes] = set()  # events declared erroneous: void evidence
        self._load_attestations(events)
        self._members = attribution.members_of(
            conn, {epc for event in events for epc in event.epcs}
        )
        self._members_before = dict(self._members)
        self._new_members: list[tuple[str, str]] = []
        self._new: dict[str, dict[int, LoggedEvent]] = {}  # lot -> log index -> event
        self._waiting: dict[str, dict[int, LoggedEvent]] = {}  # unclaimed EPC -> its events
        self._earlier: set[int] = set()  # positions of previous chunks attributed again
        self._claimed: set[str] = set()
        claimed: list[str] = []
        for event in events:
            claimed += self._attribute(event)
        # Lots folded again: their claims that did not count may count now (a late attestation
        # by the rightful party, a registry change), and then claim their members.
        self._folded_before = attribution.lot_events(conn, self._refold) if self._refold else {}
        claimed += self._attribute_again(
            event
            for folded in self._folded_before.values()
            for event, counted in folded
            if not counted and claims_members(event)
        )
        self._resolve(claimed)
        self._drop_known_evidence()
        touched = set(self._new) | self._refold
        self._lots = attribution.load_lots(conn, touched)
        # New lots get their row now, so flags and receivables can refer to them at once.
        fresh = [_blank(uri) for uri in sorted(touched - set(self._lots))]
        self._lots.update((record.lot_uri, record) for record in fresh)
        attribution.save_lots(conn, fresh)
        self._steps = self._plan(touched)
        self._pledges = credit.live_pledges(conn, touched)
        self._products = goods.products(conn, {record.gtin for record in self._lots.values()})
        self._load_attestations(event for _, event, _ in self._steps)
        self._inspected_by: dict[str, Attestation | None] = {}  # lot -> latest inspection's
        self._withdrawn: dict[str, bytes] = {}  # lot -> the event that withdrew its recall
        self._evidence: list[EvidenceRow] = []
        self._judged: list[EvidenceRow] = []
        self._receivables: list[Receivable] = []
        self._entries: list[JournalEntry] = []
        self._dirty: set[str] = set()

    def _load_attestations(self, events: Iterable[LoggedEvent]) -> None:
        """The stored attestations of `events`, read once per chunk."""
        missing = sorted({event.event_hash for event in events} - self._attested_known)
        if missing:
            self._attested.update(attestation_store.attestations_for(self._conn, missing))
            self._declared.update(declarations.declared(self._conn, missing))
            self._attested_known.update(missing)

    def _counts(self, event: LoggedEvent) -> bool:
        """Whether a claim of what goods are (a commissioning, a packing) counts as evidence:
        only then may it make its items members of a lot. Only a *making* claim may: it does
        not depend on where the goods are, so it is judged here as the fold would judge it (an
        aggregation under another bizStep, a site's loading say, claims no members)."""
        assert self._parties is not None  # loaded whenever there are events
        stored = self._attested.get(event.event_hash, [])
        judged = evaluate(
            event.columns,
            event.attestations(stored),
            self._parties,
            extensions=self._extensions,
            declared=event.event_hash in self._declared,
        )
        return judged.counts and judged.fact is Fact.MAKING

    def _attribute(self, event: LoggedEvent) -> list[str]:
        """Attribute `event` to its lots; returns the EPCs it made members of a lot."""
        may_claim = claims_members(event) and self._counts(event)
        attribution = attribute(event, self._members, may_claim)
        for epc, lot_uri in attribution.joined:
            self._members[epc] = lot_uri
            self._new_members.append((epc, lot_uri))
        for lot_uri in attribution.lots:
            self._new.setdefault(lot_uri, {})[event.log_index] = event
        for epc in attribution.unknown:
            self._waiting.setdefault(epc, {})[event.log_index] = event
        return [epc for epc, _ in attribution.joined]

    def _resolve(self, claimed: list[str]) -> None:
        """Attribute again the events that named EPCs before a lot claimed them, to a fixpoint
        (a late commissioning claims the items, which claims the pallet their packing names)."""
        while claimed:
            self._claimed.update(claimed)
            again: dict[int, LoggedEvent] = {}
            for epc in claimed:
                again.update(self._waiting.pop(epc, {}))
            for event in attribution.unattributed_events(self._conn, claimed):
                again[event.log_index] = event
                self._earlier.add(event.log_index)
            claimed = self._attribute_again(again.values())

    def _attribute_again(self, events: Iterable[LoggedEvent]) -> list[str]:
        """Attribute again, in log order, events already applied (to lots, or waiting)."""
        again = {event.log_index: event for event in events}
        self._earlier.update(again)
        self._learn_members(again.values())
        self._load_attestations(again.values())
        claimed: list[str] = []
        for index in sorted(again):
            claimed += self._attribute(again[index])
        return claimed

    def _learn_members(self, events: Iterable[LoggedEvent]) -> None:
        unseen = {epc for event in events for epc in event.epcs if epc not in self._members}
        if unseen:
            known = attribution.members_of(self._conn, unseen)
            self._members.update(known)
            self._members_before.update(known)

    def _drop_known_evidence(self) -> None:
        """Events of earlier chunks were applied to some of their lots then: not again."""
        pairs = [
            (lot_uri, index)
            for lot_uri, new in self._new.items()
            for index in new
            if index in self._earlier
        ]
        for lot_uri, index in attribution.evidenced(self._conn, pairs):
            del self._new[lot_uri][index]
        for lot_uri in [uri for uri, new in self._new.items() if not new]:
            del self._new[lot_uri]

    def _plan(self, touched: set[str]) -> list[tuple[str, LoggedEvent, bool | None]]:
        """(lot, event, whether it counted before: None when new to the lot) in fold order."""
        late = self._refold | {
            uri
            for uri in touched
            if not all(
                self._lots[uri].folds_after(event) for event in self._new.get(uri, {}).values()
            )
        }
        rest = late - set(self._folded_before)
        folded_before = {
            **self._folded_before,
            **(attribution.lot_events(self._conn, rest) if rest else {}),
        }
        self._learn_members(event for events in folded_before.values() for event, _ in events)
        members_before: dict[str, set[str]] = {}
        for epc, lot_uri in self._members_before.items():
            members_before.setdefault(lot_uri, set()).add(epc)
        self._counted: dict[str, set[str]] = {}
        steps: list[tuple[tuple[datetime, bytes], str, LoggedEvent, bool | None]] = []
        for uri in touched:
            new = self._new.get(uri, {})
            steps += [(order_key(event), uri, event, None) for event in new.values()]
            if uri in late:
                self._lots[uri] = _blank(uri)  # folded again from nothing, below
                self._counted[uri] = set()
                steps += [
                    (order_key(event), uri, event, counted)
                    for event, counted in folded_before.get(uri, [])
                    if event.log_index not in new
                ]
            else:
                self._counted[uri] = members_before.get(uri, set())
        steps.sort(key=lambda step: (step[0], step[1]))
        return [(uri, event, before) for _, uri, event, before in steps]

    def apply(self) -> None:
        for lot_uri, event, before in self._steps:
            record = self._lots[lot_uri]
            held_before = record.held_at
            evidence = self._judge(lot_uri, event, before, record)
            self._dirty.add(lot_uri)
            if not evidence.counts:
                if record.folds_after(event):  # a later event may still change its judgement
                    record.latest_event_time, record.latest_event_hash = order_key(event)
                # New, or folded again (it may say more now); a claim its own party declared
                # erroneous disputes nothing.
                if before is not True and evidence.reason is not Reason.ERROR_DECLARED:
                    self._dispute(lot_uri, event, evidence, held_before)
                continue
            split = split_of(event, evidence.fact, lot_uri, self._members, record)
            if split is not None:  # some of its items go their own way; the rest stay put
                at_hand = record.quantity
                apply_split(record, split, event)
                if split.leaving and split.items:
                    self._react_to_split(lot_uri, event, split, at_hand, again=before is True)
                continue
            change = lot_change(event, lot_uri, self._members, self._counted[lot_uri])
            if evidence.fact not in PLACE_FACTS and record.location is not None:
                change.location = None  # making and inspecting say where the goods were first
            apply_change(record, change, event)
            if change.inspection is not None:  # who said so, for closing a quality flag
                self._inspected_by[lot_uri] = evidence.by
            by = evidence.by.org if evidence.by is not None else None
            if follow_recall(record, change, event, by):
                self._withdrawn[lot_uri] = event.event_hash
            assert self._parties is not None  # loaded whenever there are steps
            record.whereabouts = whereabouts_after(
                record.whereabouts, evidence.fact, event.columns, event.event, self._parties
            )
            if record.held_at != held_before:
                record.held_since = event.event_time if record.held_at is not None else None
            if before is not True:  # new to the lot, or counting now where it did not before
                self._react(change, event, record, evidence, held_before)
            else:
                # Folded again: an event that arrived late may have put the goods at the pledged
                # site before this one (the storing after the shipping), so the movement check
                # runs again, for a claim finance has not reacted to before.
                self._freeze_if_moved(change.lot_uri, event, evidence, held_before, again=True)
        self._close_flags()
        self._flush()
        attribution.forget_unattributed(self._conn, self._claimed)
        # Events of earlier chunks still waiting for another identifier are remembered already.
        attribution.remember_unattributed(
            self._conn,
            sorted(
                (epc, index)
                for epc, events in self._waiting.items()
                if epc not in self._members
                for index in events
                if index not in self._earlier
            ),
        )

    def _close_flags(self) -> None:
        """Flags close on evidence, judged on each touched lot as folded (whatever order its
        events arrived in): a quality flag once its latest inspection is conformant; an
        unauthorized movement once the goods are attested back in their pledged site (every
        pledged unit); a recall once the org that recalled the goods withdrew it."""
        flagged = credit.open_flags_of(self._conn, self._dirty)
        for lot_uri, kinds in sorted(flagged.items()):
            record = self._lots[lot_uri]
            pledge = self._pledges.get(lot_uri)
            closing: list[tuple[str, str, bytes | None]] = []
            if (
                "quality_flag" in kinds
                and record.last_inspection_disposition == "conformant"
                and self._by_inspector(record)
            ):
                closing.append(
                    ("quality_flag", "conformant_reinspection", record.last_inspection_hash)
                )
            if (
                "unauthorized_movement" in kinds
                and pledge is not None
                and record.held_at is not None
                and site_gln(pledge.location) == record.held_at
                and record.quantity >= pledge.quantity  # every pledged unit back at hand
            ):
                closing.append(
                    ("unauthorized_movement", "back_in_supervised_site", record.latest_event_hash)
                )
            if "recalled" in kinds and not record.recalled:
                closing.append(
                    (
                        "recalled",
                        "recall_withdrawn",
                        self._withdrawn.get(lot_uri, record.latest_event_hash),
                    )
                )
            for kind, reason, evidence in closing:
                if credit.clear_flag(self._conn, lot_uri, kind, reason, evidence):
                    self._journal.write(
                        self._conn,
                        ACTOR,
                        "flag_cleared",
                        lot_uri,
                        {"kind": kind, "reason": reason},
                        [evidence] if evidence is not None else [],
                        record.updated_log_index,
                    )
            if closing and pledge is not None:
                self._flush()  # revaluation reads the lots from the database
                valuation.revalue_line(
                    self._conn,
                    self._journal,
                    pledge.line_id,
                    lot_uri,
                    reason="flag_cleared",
                    log_index=record.updated_log_index,
                )

    def _by_inspector(self, record: LotRecord) -> bool:
        """Whether the lot's latest inspection (folded in this chunk) counted on the word of an
        inspector its owner authorised: the borrower's own word that its goods are fine again
        does not close a quality flag."""
        by = self._inspected_by.get(record.lot_uri)
        owner = self._parties.owner_of(record.gtin) if self._parties is not None else None
        return (
            by is not None
            and owner is not None
            and self._parties is not None
            and self._parties.roles.get(by.org) == "inspector"
            and self._parties.authorised(owner, by.org, "inspect", record.gtin)
        )

    def _judge(
        self, lot_uri: str, event: LoggedEvent, before: bool | None, record: LotRecord
    ) -> Evidence:
        """Whether `event` counts for the lot at this point of its fold; its evidence row is
        recorded (new) or judged again (folded again, when that changed or it was attested)."""
        assert self._parties is not None  # loaded whenever there are steps
        stored = self._attested.get(event.event_hash, [])
        evidence = evaluate(
            event.columns,
            event.attestations(stored),
            self._parties,
            where=record.whereabouts,
            extensions=self._extensions,
            declared=event.event_hash in self._declared,
        )
        row = EvidenceRow(
            lot_uri,
            event.log_index,
            event.event_hash,
            event.biz_step,
            evidence.counts,
            evidence.reason.value if evidence.reason is not None else None,
            len(stored),
        )
        if before is None:
            self._evidence.append(row)
        elif before != evidence.counts or lot_uri in self._refold:
            self._judged.append(row)
        return evidence

    def _dispute(
        self, lot_uri: str, event: LoggedEvent, evidence: Evidence, held_before: str | None
    ) -> None:
        """An uncounted claim that pledged goods moved: an alert for the pledgee, no freeze."""
        pledge = self._moved_pledge(lot_uri, event, evidence, held_before)
        if pledge is None:
            return
        _flag(
            self._conn,
            self._journal,
            "disputed_movement",
            lot_uri,
            event,
            # The flag's event and the lot's evidence (its reason) say which claim it was.
            "a claim that pledged goods moved, by no party entitled to make it: not counted",
            line_id=pledge.line_id,
        )

    def _flush(self) -> None:
        attribution.save_lots(self._conn, [self._lots[uri] for uri in sorted(self._dirty)])
        if self._new_members:
            attribution.add_members(self._conn, self._new_members)
            self._new_members = []
        attribution.add_evidence(self._conn, self._evidence)
        attribution.judge_evidence(self._conn, self._judged)
        self._judged.clear()
        credit.add_receivables(self._conn, self._receivables)
        self._journal.write_many(self._conn, self._entries)
        self._dirty.clear()
        self._evidence.clear()
        self._receivables.clear()
        self._entries.clear()

    def _react(
        self,
        change: LotChange,
        event: LoggedEvent,
        record: LotRecord,
        evidence: Evidence,
        held_before: str | None,
    ) -> None:
        conn = self._conn
        pledge = self._pledges.get(change.lot_uri)
        product = self._products.get(record.gtin)
        if change.inspection in FAILED_INSPECTION:
            _flag(
                conn,
                self._journal,
                "quality_flag",
                change.lot_uri,
                event,
                f"inspection {change.inspection}",
            )
        if change.recalled:
            _flag(conn, self._journal, "recalled", change.lot_uri, event, "disposition recalled")
        if change.purchase_order is not None and product is not None:
            # Delivered at the buyer with its PO: a receivable that can be financed.
            amount, advance = valuation.receivable_terms(record.quantity, product)
            self._receivables.append(
                Receivable(
                    change.lot_uri,
                    change.purchase_order,
                    amount.minor,
                    amount.currency,
                    advance.minor,
                    event.event_hash,
                    # The goods' owner sells; the party that attested the acceptance buys.
                    seller=self._parties.owner_of(record.gtin) if self._parties else None,
                    buyer=evidence.by.org if evidence.by is not None else None,
                )
            )
            self._entries.append(
                JournalEntry(
                    ACTOR,
                    "receivable",
                    change.lot_uri,
                    {
                        "purchase_order": change.purchase_order,
                        "amount_minor": amount.minor,
                        "advance_minor": advance.minor,
                    },
                    [event.event_hash],
                    event.log_index,
                )
            )
        if pledge is None:
            return
        self._freeze_if_moved(change.lot_uri, event, evidence, held_before)
        if change.inspection in FAILED_INSPECTION or change.recalled:
            self._flush()  # revaluation reads every pledged lot of the line from the database
            valuation.revalue_line(
                conn,
                self._journal,
                pledge.line_id,
                change.lot_uri,
                reason=change.inspection or "recalled",
                log_index=event.log_index,
            )
        if change.sold and product is not None:
            valuation.route_proceeds(
                conn, self._journal, pledge, change.lot_uri, change.sold, event, product
            )

    def _react_to_split(
        self, lot_uri: str, event: LoggedEvent, split: Split, at_hand: int, *, again: bool
    ) -> None:
        """Units leaving a pledged lot. Within what the financier released (units at hand
        beyond those pledged) they may go; beyond it, pledged goods left: from the pledged site
        that freezes the line and flags the lot as a whole lot leaving does; sold, their
        proceeds are due to the line wherever they were sold."""
        pledge = self._pledges.get(lot_uri)
        if pledge is None:
            return
        record = self._lots[lot_uri]
        released = max(at_hand - pledge.quantity, 0)
        pledged_leaving = max(len(split.items) - released, 0)
        product = self._products.get(record.gtin)
        if split.sold and pledged_leaving and product is not None and not again:
            valuation.route_proceeds(
                self._conn, self._journal, pledge, lot_uri, pledged_leaving, event, product
            )
        if site_gln(pledge.location) != record.held_at:
            return
        if not pledged_leaving:
            if not again:
                self._entries.append(
                    JournalEntry(
                        ACTOR,
                        "released_units_left",
                        lot_uri,
                        {"line": pledge.line_id, "units": len(split.items)},
                        [event.event_hash],
                        event.log_index,
                    )
                )
            return
        # As for a whole lot leaving: frozen and flagged, not revalued here (the units' value
        # is gone from the lot's at once; the margin call follows at the line's next
        # revaluation), so that what finance writes does not depend on arrival order.
        self._freeze(lot_uri, pledge, event, again=again)

    def _moved_pledge(
        self, lot_uri: str, event: LoggedEvent, evidence: Evidence, held_before: str | None
    ) -> Pledge | None:
        """The lot's live pledge when `event` says its goods left the pledged site, else None."""
        pledge = self._pledges.get(lot_uri)
        if pledge is None or not moves_pledged_goods(
            event, evidence.fact, pledge.location, held_before
        ):
            return None
        return pledge

    def _freeze_if_moved(
        self,
        lot_uri: str,
        event: LoggedEvent,
        evidence: Evidence,
        held_before: str | None,
        *,
        again: bool = False,
    ) -> None:
        """Pledged goods away from their site without a release: stop new money at once."""
        pledge = self._moved_pledge(lot_uri, event, evidence, held_before)
        if pledge is not None:
            self._freeze(lot_uri, pledge, event, again=again)

    def _freeze(self, lot_uri: str, pledge: Pledge, event: LoggedEvent, *, again: bool) -> None:
        """Freeze the pledge's line and flag the lot on `event` (noted if both were already).

        Once per claim: a claim folded `again` that finance reacted to before changes nothing
        (the financier may have reopened the line since)."""
        if again and credit.movement_reacted(self._conn, lot_uri, event.log_index):
            return
        froze = credit.set_line_status(self._conn, pledge.line_id, "frozen")
        if froze:
            self._journal.write(
                self._conn,
                ACTOR,
                "line_frozen",
                f"line:{pledge.line_id}",
                {"reason": "unauthorized_movement", "lot": lot_uri},
                [event.event_hash],
                event.log_index,
            )
        flagged = _flag(
            self._conn,
            self._journal,
            "unauthorized_movement",
            lot_uri,
            event,
            # One wording whichever movement finance learnt of first (arrival order).
            "pledged goods left their supervised site without a release",
            line_id=pledge.line_id,
        )
        if not (froze or flagged):  # the line frozen and flagged already: noted all the same
            self._journal.write(
                self._conn,
                ACTOR,
                "movement_seen",
                lot_uri,
                {"line": pledge.line_id},
                [event.event_hash],
                event.log_index,
            )


def _blank(lot_uri: str) -> LotRecord:
    parsed = parse_lot(lot_uri)
    assert parsed is not None, lot_uri  # attribution only names lots it could parse
    return LotRecord(lot_uri, parsed[0], parsed[1])


def _flag(
    conn: Conn,
    journal: Journal,
    kind: str,
    lot_uri: str,
    event: LoggedEvent,
    detail: str,
    line_id: int | None = None,
) -> bool:
    """Raise a flag on `event`'s evidence and journal it; False when it was open already."""
    if not credit.raise_flag(
        conn, kind, detail, lot_uri=lot_uri, line_id=line_id, event_hash=event.event_hash
    ):
        return False
    journal.write(
        conn,
        ACTOR,
        f"flag_{kind}",
        lot_uri,
        {"detail": detail},
        [event.event_hash],
        event.log_index,
    )
    return True
