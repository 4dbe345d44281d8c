"""The finance worker's reads and writes of the event log: cursor, lot members, evidence, lots."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import class_row, kwargs_row

from epcis.authority import Attestation
from finance.store import KEYS
from finance.tracking import LoggedEvent, LotRecord, recorder_attestation
from records.db import Conn


@dataclass(frozen=True)
class EvidenceRow:
    """An event applied to a lot, as the worker records it (log order, bizStep kept), and
    whether it counts as evidence (`reason` when not; `attestations_seen`: how many stored
    attestations it was judged on)."""

    lot_uri: str
    log_index: int
    event_hash: bytes
    biz_step: str | None
    counts: bool = True
    reason: str | None = None
    attestations_seen: int = 0


@dataclass(frozen=True)
class _LotEvent:
    lot_uri: str
    counts: bool
    event: LoggedEvent


# --- the log cursor --------------------------------------------------------------------------


def cursor(conn: Conn, worker: str) -> int:
    """The next log position `worker` will apply (0 before its first chunk)."""
    row = conn.execute("SELECT next_index FROM log_cursors WHERE worker = %s", (worker,)).fetchone()
    return int(row[0]) if row else 0


def claim_cursor(conn: Conn, worker: str) -> int:
    """The next position of `worker`, row-locked until the transaction ends.

    The row lock serialises workers: a second one waits instead of applying a chunk twice.
    """
    conn.execute(
        "INSERT INTO log_cursors (worker, next_index) VALUES (%s, 0) ON CONFLICT DO NOTHING",
        (worker,),
    )
    row = conn.execute(
        "SELECT next_index FROM log_cursors WHERE worker = %s FOR UPDATE", (worker,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def advance_cursor(conn: Conn, worker: str, next_index: int) -> None:
    conn.execute(
        "INSERT INTO log_cursors (worker, next_index) VALUES (%s, %s)"
        " ON CONFLICT (worker) DO UPDATE SET next_index = excluded.next_index, updated_at = now()",
        (worker, next_index),
    )


def dead_letter(conn: Conn, log_index: int, error: str) -> bytes | None:
    """Set aside a log position the worker could not apply; returns its event's hash."""
    row = conn.execute(
        "INSERT INTO finance_dead_letters (log_index, event_hash, error)"
        " SELECT log_index, event_hash, %s FROM log_entries WHERE log_index = %s"
        " ON CONFLICT (log_index) DO NOTHING RETURNING event_hash",
        (error[:2000], log_index),
    ).fetchone()
    return bytes(row[0]) if row else None


def dead_letters(conn: Conn) -> list[tuple[int, bytes, str]]:
    """(log index, event hash, error) of every position set aside, in log order."""
    rows = conn.execute(
        "SELECT log_index, event_hash, error FROM finance_dead_letters ORDER BY log_index"
    ).fetchall()
    return [(int(index), bytes(digest), str(error)) for index, digest, error in rows]


# --- the log and its events ------------------------------------------------------------------

# Named as LoggedEvent's fields, so that rows build it by keyword; the recorder's columns
# (`_EVENTS` joins its org) build its `recorded_by`.
_LOGGED_COLUMNS = (
    "e.event_time, e.event_type, e.action, e.biz_step, e.disposition, e.biz_location, e.epcs,"
    " e.lots, e.event, e.read_point, o.slug AS recorder_org, e.device_id AS recorder_device,"
    " e.topic AS recorder_topic, e.signature IS NOT NULL AS recorder_signed,"
    " e.received_at AS recorder_received_at"
)
_RECORDER = ("recorder_org", "recorder_device", "recorder_topic", "recorder_signed")


def _recorded_by(columns: dict[str, Any]) -> Attestation | None:
    org, device, topic, signed = (columns.pop(name) for name in _RECORDER)
    received_at = columns.pop("recorder_received_at")
    if org is None:
        return None
    return recorder_attestation(org, device, topic, bool(signed), received_at)


def _logged(**columns: Any) -> LoggedEvent:
    recorded_by = _recorded_by(columns)
    return LoggedEvent(recorded_by=recorded_by, **columns)


def _position(
    log_index: int, event_hash: bytes, event: dict[str, Any] | None, **columns: Any
) -> LoggedEvent | int:
    """A position of the log: its event, or the bare index where the event is gone."""
    if event is None:
        return log_index
    return _logged(log_index=log_index, event_hash=event_hash, event=event, **columns)


def _lot_event(lot_uri: str, counts: bool, **columns: Any) -> _LotEvent:
    return _LotEvent(lot_uri, counts, _logged(**columns))


def read_log(conn: Conn, first_index: int, limit: int) -> list[LoggedEvent | int]:
    """Positions from `first_index` on, in order; a bare int is a position whose event is gone."""
    with conn.cursor(row_factory=kwargs_row(_position)) as cur:
        return cur.execute(
            f"SELECT l.log_index, l.event_hash, {_LOGGED_COLUMNS}"  # noqa: S608 - constant columns
            " FROM log_entries l LEFT JOIN events e ON e.event_hash = l.event_hash"
            " LEFT JOIN orgs o ON o.id = e.org_id"
            " WHERE l.log_index >= %s ORDER BY l.log_index LIMIT %s",
            (first_index, limit),
        ).fetchall()


def lot_events(conn: Conn, lot_uris: Iterable[str]) -> dict[str, list[tuple[LoggedEvent, bool]]]:
    """The events already applied to each lot, and whether each counted, to fold it again."""
    with conn.cursor(row_factory=kwargs_row(_lot_event)) as cur:
        rows = cur.execute(
            "SELECT le.lot_uri, le.counts, le.log_index, le.event_hash,"  # noqa: S608
            f" {_LOGGED_COLUMNS} FROM {KEYS} JOIN lot_evidence le ON le.lot_uri = k.key"
            " JOIN events e ON e.event_hash = le.event_hash JOIN orgs o ON o.id = e.org_id",
            (list(lot_uris),),
            prepare=False,
        ).fetchall()
    out: dict[str, list[tuple[LoggedEvent, bool]]] = {}
    for row in rows:
        out.setdefault(row.lot_uri, []).append((row.event, row.counts))
    return out


def rejudge_unattested(conn: Conn) -> None:
    """Evidence that did not count is judged again: `reattested_lots` names its lots until a
    chunk has folded them (the registry it was judged on has changed)."""
    conn.execute(
        "UPDATE lot_evidence SET attestations_seen = -1 WHERE NOT counts AND attestations_seen >= 0"
    )


def reattested_lots(conn: Conn) -> set[str]:
    """Lots holding an event that did not count and has been attested again since it was
    judged: the new attestation may be the rightful party's, so the lot is folded again.

    Counts, not attestation ids, say what is new: ids of concurrent captures commit out of
    order, so a cursor over them could pass one that commits late.
    """
    rows = conn.execute(
        "SELECT DISTINCT le.lot_uri FROM lot_evidence le WHERE NOT le.counts"
        " AND le.attestations_seen"
        " < (SELECT count(*) FROM attestations a WHERE a.event_hash = le.event_hash)"
    ).fetchall()
    return {str(uri) for (uri,) in rows}


# --- identifiers no lot has claimed yet ------------------------------------------------------


def unattributed_events(conn: Conn, epcs: Iterable[str]) -> list[LoggedEvent]:
    """Applied events that named one of `epcs` before a lot claimed it, each once."""
    with conn.cursor(row_factory=kwargs_row(_logged)) as cur:
        return cur.execute(
            f"SELECT l.log_index, l.event_hash, {_LOGGED_COLUMNS}"  # noqa: S608 - constant columns
            " FROM log_entries l JOIN events e ON e.event_hash = l.event_hash"
            " JOIN orgs o ON o.id = e.org_id"
            " WHERE l.log_index IN ("
            f"   SELECT u.log_index FROM {KEYS} JOIN unattributed_epcs u ON u.epc = k.key)",
            (list(epcs),),
            prepare=False,
        ).fetchall()


def remember_unattributed(conn: Conn, rows: Sequence[tuple[str, int]]) -> None:
    """(EPC, log index) of events applied now that name identifiers no lot has claimed yet.

    COPY, not INSERT: a log position is applied once, so its rows never exist already.
    """
    with conn.cursor().copy("COPY unattributed_epcs (epc, log_index) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def forget_unattributed(conn: Conn, epcs: Iterable[str]) -> None:
    """The identifiers a lot has now claimed: their events have been applied to it."""
    conn.execute(
        f"DELETE FROM unattributed_epcs u USING {KEYS} WHERE u.epc = k.key",  # noqa: S608
        (list(epcs),),
        prepare=False,
    )


# --- lot members and evidence ----------------------------------------------------------------


def evidenced(conn: Conn, pairs: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of the (lot, log index) pairs are already evidence of that lot."""
    if not pairs:
        return set()
    rows = conn.execute(
        "SELECT le.lot_uri, le.log_index FROM lot_evidence le"
        " JOIN unnest(%s::text[], %s::bigint[]) AS p (lot_uri, log_index)"
        " ON le.lot_uri = p.lot_uri AND le.log_index = p.log_index",
        ([lot for lot, _ in pairs], [index for _, index in pairs]),
    ).fetchall()
    return {(str(lot), int(index)) for lot, index in rows}


def members_of(conn: Conn, epcs: Iterable[str]) -> dict[str, str]:
    """The lot each of `epcs` is a member of, for those that are members of one."""
    rows = conn.execute(
        f"SELECT m.epc, m.lot_uri FROM {KEYS} JOIN lot_members m ON m.epc = k.key",  # noqa: S608
        (list(epcs),),
        prepare=False,
    ).fetchall()
    return {str(epc): str(lot) for epc, lot in rows}


def add_members(conn: Conn, members: Sequence[tuple[str, str]]) -> None:
    """New (epc, lot) memberships; the caller passes only EPCs not yet members of a lot."""
    with conn.cursor().copy("COPY lot_members (epc, lot_uri) FROM STDIN") as copy:
        for row in members:
            copy.write_row(row)


def add_evidence(conn: Conn, rows: Sequence[EvidenceRow]) -> None:
    """The events each lot's state rests on.

    COPY, not INSERT: the worker applies each log position once (cursor and rows commit
    together), so these rows never exist already.
    """
    with conn.cursor().copy(
        "COPY lot_evidence (lot_uri, log_index, event_hash, biz_step, counts, reason,"
        " attestations_seen) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(
                (
                    row.lot_uri,
                    row.log_index,
                    row.event_hash,
                    row.biz_step,
                    row.counts,
                    row.reason,
                    row.attestations_seen,
                )
            )


def judge_evidence(conn: Conn, rows: Sequence[EvidenceRow]) -> None:
    """Evidence folded again: whether it counts now, on the attestations seen now."""
    if rows:
        conn.cursor().executemany(
            "UPDATE lot_evidence SET counts = %s, reason = %s, attestations_seen = %s"
            " WHERE lot_uri = %s AND log_index = %s",
            [(r.counts, r.reason, r.attestations_seen, r.lot_uri, r.log_index) for r in rows],
        )


# --- lots as the worker folds them -----------------------------------------------------------

_LOT_COLUMNS = (
    "lot_uri, gtin, lot, quantity, location, custody, best_before, recalled,"
    " last_inspection_disposition, last_inspection_time, last_inspection_hash, updated_log_index,"
    " latest_event_time, latest_event_hash, custodian, held_at,"
    " in_transit, consignees, held_since, departed, recalled_by"
)


def load_lots(conn: Conn, lot_uris: Iterable[str]) -> dict[str, LotRecord]:
    with conn.cursor(row_factory=class_row(LotRecord)) as cur:
        rows = cur.execute(
            f"SELECT {_LOT_COLUMNS} FROM {KEYS}"  # noqa: S608 - constant columns
            " JOIN lots ON lots.lot_uri = k.key",
            (list(lot_uris),),
            prepare=False,
        ).fetchall()
    return {row.lot_uri: row for row in rows}


def get_lot(conn: Conn, lot_uri: str) -> LotRecord | None:
    """One lot's row, as the worker last wrote it."""
    with conn.cursor(row_factory=class_row(LotRecord)) as cur:
        return cur.execute(
            f"SELECT {_LOT_COLUMNS} FROM lots WHERE lot_uri = %s",  # noqa: S608 - constant
            (lot_uri,),
        ).fetchone()


def save_lots(conn: Conn, records: Iterable[LotRecord]) -> None:
    """Write lots back in one round of statements (pipelined by executemany)."""
    conn.cursor().executemany(
        f"INSERT INTO lots ({_LOT_COLUMNS})"  # noqa: S608 - constant column list
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s)"
        " ON CONFLICT (lot_uri) DO UPDATE SET quantity = excluded.quantity,"
        " location = excluded.location, custody = excluded.custody,"
        " best_before = excluded.best_before, recalled = excluded.recalled,"
        " last_inspection_disposition = excluded.last_inspection_disposition,"
        " last_inspection_time = excluded.last_inspection_time,"
        " last_inspection_hash = excluded.last_inspection_hash,"
        " updated_log_index = excluded.updated_log_index,"
        " latest_event_time = excluded.latest_event_time,"
        " latest_event_hash = excluded.latest_event_hash, custodian = excluded.custodian,"
        " held_at = excluded.held_at, in_transit = excluded.in_transit,"
        " consignees = excluded.consignees, held_since = excluded.held_since,"
        " departed = excluded.departed, recalled_by = excluded.recalled_by",
        [
            (
                r.lot_uri,
                r.gtin,
                r.lot,
                r.quantity,
                r.location,
                r.custody,
                r.best_before,
                r.recalled,
                r.last_inspection_disposition,
                r.last_inspection_time,
                r.last_inspection_hash,
                r.updated_log_index,
                r.latest_event_time,
                r.latest_event_hash,
                r.custodian,
                r.held_at,
                r.in_transit,
                r.consignees,
                r.held_since,
                r.departed,
                r.recalled_by,
            )
            for r in records
        ],
    )


def lot_uris(conn: Conn) -> list[str]:
    """Every lot the finance worker knows."""
    return [str(uri) for (uri,) in conn.execute("SELECT lot_uri FROM lots").fetchall()]


def turn_off_jit(conn: Conn) -> None:
    """No JIT on this session: small indexed reads over tables without statistics (autovacuum
    may be off) get huge cost estimates, and JIT-compiling them costs more than running them:
    tens of ms a chunk."""
    conn.execute("SET jit = off")
