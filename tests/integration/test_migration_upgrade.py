"""A database migrated by the single-folder runner of commit 06bd7dc upgrades without loss.

Until 06bd7dc every migration lived in `ledger/migrations` and one runner applied them; now each
package keeps its own and `tracefin.schema` applies them all. A database records only version
numbers, so the versions must be unchanged and no migration may be applied twice.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pytest
from psycopg import sql

from finance import repayments
from finance.store import credit
from records import db, registry_store
from records.db import Conn
from records.event_store import DeadLetter, insert_dead_letters
from tests.support.postgres import admin_url
from tracefin.schema import load_migrations, migrate, scratch_database

pytestmark = pytest.mark.integration

# sha256 of each migration file as commit 06bd7dc shipped it
# (`git show 06bd7dc:ledger/migrations/NAME | sha256sum`).
SHIPPED_AT_06BD7DC = {
    "0001_registry.sql": "3a79f868dbe8f12fce7191834a11781c97647e18dea1ad7510027cdfbf0288fb",
    "0002_events.sql": "f4a19ff0842190b56f50efbf85fc6651773b9d5e5e23a9059d2b4b47c852d881",
    "0002_events.timescale.sql": "1a014ab5448d2ee6409b2cfd8798e000ed82c01f1b0390fd0675d10f0a1803f8",
    "0003_anchoring.sql": "d8519bd697924ed3e8d3015f3b3c3b8ee5cd89bce88b93e3cd7c6ac35450da8b",
    "0004_finance.sql": "d0cc4d8566667f9bbfd825fdbf7cafeffb6cae4ef28542b28518386cf351c124",
    "0005_backfill_log_queue.sql": (
        "0135da41ea6a498648219d29ab0362ec01a0f65324563b0eebfe070ce4d1af60"
    ),
    "0006_page_changes.sql": "a84021eca73df928febc4402ac2405ac6276d4124c84bb8e670cdfee96d3ae1c",
    "0007_finance_event_time.sql": (
        "9c8a342d5aeab9b77f79192698ec5058254ad567fc81908ac889eb8796d221b5"
    ),
    "0008_journal_seal.sql": "f8bb2cc109bdb68d97f5c07544b42f55d0e650c0bf33a6ff6e79147909f6ecbd",
}

# What a schema is made of, in a form two databases can be compared by.
SCHEMA_QUERIES = {
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default"
    " FROM information_schema.columns WHERE table_schema = 'public'",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
    " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    "triggers": "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal",
    "functions": "SELECT proname, md5(prosrc) FROM pg_proc"
    " WHERE pronamespace = 'public'::regnamespace",
    "sequences": "SELECT sequence_name FROM information_schema.sequences"
    " WHERE sequence_schema = 'public'",
}


def _schema(conn: Conn) -> dict[str, list[tuple[object, ...]]]:
    return {
        part: sorted(conn.execute(query).fetchall(), key=repr)
        for part, query in SCHEMA_QUERIES.items()
    }


def _table_columns(conn: Conn) -> dict[str, list[str]]:
    """Every table's columns, in order."""
    columns: dict[str, list[str]] = {}
    for table, column in conn.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN pg_tables t ON t.tablename = c.table_name AND t.schemaname = c.table_schema"
        " WHERE c.table_schema = 'public' ORDER BY c.table_name, c.ordinal_position"
    ):
        columns.setdefault(table, []).append(column)
    return columns


def _table_digests(conn: Conn, columns: dict[str, list[str]]) -> dict[str, tuple[int, str | None]]:
    """Row count and an order-independent digest of every table's content in `columns` (the
    columns a table had before an upgrade: one a later migration adds is not a change)."""
    digests = {}
    for table, names in columns.items():
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text))"
                " FROM (SELECT {} FROM {}) t"
            ).format(sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(table))
        ).fetchone()
        assert row is not None
        digests[table] = (row[0], row[1])
    return digests


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """A database with no tables of tracefin's yet (the runner given no packages)."""
    with db.scratch_database(admin_url(), (), "tracefin_upgrade") as url:
        yield url


def _migrate_as_06bd7dc(conn: Conn, *, through: int = 8) -> None:
    """What 06bd7dc's runner did on plain PostgreSQL: each file in order, one transaction each
    (its migrations were those through 0008; `through` stops at another to stand for a later
    release)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now(), timescale boolean NOT NULL)"
    )
    for migration in load_migrations():
        if migration.version > through:
            continue
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, timescale) VALUES (%s, %s, false)",
                (migration.version, migration.name),
            )


def test_the_migrations_of_06bd7dc_are_shipped_unchanged_with_their_versions() -> None:
    shipped: dict[str, str] = {}
    for migration in load_migrations():
        if migration.version > 8:
            continue
        stem = f"{migration.version:04d}_{migration.name}"
        shipped[f"{stem}.sql"] = hashlib.sha256(migration.sql.encode()).hexdigest()
        if migration.timescale_sql is not None:
            shipped[f"{stem}.timescale.sql"] = hashlib.sha256(
                migration.timescale_sql.encode()
            ).hexdigest()
    assert shipped == SHIPPED_AT_06BD7DC


def _old_org(conn: Conn, slug: str, role: str) -> registry_store.Org:
    """An org with one API key, as the code before people (0033) added it: today's add_org
    also writes its user, which such a database has no table for."""
    row = conn.execute(
        "INSERT INTO orgs (slug, role) VALUES (%s, %s) RETURNING id, slug, role", (slug, role)
    ).fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO api_keys (org_id, key_prefix, key_hash) VALUES (%s, 'tf_old00', %s)",
        (row[0], secrets.token_bytes(32)),
    )
    return registry_store.Org(*row)


def test_a_database_migrated_by_06bd7dc_upgrades_without_loss(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        _migrate_as_06bd7dc(conn)
        org = _old_org(conn, "acme-upgrade", "manufacturer")
        registry_store.add_device(conn, org.slug, "line-1", None)
        insert_dead_letters(
            conn,
            [
                DeadLetter(
                    received_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                    topic="tf/acme-upgrade/line-1/events",
                    payload=b"{not json",
                    item_index=0,
                    reason="not_json",
                    detail="kept across the upgrade",
                )
            ],
        )
        columns = _table_columns(conn)
        before = _table_digests(conn, columns)
        assert before["orgs"][0] == 1
        assert before["dead_letters"][0] == 1

    applied = migrate(empty_database_url)

    newer = [f"{m.version:04d}_{m.name}" for m in load_migrations() if m.version > 8]
    assert applied == newer  # nothing of 06bd7dc's is applied a second time
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        after = _table_digests(conn, columns)
        for table, content in before.items():
            if table != "schema_migrations":
                assert after[table] == content, f"{table} changed in the upgrade"
        # 0033: the org's key became its user admin's, who has every role.
        owners = conn.execute(
            "SELECT u.name, u.roles, o.four_eyes FROM api_keys k JOIN users u ON u.id = k.user_id"
            " JOIN orgs o ON o.id = k.org_id"
        ).fetchall()
        assert owners == [("admin", ["maker", "checker", "viewer"], False)]
        upgraded = _schema(conn)
    with (
        scratch_database(admin_url(), "tracefin_upgrade_fresh") as fresh_url,
        psycopg.connect(fresh_url, autocommit=True) as conn,
    ):
        assert upgraded == _schema(conn)
    assert migrate(empty_database_url) == []


def test_loans_and_repayments_from_before_loan_economics_keep_their_money(
    empty_database_url: str,
) -> None:
    """0028 gives the loans drawn before it the terms they had (none: interest-free, bullet at a
    year) and turns each earlier allocation of a repayment into a payment of principal."""
    drawn_at = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    repaid_at = datetime(2026, 4, 2, 1, 15, tzinfo=UTC)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        _migrate_as_06bd7dc(conn, through=27)
        bank = _old_org(conn, "bank-upgrade", "financier")
        maker = _old_org(conn, "maker-upgrade", "manufacturer")
        lot = "https://id.gs1.org/01/09506000134352/10/UP1"
        conn.execute(
            "INSERT INTO lots (lot_uri, gtin, lot) VALUES (%s, '09506000134352', 'UP1')", (lot,)
        )
        [(line,)] = conn.execute(
            "INSERT INTO credit_lines (financier_org_id, borrower_org_id, currency, limit_minor,"
            " drawn_minor) VALUES (%s, %s, 'CNY', 100000, 700) RETURNING id",
            (bank.id, maker.id),
        ).fetchall()
        conn.execute(
            "INSERT INTO line_movements (line_id, kind, amount_minor, at)"
            " VALUES (%s, 'drawdown', 1000, %s)",
            (line, drawn_at),
        )
        [(repayment,)] = conn.execute(
            "INSERT INTO line_movements (line_id, kind, amount_minor, at)"
            " VALUES (%s, 'repayment', 300, %s) RETURNING id",
            (line, repaid_at),
        ).fetchall()
        [(loan_id,)] = conn.execute(
            "INSERT INTO loans (line_id, lot_uri, principal_minor, outstanding_minor, currency,"
            " drawn_at) VALUES (%s, %s, 1000, 700, 'CNY', %s) RETURNING id",
            (line, lot, drawn_at),
        ).fetchall()
        conn.execute(
            "INSERT INTO loan_repayments (movement_id, loan_id, amount_minor) VALUES (%s, %s, 300)",
            (repayment, loan_id),
        )

    assert migrate(empty_database_url)[0].startswith("0028_")

    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        loan = credit.get_loan(conn, loan_id)
        assert loan is not None
        assert (loan.drawn_on, loan.outstanding_minor) == (date(2026, 3, 1), 700)  # UTC days
        assert loans_terms(loan) == repayments.DEFAULT_TERMS
        [payment] = credit.payments_of_loan(conn, loan_id)
        assert (payment.movement_id, payment.paid_on, payment.source) == (
            repayment,
            date(2026, 4, 2),
            "borrower",
        )
        assert (payment.amount_minor, payment.principal_minor, payment.interest_minor) == (
            300,
            300,
            0,
        )
        assert repayments.disagreements(loan, [payment]) == []
        stated = repayments.loan_statement(conn, loan, date(2026, 6, 1))
        assert (stated.outstanding_minor, stated.status.value) == (700, "current")
        assert conn.execute("SELECT to_regclass('loan_repayments')").fetchone() == (None,)


def loans_terms(loan: credit.Loan) -> credit.StoredTerms:
    return credit.StoredTerms(
        annual_rate=loan.annual_rate,
        day_count=loan.day_count,
        schedule_kind=loan.schedule_kind,
        instalment_count=loan.instalment_count,
        fee_rate=loan.fee_rate,
        tenor_days=loan.tenor_days,
        grace_days=loan.grace_days,
        penalty_rate=loan.penalty_rate,
        default_after_days=loan.default_after_days,
    )


LOCATION_INDEXES = ("events_biz_location_seq_idx", "events_read_point_seq_idx")


def _index_oids(conn: Conn) -> dict[str, int]:
    return {
        name: oid
        for name, oid in conn.execute(
            "SELECT relname, oid::int FROM pg_class WHERE relname = ANY(%s)",
            (["events_biz_location_idx", *LOCATION_INDEXES],),
        )
    }


def _migrate_until_46(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if db.timescaledb_available(conn):  # events would be a hypertable: no CONCURRENTLY
            pytest.skip("CREATE INDEX CONCURRENTLY does not apply to a TimescaleDB hypertable")
    migrate(url, until=46)


def test_location_indexes_built_concurrently_beforehand_are_kept(empty_database_url: str) -> None:
    """0047 finds the indexes an operator built with CREATE INDEX CONCURRENTLY (no write lock
    on a large events table) and only drops the one they replace (docs/operations.md)."""
    _migrate_until_46(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE INDEX CONCURRENTLY events_biz_location_seq_idx"
            " ON events (biz_location, ingest_seq)"
        )
        conn.execute(
            "CREATE INDEX CONCURRENTLY events_read_point_seq_idx ON events (read_point, ingest_seq)"
        )
        built = _index_oids(conn)
    assert built.keys() == {"events_biz_location_idx", *LOCATION_INDEXES}
    assert migrate(empty_database_url)[0] == "0047_location_indexes"
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        after = _index_oids(conn)
    assert after == {name: built[name] for name in LOCATION_INDEXES}  # the same, not rebuilt


_BUILD = "CREATE INDEX CONCURRENTLY events_read_point_seq_idx ON events "


@pytest.mark.parametrize(
    ("built", "invalid"),
    [
        (_BUILD + "(read_point, ingest_seq)", True),
        (_BUILD + "(read_point)", False),
        (_BUILD + "(read_point, ingest_seq) WHERE read_point IS NOT NULL", False),
    ],
    ids=["failed build", "other columns", "partial"],
)
def test_a_prebuilt_index_that_is_invalid_or_another_stops_the_migration(
    empty_database_url: str, built: str, invalid: bool
) -> None:
    """IF NOT EXISTS alone would keep an index of that name whose concurrent build failed (or
    is still running: invalid, never used by a query) or that is some other index; 0047
    refuses it by name and leaves the schema as it was."""
    _migrate_until_46(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(built)
        if invalid:  # what a failed CONCURRENTLY build leaves (the server's own flag, by hand)
            conn.execute(
                "UPDATE pg_index SET indisvalid = false"
                " WHERE indexrelid = 'events_read_point_seq_idx'::regclass"
            )
        before = _index_oids(conn)
    with pytest.raises(psycopg.errors.RaiseException, match="events_read_point_seq_idx: CREATE"):
        migrate(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        assert _index_oids(conn) == before
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (46,)
