"""PostgreSQL adapter: connection pools and the numbered-migration runner."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# Connections as psycopg.connect() and the pools hand them out: rows are plain tuples.
Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK_ID = 0x7472_6163_6566_696E  # "tracefin"
# Serialises building the migrated template scratch databases are copied from.
_TEMPLATE_LOCK_ID = 0x7472_6163_6574_706C  # "tracetpl"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    timescale_sql: str | None


def open_pool(database_url: str, *, min_size: int = 1, max_size: int = 4) -> ConnectionPool:
    """A pool whose connections are checked on checkout, so a restarted server is survived."""
    pool = ConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": False},
        open=False,
    )
    pool.open(wait=True, timeout=30)
    return pool


def set_statement_timeout(conn: Conn, milliseconds: int) -> None:
    """Bound every later statement of `conn`'s session (lock waits included): past it,
    PostgreSQL cancels the statement (psycopg raises QueryCanceled)."""
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(milliseconds),))


def load_migrations(packages: Sequence[str]) -> list[Migration]:
    """The migrations each package ships in its `migrations` folder, in one version order.

    Each package keeps the migrations of the tables it owns; versions are one sequence across
    packages (a database records only the version), so a number may be used once.
    """
    migrations: list[Migration] = []
    seen: dict[int, str] = {}
    for package in packages:
        folder = resources.files(package) / "migrations"
        files = {entry.name: entry for entry in folder.iterdir()}
        for name, entry in sorted(files.items()):
            match = _MIGRATION_NAME.match(name)
            if not match:
                continue
            version = int(match.group(1))
            if version in seen:
                raise ValueError(
                    f"migration {version:04d} is shipped by both {seen[version]} and {package}"
                )
            seen[version] = package
            companion = files.get(name.removesuffix(".sql") + ".timescale.sql")
            migrations.append(
                Migration(
                    version=version,
                    name=match.group(2),
                    sql=entry.read_text(encoding="utf-8"),
                    timescale_sql=companion.read_text(encoding="utf-8") if companion else None,
                )
            )
    return sorted(migrations, key=lambda migration: migration.version)


def timescaledb_available(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def migrate(database_url: str, packages: Sequence[str], until: int | None = None) -> list[str]:
    """Apply pending migrations in one transaction each; returns the names applied. With
    `until`, only those up to that version (tests: a database with data, then the rest).

    Safe to run concurrently from several processes (an advisory lock serialises them) and
    idempotent (applied versions are recorded in `schema_migrations`).
    """
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), timescale boolean NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            use_timescale = timescaledb_available(conn)
            if use_timescale:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            for migration in load_migrations(packages):
                if migration.version in done or (until is not None and migration.version > until):
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    if use_timescale and migration.timescale_sql:
                        conn.execute(migration.timescale_sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, timescale)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, use_timescale),
                    )
                applied.append(f"{migration.version:04d}_{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
        row = conn.execute("SHOW autovacuum").fetchone()
        if row is not None and row[0] != "on":
            # Without statistics the planner keeps plans made for empty tables; the soak showed
            # finance slowing by orders of magnitude as lot tables grew.
            log.warning(
                "autovacuum is off on this PostgreSQL server: tables grow without statistics and"
                " the workers' query plans degrade; turn it on, or ANALYZE regularly"
            )
    return applied


@contextmanager
def scratch_database(
    admin_url: str, packages: Sequence[str], prefix: str = "tracefin_scratch"
) -> Iterator[str]:
    """A new, migrated database on the server of `admin_url`, dropped on exit (tests, benches).

    Copied from a template database migrated once per set of migrations (`migrated_template`):
    a copy takes a fraction of the time running every migration again does. The migration
    runner still runs on the copy, and finds nothing pending."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    template = migrated_template(admin_url, packages) if packages else None
    with psycopg.connect(admin_url, autocommit=True) as conn:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(create)
    try:
        url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
        migrate(url, packages)
        yield url
    finally:
        _drop_database(admin_url, name)


def migrated_template(admin_url: str, packages: Sequence[str]) -> str:
    """The name of a template database holding every migration of `packages`, built on first
    use. Its name carries a digest of the migrations, so a changed or added migration gets a
    template of its own (old ones stay until dropped: `tracefin_template_*`)."""
    digest = hashlib.sha256()
    for migration in load_migrations(packages):
        digest.update(repr(migration).encode())
    name = f"tracefin_template_{digest.hexdigest()[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK_ID,))
        try:
            ready = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", (name,)
            ).fetchone()
            if ready is None:
                _build_template(conn, admin_url, packages, name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK_ID,))
    return name


def _build_template(conn: Conn, admin_url: str, packages: Sequence[str], name: str) -> None:
    """Migrate a database under a temporary name, then make it the template `name`: a template
    is only ever complete (a build that fails leaves nothing behind)."""
    building = f"{name}_building_{os.getpid()}"
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
    try:
        migrate(psycopg.conninfo.make_conninfo(admin_url, dbname=building), packages)
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(building), sql.Identifier(name)
            )
        )
    except BaseException:
        _drop_database(admin_url, building)
        raise
    # Nobody connects to a template: a connection would make every copy of it fail.
    conn.execute(
        sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
            sql.Identifier(name)
        )
    )


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def run_connected(
    database_url: str, stop: threading.Event, work: Callable[[Conn], None], name: str
) -> None:
    """Run `work` on an autocommit connection until `stop` is set.

    Whenever the database is unavailable, wait (1 s doubling to 10 s) and start `work` again
    on a new connection: the long-running workers survive a PostgreSQL restart this way.
    """
    delay = 1.0
    while not stop.is_set():
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                delay = 1.0
                work(conn)
        except psycopg.OperationalError as exc:
            log.warning("%s: database unavailable (%s); retrying in %.0fs", name, exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)
