"""SQL of invalidated page tokens (EPCIS REST binding: DELETE /nextPageToken/{token})."""

from __future__ import annotations

from records.db import Conn


def revoke(conn: Conn, org_id: int, token: str) -> None:
    """Invalidate `token` for the organisation (again: nothing changes)."""
    conn.execute(
        "INSERT INTO page_token_revocations (org_id, token) VALUES (%s, %s)"
        " ON CONFLICT (org_id, token) DO NOTHING",
        (org_id, token),
    )


def is_revoked(conn: Conn, org_id: int, token: str) -> bool:
    """Whether the organisation invalidated `token`."""
    row = conn.execute(
        "SELECT 1 FROM page_token_revocations WHERE org_id = %s AND token = %s",
        (org_id, token),
    ).fetchone()
    return row is not None
