"""SQL finance answers to monitoring: how far its worker has read the log."""

from __future__ import annotations

from records.db import Conn


def finance_position(conn: Conn) -> int:
    """The next log position the finance worker will apply (0 before its first batch)."""
    row = conn.execute(
        "SELECT coalesce(max(next_index), 0) FROM log_cursors WHERE worker = 'finance'"
    ).fetchone()
    assert row is not None
    return int(row[0])
