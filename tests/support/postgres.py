"""The PostgreSQL server the tests create their scratch databases on (or a skip without one)."""

from __future__ import annotations

import os

import psycopg
import pytest

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    """TRACEFIN_TEST_DATABASE_URL or the local server; skips the test when neither answers."""
    url = os.environ.get("TRACEFIN_TEST_DATABASE_URL", LOCAL_POSTGRES)
    try:
        with psycopg.connect(url, connect_timeout=3):
            return url
    except psycopg.OperationalError as exc:
        pytest.skip(
            f"PostgreSQL not reachable at {url} ({str(exc).strip()}); start it "
            "(`make services`) or set TRACEFIN_TEST_DATABASE_URL"
        )
