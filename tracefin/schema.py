"""The database schema of a whole tracefin: which packages' migrations, applied by one runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from records import db

# Every package that owns tables, in dependency order (a package's tables may reference only
# those of packages before it). Versions are one sequence across all of them.
MIGRATION_PACKAGES = ("records", "ledger", "finance")


def migrate(database_url: str, until: int | None = None) -> list[str]:
    """Apply every pending migration of every package (up to version `until`, if given);
    returns the names applied."""
    return db.migrate(database_url, MIGRATION_PACKAGES, until)


def load_migrations() -> list[db.Migration]:
    return db.load_migrations(MIGRATION_PACKAGES)


@contextmanager
def scratch_database(admin_url: str, prefix: str = "tracefin_scratch") -> Iterator[str]:
    """A new database migrated to the whole schema, dropped on exit (tests, benches)."""
    with db.scratch_database(admin_url, MIGRATION_PACKAGES, prefix) as url:
        yield url
