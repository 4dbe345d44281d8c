"""SQL for the append-only event log: positions, anchored batches and chain deployments."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import class_row

from ledger.bundle import TrustedAnchor
from records.db import Conn


@dataclass(frozen=True)
class Deployment:
    id: int
    chain_id: int
    genesis_hash: bytes
    anchor_address: str
    pledge_address: str
    anchor_code_hash: bytes
    pledge_code_hash: bytes
    deployed_block: int


@dataclass(frozen=True)
class BatchRecord:
    deployment_id: int
    batch_id: int
    first_index: int
    count: int
    root: bytes
    tx_hash: bytes
    block_number: int
    anchored_at: datetime

    @property
    def end_index(self) -> int:
        return self.first_index + self.count


@dataclass(frozen=True)
class LogEntry:
    log_index: int
    event_hash: bytes


_DEPLOYMENT_COLUMNS = (
    "id, chain_id, genesis_hash, anchor_address, pledge_address, anchor_code_hash,"
    " pledge_code_hash, deployed_block"
)
_INSERT_DEPLOYMENT = (
    "INSERT INTO chain_deployments (chain_id, genesis_hash, anchor_address, pledge_address,"
    " anchor_code_hash, pledge_code_hash, deployed_block) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " RETURNING id, chain_id, genesis_hash, anchor_address, pledge_address, anchor_code_hash,"
    " pledge_code_hash, deployed_block"
)
_BATCH_COLUMNS = (
    "deployment_id, batch_id, first_index, count, root, tx_hash, block_number, anchored_at"
)


def current_deployment(conn: Conn) -> Deployment | None:
    with conn.cursor(row_factory=class_row(Deployment)) as cursor:
        return cursor.execute(
            f"SELECT {_DEPLOYMENT_COLUMNS} FROM chain_deployments WHERE current"  # noqa: S608
        ).fetchone()


def trusted_anchors(conn: Conn, pinned: frozenset[TrustedAnchor]) -> frozenset[TrustedAnchor]:
    """The TraceAnchors a verifier here accepts: the `pinned` ones when the operator pinned them
    (TRACEFIN_CHAIN_TRUSTED_ANCHORS: then an edited deployment row cannot add one), else every
    deployment this database recorded (a replaced one's batches still prove what they proved)."""
    if pinned:
        return pinned
    with conn.cursor(row_factory=class_row(Deployment)) as cursor:
        recorded = cursor.execute(
            f"SELECT {_DEPLOYMENT_COLUMNS} FROM chain_deployments"  # noqa: S608
        ).fetchall()
    return frozenset(TrustedAnchor.of(d.chain_id, d.anchor_address) for d in recorded)


def record_deployment(
    conn: Conn,
    *,
    chain_id: int,
    genesis_hash: bytes,
    anchor_address: str,
    pledge_address: str,
    anchor_code_hash: bytes,
    pledge_code_hash: bytes,
    deployed_block: int,
) -> Deployment:
    """Make this deployment the current one; earlier ones are kept, no longer current."""
    conn.execute("UPDATE chain_deployments SET current = false WHERE current")
    with conn.cursor(row_factory=class_row(Deployment)) as cursor:
        deployment = cursor.execute(
            _INSERT_DEPLOYMENT,
            (
                chain_id,
                genesis_hash,
                anchor_address,
                pledge_address,
                anchor_code_hash,
                pledge_code_hash,
                deployed_block,
            ),
        ).fetchone()
    assert deployment is not None
    return deployment


def assign_positions(conn: Conn, limit: int) -> int:
    """Move up to `limit` queued events into the log, in ingest order; returns how many.

    One statement: positions are committed with the removal from the queue, or not at all.
    """
    # `= ANY(ARRAY(…))` makes the delete look its `limit` keys up in the primary key; with
    # `IN (…)` the planner hash-joined a sequential scan of the whole queue, so every call
    # cost as much as the backlog (and its dead rows) however few it moved.
    row = conn.execute(
        """
        WITH next AS (
            SELECT coalesce(max(log_index) + 1, 0) AS first FROM log_entries
        ), taken AS (
            DELETE FROM log_queue
            WHERE ingest_seq = ANY (
                ARRAY(SELECT ingest_seq FROM log_queue ORDER BY ingest_seq LIMIT %s)
            )
            RETURNING ingest_seq, event_hash, event_time
        ), positioned AS (
            INSERT INTO log_entries (log_index, event_hash, event_time)
            SELECT (SELECT first FROM next)
                   + row_number() OVER (ORDER BY ingest_seq) - 1, event_hash, event_time
            FROM taken
            RETURNING 1
        )
        SELECT count(*) FROM positioned
        """,
        (limit,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def log_size(conn: Conn) -> int:
    row = conn.execute("SELECT coalesce(max(log_index) + 1, 0) FROM log_entries").fetchone()
    assert row is not None
    return int(row[0])


def entries(conn: Conn, first_index: int, count: int) -> list[bytes]:
    """The leaf digests at positions [first_index, first_index + count), in order: the event
    digest each position was given (an event re-identified since keeps its leaf, 0040)."""
    rows = conn.execute(
        "SELECT log_index, coalesce(leaf_hash, event_hash) FROM log_entries"
        " WHERE log_index >= %s AND log_index < %s ORDER BY log_index",
        (first_index, first_index + count),
    ).fetchall()
    digests = [bytes(row[1]) for row in rows]
    if len(digests) != count or (rows and rows[0][0] != first_index):
        raise LookupError(f"log positions {first_index}..{first_index + count - 1} incomplete")
    return digests


@dataclass(frozen=True)
class LogLeaf:
    """An event's log position and the digest its leaf was made from (its id then)."""

    event_hash: bytes
    log_index: int
    leaf: bytes


def leaves_of(conn: Conn, digests: list[bytes]) -> dict[bytes, LogLeaf]:
    """The log positions and leaves of those of the events `digests` that have one."""
    with conn.cursor(row_factory=class_row(LogLeaf)) as cursor:
        rows = cursor.execute(
            "SELECT event_hash, log_index, coalesce(leaf_hash, event_hash) AS leaf"
            " FROM log_entries WHERE event_hash = ANY(%s)",
            (digests,),
        ).fetchall()
    return {bytes(row.event_hash): row for row in rows}


def leaves_not_aliases(conn: Conn) -> list[tuple[int, bytes, bytes]]:
    """(position, leaf, event digest) of log entries whose leaf differs from their event's id
    without being an alias of that event: a leaf kept by a hash rule change must be one."""
    rows = conn.execute(
        "SELECT l.log_index, l.leaf_hash, l.event_hash FROM log_entries l"
        " WHERE l.leaf_hash IS NOT NULL AND l.leaf_hash <> l.event_hash"
        " AND NOT EXISTS (SELECT 1 FROM event_hash_aliases a"
        "   WHERE a.alias = l.leaf_hash AND a.event_hash = l.event_hash)"
        " ORDER BY l.log_index"
    ).fetchall()
    return [(int(index), bytes(leaf), bytes(digest)) for index, leaf, digest in rows]


def anchored_end(conn: Conn, deployment_id: int) -> int:
    """The first log position not covered by a recorded batch of this deployment."""
    row = conn.execute(
        "SELECT coalesce(max(first_index + count), 0) FROM anchor_batches WHERE deployment_id = %s",
        (deployment_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def batch_count(conn: Conn, deployment_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM anchor_batches WHERE deployment_id = %s", (deployment_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def record_batch(
    conn: Conn,
    deployment_id: int,
    *,
    batch_id: int,
    first_index: int,
    count: int,
    root: bytes,
    tx_hash: bytes,
    block_number: int,
) -> None:
    """Record an anchored batch; recording the same batch again changes nothing."""
    conn.execute(
        "INSERT INTO anchor_batches (deployment_id, batch_id, first_index, count, root, tx_hash,"
        " block_number) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (deployment_id, batch_id) DO NOTHING",
        (deployment_id, batch_id, first_index, count, root, tx_hash, block_number),
    )


def batches_covering(
    conn: Conn, deployment_id: int, log_indexes: list[int]
) -> dict[int, BatchRecord]:
    """The batch of this deployment that covers each of `log_indexes`, where one does."""
    if not log_indexes:
        return {}
    with conn.cursor(row_factory=class_row(BatchRecord)) as cursor:
        found = cursor.execute(
            f"SELECT {_BATCH_COLUMNS} FROM anchor_batches"  # noqa: S608
            " WHERE deployment_id = %s AND first_index <= %s AND first_index + count > %s"
            " ORDER BY first_index",
            (deployment_id, max(log_indexes), min(log_indexes)),
        ).fetchall()
    starts = [batch.first_index for batch in found]
    covering: dict[int, BatchRecord] = {}
    for index in log_indexes:
        at = bisect_right(starts, index) - 1
        if at >= 0 and index < found[at].end_index:
            covering[index] = found[at]
    return covering


def batches(conn: Conn, deployment_id: int) -> list[BatchRecord]:
    with conn.cursor(row_factory=class_row(BatchRecord)) as cursor:
        return cursor.execute(
            f"SELECT {_BATCH_COLUMNS} FROM anchor_batches"  # noqa: S608
            " WHERE deployment_id = %s ORDER BY batch_id",
            (deployment_id,),
        ).fetchall()


def report_status(conn: Conn, worker: str, state: str, detail: str) -> None:
    conn.execute(
        "INSERT INTO worker_status (worker, state, detail) VALUES (%s, %s, %s)"
        " ON CONFLICT (worker) DO UPDATE SET state = excluded.state, detail = excluded.detail,"
        " updated_at = now()",
        (worker, state, detail),
    )


def worker_state(conn: Conn, worker: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT state, detail FROM worker_status WHERE worker = %s", (worker,)
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def stored_event_rows(conn: Conn, columns: str) -> Iterator[tuple[Any, ...]]:
    """(digest, event JSON text, context JSON text or None, *columns) of every stored event.

    For the audit: streamed in ingest order through a server-side cursor, so memory stays flat
    however many events. `columns` is a constant list of `events` columns, never input.
    """
    with conn.transaction(), conn.cursor(name="audited_events") as cursor:
        cursor.itersize = 2000
        cursor.execute(
            f"SELECT event_hash, event::text, context::text, {columns} FROM events"  # noqa: S608
            " ORDER BY ingest_seq"
        )
        yield from cursor


@dataclass(frozen=True)
class LogProgress:
    """How far the log has come, for the lag gauges: one snapshot, so the numbers agree."""

    queued: int  # stored events not positioned yet
    size: int  # positions assigned
    anchored: int  # the first position no batch of the current deployment covers


def progress(conn: Conn) -> LogProgress:
    with conn.cursor(row_factory=class_row(LogProgress)) as cursor:
        row = cursor.execute(
            "SELECT (SELECT count(*) FROM log_queue) AS queued,"
            " (SELECT coalesce(max(log_index) + 1, 0) FROM log_entries) AS size,"
            " (SELECT coalesce(max(b.first_index + b.count), 0) FROM anchor_batches b"
            "  JOIN chain_deployments d ON d.id = b.deployment_id AND d.current) AS anchored"
        ).fetchone()
    assert row is not None
    return row


# Any constant works; every anchor process must use the same one.
ANCHOR_LEADER_LOCK_ID = 0x7466_616E_6368_6F72  # "tfanchor"


def try_anchor_leadership(conn: Conn) -> bool:
    """Take the anchor leader's session lock if free; held until `conn` closes."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ANCHOR_LEADER_LOCK_ID,)).fetchone()
    return row is not None and bool(row[0])


def ping(conn: Conn) -> None:
    """Raise if `conn` is gone (for a lock holder: leadership is lost with it)."""
    conn.execute("SELECT 1")


# Migration 0006's triggers notify this channel on every change a provenance page can show.
PAGE_CHANGES_CHANNEL = "tracefin_pages"


def page_generation(conn: Conn) -> int:
    """The current page generation (advanced by every change a page can show)."""
    row = conn.execute(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM page_generation"
    ).fetchone()
    assert row is not None
    return int(row[0])


def listen_for_page_changes(conn: Conn, wake_channel: str | None = None) -> None:
    """Subscribe `conn` (autocommit) to page-change notices, and to `wake_channel` (a private
    channel its listener is woken on, `wake`); read them with conn.notifies()."""
    conn.execute(f"LISTEN {PAGE_CHANGES_CHANNEL}")
    if wake_channel is not None:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(wake_channel)))


def wake(conn: Conn, channel: str) -> None:
    """Wake whoever listens on `channel` (a listener told to stop need not wait for a notice)."""
    conn.execute("SELECT pg_notify(%s, '')", (channel,))


def lock_deployments(conn: Conn) -> None:
    """Serialise deploys until the caller's transaction ends (readers are not blocked)."""
    conn.execute("LOCK TABLE chain_deployments IN SHARE ROW EXCLUSIVE MODE")
