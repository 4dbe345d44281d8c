"""SQL of the finance domain: products, lots, lines, pledges, flags, journal, cursors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from finance import journal_seal
from finance.tracking import LoggedEvent, LotRecord
from records.db import Conn


@dataclass(frozen=True)
class Product:
    gtin: str
    owner_org_id: int
    name: str
    category: str
    unit_price_minor: int
    currency: str
    min_temp_c: Decimal | None
    max_temp_c: Decimal | None
    shelf_life_days: int | None


@dataclass(frozen=True)
class Lot:
    lot_uri: str
    gtin: str
    lot: str
    quantity: int
    location: str | None
    custody: str | None
    best_before: date | None
    recalled: bool
    last_inspection_disposition: str | None
    last_inspection_time: datetime | None
    last_inspection_hash: bytes | None


@dataclass(frozen=True)
class Line:
    id: int
    financier_org_id: int
    borrower_org_id: int
    currency: str
    limit_minor: int
    drawn_minor: int
    status: str


@dataclass(frozen=True)
class Pledge:
    lot_uri: str
    line_id: int
    lot_key: bytes
    location: str
    pledged_at: datetime


@dataclass(frozen=True)
class PolicyRow:
    financier_org_id: int
    category: str
    advance_rate: Decimal
    haircut: Decimal
    ltv_cap: Decimal
    breach_tolerance_s: int
    inspection_freshness_s: int
    receivable_advance_rate: Decimal


_LOT_COLUMNS = (
    "lot_uri, gtin, lot, quantity, location, custody, best_before, recalled,"
    " last_inspection_disposition, last_inspection_time, last_inspection_hash"
)
_LINE_COLUMNS = "id, financier_org_id, borrower_org_id, currency, limit_minor, drawn_minor, status"
_POLICY_COLUMNS = (
    "financier_org_id, category, advance_rate, haircut, ltv_cap, breach_tolerance_s,"
    " inspection_freshness_s, receivable_advance_rate"
)


# --- the log cursor --------------------------------------------------------------------------


def cursor(conn: Conn, worker: str) -> int:
    row = conn.execute("SELECT next_index FROM log_cursors WHERE worker = %s", (worker,)).fetchone()
    return int(row[0]) if row else 0


def advance_cursor(conn: Conn, worker: str, next_index: int) -> None:
    conn.execute(
        "INSERT INTO log_cursors (worker, next_index) VALUES (%s, %s)"
        " ON CONFLICT (worker) DO UPDATE SET next_index = excluded.next_index, updated_at = now()",
        (worker, next_index),
    )


# The keys a chunk looks up, as a relation to join, planned afresh on every call (prepare=False).
# As `col = ANY(%s)` in a prepared statement, the generic plan made while lot_members was small
# (a sequential scan; nothing re-plans it where autovacuum is off) tested every row against the
# whole array: seconds per call at 100 000 members. Planned with the real keys and table size,
# each key is an index probe.
_KEYS = "(SELECT DISTINCT unnest(%s::text[]) AS key) AS k"

_LOGGED_COLUMNS = (
    "e.event_time, e.event_type, e.action, e.biz_step, e.disposition, e.biz_location, e.epcs,"
    " e.lots, e.event"
)


def _logged(log_index: int, event_hash: bytes, row: Sequence[Any]) -> LoggedEvent:
    """A LoggedEvent from a position and the `_LOGGED_COLUMNS` of its event."""
    return LoggedEvent(
        log_index=log_index,
        event_hash=event_hash,
        event_time=row[0],
        event_type=row[1],
        action=row[2],
        biz_step=row[3],
        disposition=row[4],
        biz_location=row[5],
        epcs=list(row[6]),
        lots=list(row[7]),
        event=row[8],
    )


def read_log(conn: Conn, first_index: int, limit: int) -> list[LoggedEvent | int]:
    """Positions from `first_index` on, in order; a bare int is a position whose event is gone."""
    rows = conn.execute(
        f"SELECT l.log_index, l.event_hash, {_LOGGED_COLUMNS}"  # noqa: S608 - constant columns
        " FROM log_entries l LEFT JOIN events e ON e.event_hash = l.event_hash"
        " WHERE l.log_index >= %s ORDER BY l.log_index LIMIT %s",
        (first_index, limit),
    ).fetchall()
    return [
        int(row[0]) if row[2] is None else _logged(int(row[0]), bytes(row[1]), row[2:])
        for row in rows
    ]


def lot_events(conn: Conn, lot_uris: Iterable[str]) -> dict[str, list[LoggedEvent]]:
    """The events already applied to each lot (its evidence), to fold a lot again."""
    rows = conn.execute(
        f"SELECT le.lot_uri, le.log_index, le.event_hash, {_LOGGED_COLUMNS}"  # noqa: S608
        f" FROM {_KEYS} JOIN lot_evidence le ON le.lot_uri = k.key"
        " JOIN events e ON e.event_hash = le.event_hash",
        (list(lot_uris),),
        prepare=False,
    ).fetchall()
    out: dict[str, list[LoggedEvent]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(_logged(int(row[1]), bytes(row[2]), row[3:]))
    return out


# --- identifiers no lot has claimed yet ------------------------------------------------------


def unattributed_events(conn: Conn, epcs: Iterable[str]) -> list[LoggedEvent]:
    """Applied events that named one of `epcs` before a lot claimed it, each once."""
    rows = conn.execute(
        f"SELECT l.log_index, l.event_hash, {_LOGGED_COLUMNS}"  # noqa: S608 - constant columns
        " FROM log_entries l JOIN events e ON e.event_hash = l.event_hash"
        " WHERE l.log_index IN ("
        f"   SELECT u.log_index FROM {_KEYS} JOIN unattributed_epcs u ON u.epc = k.key)",
        (list(epcs),),
        prepare=False,
    ).fetchall()
    return [_logged(int(row[0]), bytes(row[1]), row[2:]) for row in rows]


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
        f"DELETE FROM unattributed_epcs u USING {_KEYS} WHERE u.epc = k.key",  # noqa: S608
        (list(epcs),),
        prepare=False,
    )


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
    return {(row[0], int(row[1])) for row in rows}


# --- lots ------------------------------------------------------------------------------------


def members_of(conn: Conn, epcs: Iterable[str]) -> dict[str, str]:
    rows = conn.execute(
        f"SELECT m.epc, m.lot_uri FROM {_KEYS} JOIN lot_members m ON m.epc = k.key",  # noqa: S608
        (list(epcs),),
        prepare=False,
    ).fetchall()
    return {row[0]: row[1] for row in rows}


_LOT_RECORD_COLUMNS = (
    "lot_uri, gtin, lot, quantity, location, custody, best_before, recalled,"
    " last_inspection_disposition, last_inspection_time, last_inspection_hash, updated_log_index,"
    " latest_event_time, latest_event_hash"
)


def load_lots(conn: Conn, lot_uris: Iterable[str]) -> dict[str, LotRecord]:
    with conn.cursor(row_factory=class_row(LotRecord)) as cur:
        rows = cur.execute(
            f"SELECT {_LOT_RECORD_COLUMNS} FROM {_KEYS}"  # noqa: S608 - constant columns
            " JOIN lots ON lots.lot_uri = k.key",
            (list(lot_uris),),
            prepare=False,
        ).fetchall()
    return {row.lot_uri: row for row in rows}


def save_lots(conn: Conn, records: Iterable[LotRecord]) -> None:
    """Write lots back in one round of statements (pipelined by executemany)."""
    conn.cursor().executemany(
        f"INSERT INTO lots ({_LOT_RECORD_COLUMNS})"  # noqa: S608 - constant column list
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (lot_uri) DO UPDATE SET quantity = excluded.quantity,"
        " location = excluded.location, custody = excluded.custody,"
        " best_before = excluded.best_before, recalled = excluded.recalled,"
        " last_inspection_disposition = excluded.last_inspection_disposition,"
        " last_inspection_time = excluded.last_inspection_time,"
        " last_inspection_hash = excluded.last_inspection_hash,"
        " updated_log_index = excluded.updated_log_index,"
        " latest_event_time = excluded.latest_event_time,"
        " latest_event_hash = excluded.latest_event_hash",
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
            )
            for r in records
        ],
    )


def add_members(conn: Conn, members: Sequence[tuple[str, str]]) -> None:
    """New (epc, lot) memberships; the caller passes only EPCs not yet members of a lot."""
    with conn.cursor().copy("COPY lot_members (epc, lot_uri) FROM STDIN") as copy:
        for row in members:
            copy.write_row(row)


def add_evidence(conn: Conn, rows: Sequence[tuple[str, int, bytes, str | None]]) -> None:
    """(lot, log index, event hash, bizStep) rows: the events each lot's state rests on.

    COPY, not INSERT: the worker applies each log position once (cursor and rows commit
    together), so these rows never exist already.
    """
    with conn.cursor().copy(
        "COPY lot_evidence (lot_uri, log_index, event_hash, biz_step) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def live_pledges(conn: Conn, lot_uris: Iterable[str]) -> dict[str, Pledge]:
    with conn.cursor(row_factory=class_row(Pledge)) as cur:
        rows = cur.execute(
            "SELECT p.lot_uri, p.line_id, p.lot_key, p.location, p.pledged_at"  # noqa: S608
            f" FROM {_KEYS} JOIN pledges p ON p.lot_uri = k.key"
            " WHERE p.released_at IS NULL",
            (list(lot_uris),),
            prepare=False,
        ).fetchall()
    return {row.lot_uri: row for row in rows}


def products(conn: Conn, gtins: Iterable[str]) -> dict[str, Product]:
    with conn.cursor(row_factory=class_row(Product)) as cur:
        rows = cur.execute(
            "SELECT p.gtin, p.owner_org_id, p.name, p.category, p.unit_price_minor,"  # noqa: S608
            " p.currency, p.min_temp_c, p.max_temp_c, p.shelf_life_days"
            f" FROM {_KEYS} JOIN products p ON p.gtin = k.key",
            (list(gtins),),
            prepare=False,
        ).fetchall()
    return {row.gtin: row for row in rows}


def get_lot(conn: Conn, lot_uri: str) -> Lot | None:
    with conn.cursor(row_factory=class_row(Lot)) as cur:
        return cur.execute(
            f"SELECT {_LOT_COLUMNS} FROM lots WHERE lot_uri = %s",  # noqa: S608 - constant
            (lot_uri,),
        ).fetchone()


def evidence(conn: Conn, lot_uri: str) -> list[tuple[bytes, bool]]:
    """(event hash, anchored) of every event the lot's state rests on, in log order."""
    rows = conn.execute(
        "SELECT le.event_hash, EXISTS ("
        "   SELECT 1 FROM anchor_batches b JOIN chain_deployments d ON d.id = b.deployment_id"
        "   WHERE d.current AND le.log_index >= b.first_index"
        "   AND le.log_index < b.first_index + b.count)"
        " FROM lot_evidence le WHERE le.lot_uri = %s ORDER BY le.log_index",
        (lot_uri,),
    ).fetchall()
    return [(bytes(row[0]), bool(row[1])) for row in rows]


# --- products, warehouses, policies ----------------------------------------------------------


def add_product(conn: Conn, product: Product) -> None:
    conn.execute(
        "INSERT INTO products (gtin, owner_org_id, name, category, unit_price_minor, currency,"
        " min_temp_c, max_temp_c, shelf_life_days) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (gtin) DO UPDATE SET name = excluded.name, category = excluded.category,"
        " unit_price_minor = excluded.unit_price_minor, currency = excluded.currency,"
        " min_temp_c = excluded.min_temp_c, max_temp_c = excluded.max_temp_c,"
        " shelf_life_days = excluded.shelf_life_days",
        (
            product.gtin,
            product.owner_org_id,
            product.name,
            product.category,
            product.unit_price_minor,
            product.currency,
            product.min_temp_c,
            product.max_temp_c,
            product.shelf_life_days,
        ),
    )


def get_product(conn: Conn, gtin: str) -> Product | None:
    with conn.cursor(row_factory=class_row(Product)) as cur:
        return cur.execute(
            "SELECT gtin, owner_org_id, name, category, unit_price_minor, currency, min_temp_c,"
            " max_temp_c, shelf_life_days FROM products WHERE gtin = %s",
            (gtin,),
        ).fetchone()


def add_warehouse(conn: Conn, location: str, operator_org_id: int, name: str) -> None:
    conn.execute(
        "INSERT INTO warehouses (location, operator_org_id, name) VALUES (%s, %s, %s)"
        " ON CONFLICT (location) DO UPDATE SET name = excluded.name",
        (location, operator_org_id, name),
    )


def add_sensor(conn: Conn, org_id: int, device_id: str, location: str) -> None:
    conn.execute(
        "INSERT INTO warehouse_sensors (org_id, device_id, location) VALUES (%s, %s, %s)"
        " ON CONFLICT (org_id, device_id) DO UPDATE SET location = excluded.location",
        (org_id, device_id, location),
    )


def supervise(conn: Conn, financier_org_id: int, location: str) -> None:
    conn.execute(
        "INSERT INTO supervised_warehouses (financier_org_id, location) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING",
        (financier_org_id, location),
    )


def is_supervised(conn: Conn, financier_org_id: int, location: str | None) -> bool:
    if location is None:
        return False
    return (
        conn.execute(
            "SELECT 1 FROM supervised_warehouses WHERE financier_org_id = %s AND location = %s",
            (financier_org_id, location),
        ).fetchone()
        is not None
    )


def set_policy(conn: Conn, policy: PolicyRow) -> None:
    conn.execute(
        f"INSERT INTO policies ({_POLICY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"  # noqa: S608
        " ON CONFLICT (financier_org_id, category) DO UPDATE SET"
        " advance_rate = excluded.advance_rate, haircut = excluded.haircut,"
        " ltv_cap = excluded.ltv_cap, breach_tolerance_s = excluded.breach_tolerance_s,"
        " inspection_freshness_s = excluded.inspection_freshness_s,"
        " receivable_advance_rate = excluded.receivable_advance_rate",
        (
            policy.financier_org_id,
            policy.category,
            policy.advance_rate,
            policy.haircut,
            policy.ltv_cap,
            policy.breach_tolerance_s,
            policy.inspection_freshness_s,
            policy.receivable_advance_rate,
        ),
    )


def policy_for(conn: Conn, financier_org_id: int, category: str) -> PolicyRow | None:
    """The financier's policy for the category, else its default ('*'), else None."""
    with conn.cursor(row_factory=class_row(PolicyRow)) as cur:
        return cur.execute(
            f"SELECT {_POLICY_COLUMNS} FROM policies"  # noqa: S608 - constant column list
            " WHERE financier_org_id = %s AND category IN (%s, '*')"
            " ORDER BY category = '*' LIMIT 1",
            (financier_org_id, category),
        ).fetchone()


# --- lines and pledges -----------------------------------------------------------------------


def open_line(
    conn: Conn, financier_org_id: int, borrower_org_id: int, currency: str, limit_minor: int
) -> Line:
    with conn.cursor(row_factory=class_row(Line)) as cur:
        line = cur.execute(
            "INSERT INTO credit_lines (financier_org_id, borrower_org_id, currency, limit_minor)"
            " VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (financier_org_id, borrower_org_id, currency)"
            " DO UPDATE SET limit_minor = excluded.limit_minor RETURNING id, financier_org_id,"
            " borrower_org_id, currency, limit_minor, drawn_minor, status",
            (financier_org_id, borrower_org_id, currency, limit_minor),
        ).fetchone()
    assert line is not None
    return line


def get_line(conn: Conn, line_id: int, *, for_update: bool = False) -> Line | None:
    lock = " FOR UPDATE" if for_update else ""
    with conn.cursor(row_factory=class_row(Line)) as cur:
        return cur.execute(
            f"SELECT {_LINE_COLUMNS} FROM credit_lines WHERE id = %s{lock}",  # noqa: S608
            (line_id,),
        ).fetchone()


def set_line_status(conn: Conn, line_id: int, status: str) -> bool:
    """Change the status; False when it already was that (so callers journal only changes)."""
    row = conn.execute(
        "UPDATE credit_lines SET status = %s WHERE id = %s AND status <> %s RETURNING id",
        (status, line_id, status),
    ).fetchone()
    return row is not None


def move_money(
    conn: Conn, line_id: int, kind: str, amount_minor: int, decision_id: int | None = None
) -> None:
    """Record a drawdown, repayment or proceeds; drawdowns and repayments change `drawn`."""
    conn.execute(
        "INSERT INTO line_movements (line_id, kind, amount_minor, decision_id)"
        " VALUES (%s, %s, %s, %s)",
        (line_id, kind, amount_minor, decision_id),
    )
    if kind == "drawdown":
        conn.execute(
            "UPDATE credit_lines SET drawn_minor = drawn_minor + %s WHERE id = %s",
            (amount_minor, line_id),
        )
    elif kind == "repayment":
        conn.execute(
            "UPDATE credit_lines SET drawn_minor = drawn_minor - %s WHERE id = %s",
            (amount_minor, line_id),
        )


def live_pledge(conn: Conn, lot_uri: str) -> Pledge | None:
    with conn.cursor(row_factory=class_row(Pledge)) as cur:
        return cur.execute(
            "SELECT lot_uri, line_id, lot_key, location, pledged_at FROM pledges"
            " WHERE lot_uri = %s AND released_at IS NULL",
            (lot_uri,),
        ).fetchone()


def pledges_of_line(conn: Conn, line_id: int) -> list[Pledge]:
    with conn.cursor(row_factory=class_row(Pledge)) as cur:
        return cur.execute(
            "SELECT lot_uri, line_id, lot_key, location, pledged_at FROM pledges"
            " WHERE line_id = %s AND released_at IS NULL ORDER BY pledged_at",
            (line_id,),
        ).fetchall()


def add_pledge(
    conn: Conn, lot_uri: str, line_id: int, lot_key: bytes, location: str, chain_tx: bytes
) -> None:
    conn.execute(
        "INSERT INTO pledges (lot_uri, line_id, lot_key, location, chain_tx)"
        " VALUES (%s, %s, %s, %s, %s)",
        (lot_uri, line_id, lot_key, location, chain_tx),
    )


def set_pledge_tx(conn: Conn, lot_uri: str, chain_tx: bytes) -> None:
    """The transaction that put the live pledge of `lot_uri` on the current registry."""
    conn.execute(
        "UPDATE pledges SET chain_tx = %s WHERE lot_uri = %s AND released_at IS NULL",
        (chain_tx, lot_uri),
    )


def release_pledge(conn: Conn, lot_uri: str, release_tx: bytes) -> bool:
    row = conn.execute(
        "UPDATE pledges SET released_at = now(), release_tx = %s"
        " WHERE lot_uri = %s AND released_at IS NULL RETURNING lot_uri",
        (release_tx, lot_uri),
    ).fetchone()
    return row is not None


# --- flags, margin calls, receivables, journal -----------------------------------------------


def raise_flag(
    conn: Conn,
    kind: str,
    detail: str,
    *,
    lot_uri: str | None = None,
    line_id: int | None = None,
    event_hash: bytes | None = None,
) -> bool:
    """Raise a risk flag unless the same one is open; True when it was raised now."""
    row = conn.execute(
        "INSERT INTO risk_flags (lot_uri, line_id, kind, detail, event_hash)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        (lot_uri, line_id, kind, detail, event_hash),
    ).fetchone()
    return row is not None


def open_flags(conn: Conn, lot_uri: str) -> set[str]:
    rows = conn.execute(
        "SELECT kind FROM risk_flags WHERE lot_uri = %s AND cleared_at IS NULL", (lot_uri,)
    ).fetchall()
    return {row[0] for row in rows}


def raise_margin_call(
    conn: Conn, line_id: int, lot_uri: str, shortfall_minor: int, reason: str
) -> bool:
    row = conn.execute(
        "INSERT INTO margin_calls (line_id, lot_uri, shortfall_minor, reason)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        (line_id, lot_uri, shortfall_minor, reason),
    ).fetchone()
    return row is not None


def add_receivables(conn: Conn, rows: Sequence[tuple[str, str, int, str, int, bytes]]) -> None:
    """(lot, PO, amount, currency, advance, event hash) rows; a known (lot, PO) is skipped."""
    if rows:
        conn.cursor().executemany(
            "INSERT INTO receivables (lot_uri, purchase_order, amount_minor, currency,"
            " advance_minor, event_hash) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )


def use_journal_key(key: bytes) -> None:
    """The key journal entries are sealed and checked with; set once by each process's wiring
    (from settings) before it writes or audits the journal."""
    global _journal_key
    _journal_key = key


_journal_key = journal_seal.DEVELOPMENT_KEY
_JOURNAL_INSERT = (
    "INSERT INTO finance_journal (actor, action, subject, detail, evidence, log_index, seal)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def add_journal(
    conn: Conn, rows: Sequence[tuple[str, str, str, dict[str, Any], list[bytes], int | None]]
) -> None:
    """Many journal entries at once: (actor, action, subject, detail, evidence, log index)."""
    if rows:
        conn.cursor().executemany(
            _JOURNAL_INSERT,
            [
                (a, b, c, Jsonb(d), e, f, journal_seal.seal(_journal_key, a, b, c, d, e, f))
                for a, b, c, d, e, f in rows
            ],
        )


def journal(
    conn: Conn,
    actor: str,
    action: str,
    subject: str,
    detail: dict[str, Any],
    evidence: Sequence[bytes] = (),
    log_index: int | None = None,
) -> None:
    add_journal(conn, [(actor, action, subject, detail, list(evidence), log_index)])


def journal_entries_not_intact(conn: Conn) -> Iterator[tuple[int, str, str, bool]]:
    """(id, action, subject, unsealed) of every journal entry whose seal does not match it under
    this process's key (`unsealed`: it has no seal at all)."""
    with conn.cursor() as cur:
        for row in cur.stream(
            "SELECT id, actor, action, subject, detail, evidence, log_index, seal"
            " FROM finance_journal ORDER BY id"
        ):
            entry = (row[1], row[2], row[3], row[4], [bytes(e) for e in row[5]], row[6])
            stored = bytes(row[7]) if row[7] is not None else None
            if not journal_seal.intact(_journal_key, stored, entry):
                yield int(row[0]), str(row[2]), str(row[3]), stored is None


def risk_flags_for_financier(
    conn: Conn, financier_org_id: int, since: datetime | None
) -> list[tuple[Any, ...]]:
    """Flags on the financier's lines and on lots pledged to it, oldest first."""
    return conn.execute(
        "SELECT DISTINCT f.id, f.lot_uri, f.line_id, f.kind, f.detail, f.raised_at"
        " FROM risk_flags f"
        " LEFT JOIN pledges p ON p.lot_uri = f.lot_uri AND p.released_at IS NULL"
        " JOIN credit_lines c ON c.id = coalesce(f.line_id, p.line_id)"
        " WHERE c.financier_org_id = %s AND (%s::timestamptz IS NULL OR f.raised_at >= %s)"
        " ORDER BY f.raised_at, f.id LIMIT 1000",
        (financier_org_id, since, since),
    ).fetchall()


def lot_visible_to(conn: Conn, org_id: int, role: str, lot_uri: str) -> bool:
    """Object-level access to a lot's goods status.

    Regulators see every lot; the product's owner sees its own lots; a financier sees lots
    pledged to it or lying in a warehouse it supervises (offered to it as collateral).
    """
    if role == "regulator":
        return True
    row = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM lots l JOIN products p ON p.gtin = l.gtin
                       WHERE l.lot_uri = %(lot)s AND p.owner_org_id = %(org)s)
            OR EXISTS (SELECT 1 FROM pledges pl JOIN credit_lines c ON c.id = pl.line_id
                       WHERE pl.lot_uri = %(lot)s AND pl.released_at IS NULL
                       AND c.financier_org_id = %(org)s)
            OR EXISTS (SELECT 1 FROM lots l JOIN supervised_warehouses s ON s.location = l.location
                       WHERE l.lot_uri = %(lot)s AND s.financier_org_id = %(org)s
                       AND %(role)s = 'financier')
        """,
        {"lot": lot_uri, "org": org_id, "role": role},
    ).fetchone()
    return bool(row and row[0])


def lines_of_financier(conn: Conn, financier_org_id: int) -> list[Line]:
    with conn.cursor(row_factory=class_row(Line)) as cur:
        return cur.execute(
            "SELECT id, financier_org_id, borrower_org_id, currency, limit_minor, drawn_minor,"
            " status FROM credit_lines WHERE financier_org_id = %s ORDER BY id",
            (financier_org_id,),
        ).fetchall()


# --- audit reads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PledgeForAudit:
    """A pledge row (live or released) with what other records say about it."""

    lot_uri: str
    lot_key: bytes
    line_id: int
    financier_org_id: int
    financier: str  # the slug of the line's financier
    live: bool
    journal_line: str | None  # the line named by the lot's latest `pledged` journal entry


def pledges_for_audit(conn: Conn) -> list[PledgeForAudit]:
    """Every pledge row, with its line's financier and the lot's latest `pledged` journal entry."""
    with conn.cursor(row_factory=class_row(PledgeForAudit)) as cur:
        return cur.execute(
            """
            WITH journaled AS (
                SELECT DISTINCT ON (subject) subject, detail->>'line' AS line
                FROM finance_journal WHERE action = 'pledged' ORDER BY subject, id DESC
            )
            SELECT p.lot_uri, p.lot_key, p.line_id, c.financier_org_id, o.slug AS financier,
                   p.released_at IS NULL AS live, j.line AS journal_line
            FROM pledges p
            JOIN credit_lines c ON c.id = p.line_id
            JOIN orgs o ON o.id = c.financier_org_id
            LEFT JOIN journaled j ON j.subject = p.lot_uri
            ORDER BY p.lot_uri, p.pledged_at
            """
        ).fetchall()


def financier_orgs(conn: Conn) -> list[tuple[int, str]]:
    """(id, slug) of every financier organisation."""
    rows = conn.execute("SELECT id, slug FROM orgs WHERE role = 'financier' ORDER BY id").fetchall()
    return [(int(row[0]), str(row[1])) for row in rows]


@dataclass(frozen=True)
class DecisionMismatch:
    """A decision that its journal entry does not confirm; `journal_entries` 1 means one found."""

    decision_id: int
    application_id: int
    journal_entries: int
    kind_differs: bool
    amount_differs: bool
    reasons_differ: bool
    evidence_differs: bool


def decisions_differing_from_journal(conn: Conn) -> list[DecisionMismatch]:
    """Decisions without exactly one `decision_*` journal entry, or differing from it."""
    with conn.cursor(row_factory=class_row(DecisionMismatch)) as cur:
        return cur.execute(
            """
            WITH journaled AS (
                SELECT DISTINCT ON (subject) subject, action, detail, evidence,
                       count(*) OVER (PARTITION BY subject) AS entries
                FROM finance_journal WHERE left(action, 9) = 'decision_'
                ORDER BY subject, id
            ), compared AS (
                SELECT d.id AS decision_id, d.application_id,
                       coalesce(j.entries, 0)::int AS journal_entries,
                       j.action IS DISTINCT FROM 'decision_' || d.kind AS kind_differs,
                       j.detail->'approved_minor' IS DISTINCT FROM to_jsonb(d.approved_minor)
                           AS amount_differs,
                       j.detail->'reasons' IS DISTINCT FROM to_jsonb(d.reasons) AS reasons_differ,
                       j.evidence IS DISTINCT FROM d.evidence AS evidence_differs
                FROM decisions d
                LEFT JOIN journaled j ON j.subject = 'application:' || d.application_id
            )
            SELECT * FROM compared
            WHERE journal_entries <> 1 OR kind_differs OR amount_differs OR reasons_differ
                  OR evidence_differs
            ORDER BY decision_id
            """
        ).fetchall()


def journaled_decisions_missing(conn: Conn) -> list[tuple[int, str]]:
    """(journal id, subject) of `decision_*` journal entries whose application has no decision."""
    rows = conn.execute(
        "SELECT j.id, j.subject FROM finance_journal j WHERE left(j.action, 9) = 'decision_'"
        " AND NOT EXISTS (SELECT 1 FROM decisions d"
        "                 WHERE j.subject = 'application:' || d.application_id)"
        " ORDER BY j.id"
    ).fetchall()
    return [(int(row[0]), str(row[1])) for row in rows]


def decision_evidence_not_stored(conn: Conn) -> list[tuple[int, bytes]]:
    """(decision id, digest) of decision evidence that names no stored event."""
    rows = conn.execute(
        "SELECT d.id, ev FROM decisions d CROSS JOIN LATERAL unnest(d.evidence) AS ev"
        " WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_hash = ev) ORDER BY d.id"
    ).fetchall()
    return [(int(row[0]), bytes(row[1])) for row in rows]


def lot_uris(conn: Conn) -> list[str]:
    """Every lot the finance worker knows."""
    return [str(row[0]) for row in conn.execute("SELECT lot_uri FROM lots").fetchall()]
