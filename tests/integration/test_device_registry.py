"""The device registry from the command line, and migrations 0010/0012 over a database of 0009."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from epcis.capture import DeviceKey, capture
from epcis.identifiers import check_digit
from epcis.signatures import address_of
from records import attestation_store, event_store, registry_store
from records.db import Conn
from records.event_store import EventToStore
from tests.support.cli import tracefin
from tests.support.events import make_event
from tests.support.postgres import admin_url
from tracefin.schema import load_migrations, migrate

pytestmark = pytest.mark.integration


def random_gln() -> str:
    body = "9" + "".join(secrets.choice("0123456789") for _ in range(11))
    return body + check_digit(body)


def new_address() -> str:
    return address_of(secrets.token_bytes(32))


def test_an_address_belongs_to_one_device_across_orgs(
    database_url: str, db: Conn, org: str
) -> None:
    other = f"other-{secrets.token_hex(3)}"
    registry_store.add_org(db, other, "warehouse")
    address = new_address()
    first = tracefin(database_url, "device", "add", org, "scale-1", "--address", address)
    assert first.returncode == 0, first.stderr
    for owner, device in ((other, "scale-9"), (org, "scale-2")):
        again = tracefin(database_url, "device", "add", owner, device, "--address", address)
        assert again.returncode == 2
        assert "address_in_use" in again.stderr, again.stderr
    assert registry_store.find_devices(db, [(other, "scale-9"), (org, "scale-2")]) == {}


def test_rotation_and_revocation_from_the_command_line(
    database_url: str, db: Conn, org: str
) -> None:
    old, new = new_address(), new_address()
    assert tracefin(database_url, "device", "add", org, "gate-1", "--address", old).returncode == 0
    rotated = tracefin(database_url, "device", "add", org, "gate-1", "--address", new)
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["address"] == new
    device = registry_store.find_devices(db, [(org, "gate-1")])[(org, "gate-1")]
    assert device.address == new
    assert [address for address, _ in device.retired_keys] == [old]
    # A key once revoked is not taken back, by this device or any other.
    back = tracefin(database_url, "device", "add", org, "gate-1", "--address", old)
    assert (back.returncode, "address_in_use" in back.stderr) == (2, True), back.stderr

    revoked = tracefin(database_url, "device", "revoke", org, "gate-1")
    assert revoked.returncode == 0, revoked.stderr
    printed = json.loads(revoked.stdout)
    assert (printed["org"], printed["device"]) == (org, "gate-1")
    again = tracefin(database_url, "device", "revoke", org, "gate-1")
    assert json.loads(again.stdout)["revoked_at"] == printed["revoked_at"]  # the first time
    device = registry_store.find_devices(db, [(org, "gate-1")])[(org, "gate-1")]
    assert device.revoked_at is not None
    assert {address for address, _ in device.retired_keys} == {old}
    live = db.execute(
        "SELECT count(*) FROM device_keys k JOIN orgs o ON o.id = k.org_id"
        " WHERE o.slug = %s AND k.device_id = 'gate-1' AND k.revoked_at IS NULL",
        (org,),
    ).fetchone()
    assert live == (0,)
    unknown = tracefin(database_url, "device", "revoke", org, "no-such-device")
    assert unknown.returncode == 2
    assert "no device" in unknown.stderr


def test_a_device_is_bound_to_sites_its_org_operates_in_any_gln_form(
    database_url: str, db: Conn, org: str
) -> None:
    own, theirs = random_gln(), random_gln()
    registry_store.add_site(db, org, own, "Cold store", grant=True)
    other = f"shop-{secrets.token_hex(3)}"
    registry_store.add_org(db, other, "retailer")
    registry_store.add_site(db, other, theirs, "Shop", grant=True)
    urn = f"urn:epc:id:sgln:{own[:7]}.{own[7:12]}.0"
    for form, device in ((own, "probe-1"), (f"https://id.gs1.org/414/{own}", "probe-2")):
        added = tracefin(
            database_url, "device", "add", org, device, "--unsigned", "--site", form, "--site", urn
        )
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["sites"] == [own, own]
    bound = db.execute(
        "SELECT ds.device_id, ds.gln FROM device_sites ds JOIN orgs o ON o.id = ds.org_id"
        " WHERE o.slug = %s ORDER BY ds.device_id",
        (org,),
    ).fetchall()
    assert bound == [("probe-1", own), ("probe-2", own)]
    parties = registry_store.authority_parties(db)
    assert parties.device_sites[(org, "probe-1")] == frozenset({own})

    foreign = tracefin(
        database_url, "device", "add", org, "probe-3", "--unsigned", "--site", theirs
    )
    assert (foreign.returncode, "not_site_operator" in foreign.stderr) == (2, True), foreign.stderr
    wrong = own[:-1] + str((int(own[-1]) + 1) % 10)
    bad = tracefin(database_url, "device", "add", org, "probe-4", "--unsigned", "--site", wrong)
    assert (bad.returncode, "invalid_identifier" in bad.stderr) == (2, True), bad.stderr
    assert registry_store.find_devices(db, [(org, "probe-3"), (org, "probe-4")]) == {}


# --- migrations 0010 and 0012 over a database holding what 0009 allowed ----------------------


@pytest.fixture
def database_at_0009() -> Iterator[str]:
    """A new database migrated up to 0009 only (later versions marked done, then unmarked)."""
    name = f"tracefin_devices_{secrets.token_hex(4)}"
    admin = admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    later = [m.version for m in load_migrations() if m.version >= 10]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), timescale boolean NOT NULL)"
            )
            conn.execute(
                "INSERT INTO schema_migrations (version, name, timescale)"
                " SELECT v, 'later', false FROM unnest(%s::int[]) AS v",
                (later,),
            )
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM schema_migrations WHERE name = 'later'")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_migrations_backfill_attestations_keys_and_site_bindings(database_at_0009: str) -> None:
    shared = new_address()
    gln = random_gln()
    with psycopg.connect(database_at_0009, autocommit=True) as conn:
        acme, evil = (
            conn.execute(
                "INSERT INTO orgs (slug, role) VALUES (%s, 'manufacturer') RETURNING id", (slug,)
            ).fetchone()[0]  # type: ignore[index]
            for slug in ("acme", "evil")
        )
        # Before addresses were unique, evil registered acme's device address a moment later.
        earlier = datetime.now(UTC) - timedelta(days=2)
        conn.execute(
            "INSERT INTO devices (org_id, device_id, address, unsigned, created_at) VALUES"
            " (%s, 'line-1', %s, false, %s), (%s, 'copycat', %s, false, %s),"
            " (%s, 'plc-1', NULL, true, %s)",
            (acme, shared, earlier, evil, shared, earlier + timedelta(hours=1), acme, earlier),
        )
        location = f"https://id.gs1.org/414/{gln}"
        conn.execute(
            "INSERT INTO warehouses (location, operator_org_id, name) VALUES (%s, %s, 'Store')",
            (location, acme),
        )
        conn.execute(
            "INSERT INTO warehouse_sensors (org_id, device_id, location) VALUES (%s, 'plc-1', %s)",
            (acme, location),
        )
        now = datetime.now(UTC)
        rows = []
        for topic, device_id, event in (
            ("tf/acme/plc-1/events", "plc-1", make_event()),
            ("http:/v1/capture", "http-capture", make_event()),
        ):
            key = DeviceKey(acme, "acme", device_id, None)
            result = capture(
                json.dumps(event).encode(),
                key,
                now=now,
                max_payload_bytes=1 << 20,
                max_future_skew=timedelta(minutes=5),
            )
            rows += [EventToStore(a, acme, device_id, topic, now) for a in result.accepted]
        with conn.transaction():
            # Today's store also writes the captured form (`as_captured`, migration 0044),
            # which a 0009 database lacks: lent for the insert, gone before migrating.
            conn.execute("ALTER TABLE events ADD COLUMN as_captured jsonb")
            event_store.insert_events(conn, rows)
            conn.execute("ALTER TABLE events DROP COLUMN as_captured")

    assert "0010_devices_attestations" in migrate(database_at_0009)

    with psycopg.connect(database_at_0009, autocommit=True) as conn:
        digests = [row.accepted.digest for row in rows]
        found = attestation_store.attestations_for(conn, digests)
        assert [(a.org, a.device, a.channel, a.signed) for a in found[digests[0]]] == [
            ("acme", "plc-1", "mqtt", False)
        ]
        assert [(a.org, a.device, a.channel, a.signed) for a in found[digests[1]]] == [
            ("acme", None, "http", False)
        ]
        devices = registry_store.find_devices(conn, [("acme", "line-1"), ("evil", "copycat")])
        assert devices[("acme", "line-1")].revoked_at is None
        assert devices[("evil", "copycat")].revoked_at is not None  # the later copy
        keys = conn.execute(
            "SELECT device_id, revoked_at IS NOT NULL FROM device_keys ORDER BY device_id"
        ).fetchall()
        assert keys == [("copycat", True), ("line-1", False)]
        assert conn.execute("SELECT org_id, device_id, gln FROM device_sites").fetchall() == [
            (acme, "plc-1", gln)
        ]
        # From now on the address is taken: evil cannot register it again, even after rotating.
        with pytest.raises(registry_store.AddressInUse):
            registry_store.add_device(conn, "evil", "copycat-2", shared)
