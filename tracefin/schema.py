"""The database schema of a whole tracefin: which packages' migrations, applied by one runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg

from ledger.rehash import RehashReport, rehash_stored_events
from ledger.rehash_store import Reference
from records import db
from records.timescale_store import TelemetryPolicies, set_telemetry_policies
from tracefin.settings import Settings

# Every package that owns tables, in dependency order (a package's tables may reference only
# those of packages before it). Versions are one sequence across all of them.
MIGRATION_PACKAGES = ("records", "ledger", "finance")

# Every column outside the event store's and the ledger's own tables that holds an event's
# digest and must follow it when a new hash rule re-identifies it (ledger.rehash). The sealed
# finance journal and decision evidence keep the ids they were written with (aliases resolve
# them).
# tests/integration/test_event_rehash.py fails when a column named like one is missing here.
EVENT_REFERENCES = (
    # A declaration follows its event. (Declarations came with rule 2, so rule 1's re-keying
    # finds none; a later rule would also have to re-seal their digests, which name the id.)
    Reference("error_declarations", "event_hash"),
    Reference("finance_dead_letters", "event_hash"),
    Reference("lot_evidence", "event_hash"),
    Reference("lots", "last_inspection_hash"),
    Reference("lots", "latest_event_hash"),
    Reference("receivables", "event_hash"),
    Reference("risk_flags", "cleared_event_hash"),
    Reference("risk_flags", "event_hash"),
)
# Migration that makes the event hash rule a stored fact: from it on, the data step runs.
_HASH_RULE_MIGRATION = 39


def migrate(database_url: str, until: int | None = None) -> list[str]:
    """Apply every pending migration of every package (up to version `until`, if given), then
    the data step: re-identify stored events if the event hash rule changed (ledger.rehash).
    Returns the names applied, and `rehash_events` when the data step re-identified events."""
    applied = db.migrate(database_url, MIGRATION_PACKAGES, until)
    if until is None or until >= _HASH_RULE_MIGRATION:
        report = rehash(database_url)
        if report is not None and report.rekeyed:
            applied.append("rehash_events")
    return applied


def rehash(database_url: str) -> RehashReport | None:
    """The data step alone: one transaction; None when the stored rule is the current one."""
    with psycopg.connect(database_url) as conn, conn.transaction():
        return rehash_stored_events(conn, EVENT_REFERENCES)


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
