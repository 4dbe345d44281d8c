"""The database schema of a whole tracefin: which packages' migrations, applied by one runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg

from records import db
from records.timescale_store import TelemetryPolicies, set_telemetry_policies
from tracefin.settings import Settings

# Every package that owns tables, in dependency order (a package's tables may reference only
# those of packages before it). Versions are one sequence across all of them.
MIGRATION_PACKAGES = ("records", "ledger", "finance")


def migrate(database_url: str, until: int | None = None) -> list[str]:
    """Apply every pending migration of every package (up to version `until`, if given);
    returns the names applied."""
    return db.migrate(database_url, MIGRATION_PACKAGES, until)


def set_policies(database_url: str, settings: Settings) -> bool:
    """Give the telemetry hypertable the settings' compression and retention; False on plain
    PostgreSQL (nothing to set)."""
    retention = settings.telemetry_retention_days
    policies = TelemetryPolicies(
        compress_after=timedelta(days=settings.telemetry_compress_after_days),
        retain_for=timedelta(days=retention) if retention else None,
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        return set_telemetry_policies(conn, policies)


def load_migrations() -> list[db.Migration]:
    return db.load_migrations(MIGRATION_PACKAGES)


@contextmanager
def scratch_database(admin_url: str, prefix: str = "tracefin_scratch") -> Iterator[str]:
    """A new database migrated to the whole schema, dropped on exit (tests, benches)."""
    with db.scratch_database(admin_url, MIGRATION_PACKAGES, prefix) as url:
        yield url
