"""SQL of re-identifying stored events under a new hash rule: rule marker, locks, re-keying."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from records.db import Conn


@dataclass(frozen=True)
class Reference:
    """A column that holds event digests and follows an event to its new id (bytea)."""

    table: str
    column: str


@dataclass(frozen=True)
class Rekey:
    """One stored event's digest under the rule it was stored by, and under the current rule."""

    old: bytes
    new: bytes


def hash_rule(conn: Conn) -> int | None:
    """The rule the stored ids follow; None before migration 0039 (a database whose later
    versions a test marked applied without applying them)."""
    found = conn.execute("SELECT to_regclass('event_hash_rule') IS NOT NULL").fetchone()
    if found is None or not found[0]:
        return None
    row = conn.execute("SELECT rule FROM event_hash_rule").fetchone()
    assert row is not None, "migration 0039 stores the rule"
    return int(row[0])


def set_hash_rule(conn: Conn, rule: int) -> None:
    conn.execute("UPDATE event_hash_rule SET rule = %s", (rule,))


def lock_for_rehash(conn: Conn, references: Sequence[Reference]) -> None:
    """Writers of events, of the log and of every reference wait until the commit (readers do
    not): no event is stored, positioned or anchored under an id that is being replaced."""
    tables = ["events", "attestations", "log_queue", "log_entries", "event_hash_aliases"]
    tables += [ref.table for ref in references if ref.table not in tables]
    conn.execute(
        sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(table) for table in tables)
        )
    )


def load_rekeys(conn: Conn, rekeys: Sequence[Rekey]) -> None:
    """The (old, new) pairs into a temporary table for the statements below."""
    conn.execute(
        "CREATE TEMPORARY TABLE rekey (old bytea PRIMARY KEY, new bytea NOT NULL) ON COMMIT DROP"
    )
    # One INSERT of two arrays, not COPY: PGlite's wire (the TimescaleDB tests) has no COPY.
    conn.execute(
        "INSERT INTO rekey (old, new) SELECT * FROM unnest(%s::bytea[], %s::bytea[])",
        ([r.old for r in rekeys], [r.new for r in rekeys]),
    )
    conn.execute("CREATE INDEX ON rekey (new)")


def cycles(conn: Conn) -> list[bytes]:
    """New ids that are the old id of another event being re-identified: refused (the swap
    would need both rows at once, and no event is known to need it)."""
    rows = conn.execute(
        "SELECT r.new FROM rekey r JOIN rekey o ON o.old = r.new AND o.old <> r.old"
    ).fetchall()
    return [bytes(row[0]) for row in rows]


@dataclass(frozen=True)
class Duplicate:
    """An event the new rule makes a copy of another: `kept` is the key that other one has
    while the re-keying runs (its old id, or its id if the rule did not change it)."""

    old: bytes
    new: bytes
    kept: bytes


def merged_duplicates(conn: Conn) -> list[Duplicate]:
    """Events stored twice under the old rule that the new rule makes one: each whose new id
    another stored event has already, or that a first-ingested one shares (that one stays the
    event; these become its aliases)."""
    rows = conn.execute(
        "SELECT old, new, CASE WHEN taken THEN new ELSE first_old END FROM ("
        "  SELECT r.old, r.new,"
        "   row_number() OVER w AS n, first_value(r.old) OVER w AS first_old,"
        "   EXISTS (SELECT 1 FROM events k WHERE k.event_hash = r.new) AS taken"
        "  FROM rekey r JOIN events e ON e.event_hash = r.old"
        "  WINDOW w AS (PARTITION BY r.new ORDER BY e.ingest_seq)"
        ") ranked WHERE n > 1 OR taken"
    ).fetchall()
    return [Duplicate(bytes(old), bytes(new), bytes(kept)) for old, new, kept in rows]


def drop_duplicates(conn: Conn, duplicates: Sequence[Duplicate]) -> None:
    """Fold each duplicate into the event it repeats: its attestations move there (one per
    party, as capture keeps them), its queued log entry goes (the kept event has one), its row
    goes. Its positioned log entry stays as it is (`rekey_log` skips it): its leaf may be on
    chain, and its digest becomes an alias."""
    with conn.cursor() as cursor:
        cursor.executemany(
            "UPDATE attestations a SET event_hash = %(kept)s WHERE a.event_hash = %(old)s"
            " AND NOT EXISTS (SELECT 1 FROM attestations b WHERE b.event_hash = %(kept)s"
            "   AND b.org_id = a.org_id AND b.channel = a.channel"
            "   AND coalesce(b.device_id, '') = coalesce(a.device_id, '')"
            "   AND (b.signature IS NOT NULL) = (a.signature IS NOT NULL))",
            [{"old": d.old, "kept": d.kept} for d in duplicates],
        )
    olds = [d.old for d in duplicates]
    conn.execute("DELETE FROM attestations WHERE event_hash = ANY(%s)", (olds,))
    conn.execute("DELETE FROM log_queue WHERE event_hash = ANY(%s)", (olds,))
    conn.execute("DELETE FROM events WHERE event_hash = ANY(%s)", (olds,))


def rekey_log(conn: Conn, duplicates: Sequence[Duplicate]) -> int:
    """Positioned events: the id follows the event, the leaf stays what it was. A folded
    duplicate's entry is left alone (event_hash is unique in the log)."""
    cursor = conn.execute(
        "UPDATE log_entries l SET leaf_hash = coalesce(l.leaf_hash, l.event_hash),"
        " event_hash = r.new FROM rekey r WHERE l.event_hash = r.old AND r.old <> ALL(%s)",
        ([d.old for d in duplicates],),
    )
    return cursor.rowcount


def rekey_column(conn: Conn, reference: Reference) -> int:
    statement = sql.SQL(
        "UPDATE {table} t SET {column} = r.new FROM rekey r WHERE t.{column} = r.old"
    )
    cursor = conn.execute(
        statement.format(
            table=sql.Identifier(reference.table), column=sql.Identifier(reference.column)
        )
    )
    return cursor.rowcount


def record_aliases(conn: Conn, rule: int) -> int:
    """Every old id (re-keyed or folded) becomes an alias of its new one; aliases that named a
    re-keyed event follow it."""
    conn.execute(
        "UPDATE event_hash_aliases a SET event_hash = r.new FROM rekey r WHERE a.event_hash = r.old"
    )
    cursor = conn.execute(
        "INSERT INTO event_hash_aliases (alias, event_hash, rule) SELECT old, new, %s FROM rekey",
        (rule,),
    )
    return cursor.rowcount


def rekey_events(conn: Conn) -> int:
    cursor = conn.execute(
        "UPDATE events e SET event_hash = r.new FROM rekey r WHERE e.event_hash = r.old"
    )
    return cursor.rowcount


def event_reference_columns(conn: Conn) -> list[Reference]:
    """Every bytea column of the schema whose name says it holds an event digest (tests check
    that each is declared, so a new table's column cannot be forgotten by the re-keying)."""
    rows = conn.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN pg_tables t ON t.tablename = c.table_name AND t.schemaname = c.table_schema"
        " WHERE c.table_schema = 'public' AND c.udt_name = 'bytea'"
        " AND (c.column_name LIKE '%%event_hash' OR c.column_name LIKE '%%inspection_hash')"
        " ORDER BY 1, 2"
    ).fetchall()
    return [Reference(str(table), str(column)) for table, column in rows]
