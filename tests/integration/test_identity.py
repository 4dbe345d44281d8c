"""Identifier ownership on a real database: GS1 prefixes, sites, authorisations and the rules'
extensions through the CLI and the API; check digits at registration, capture and query."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import psycopg
import pytest

from epcis.authority import Fact
from epcis.identifiers import check_digit
from records import db as records_db
from records import registry_store
from records.db import Conn
from tests.support.api import Api
from tests.support.cli import tracefin
from tests.support.events import make_event
from tests.support.postgres import admin_url
from tracefin.schema import MIGRATION_PACKAGES, load_migrations, migrate
from tracefin.simulate import COMPANY_PREFIX, FACTORY_GLN, gtin_for

pytestmark = pytest.mark.integration


def wrong(key: str) -> str:
    """The key with its check digit off by one."""
    return key[:-1] + str((int(key[-1]) + 1) % 10)


def keyed(body: str) -> str:
    return body + check_digit(body)


def own_prefix() -> str:
    """A prefix no other test holds (the session's database is shared): 10 digits from 8."""
    return "8" + str(secrets.randbelow(10**9)).zfill(9)


def slug(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


def run(database_url: str, *args: str) -> dict[str, object]:
    result = tracefin(database_url, *args)
    assert result.returncode == 0, result.stderr
    printed: dict[str, object] = json.loads(result.stdout)
    return printed


def refused(database_url: str, *args: str) -> str:
    result = tracefin(database_url, *args)
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    return result.stderr


# --- the CLI -------------------------------------------------------------------------------


def test_a_prefix_belongs_to_one_org_and_never_overlaps_another(
    database_url: str, db: Conn
) -> None:
    prefix = own_prefix()
    acme, evil = slug("acme"), slug("evil")
    added = run(database_url, "org", "add", acme, "--role", "manufacturer", "--gs1-prefix", prefix)
    assert added["gs1_prefixes"] == [prefix]
    # Longer (it would take some of acme's keys), shorter (all of them), equal: refused, named.
    message = refused(
        database_url, "org", "add", evil, "--role", "manufacturer", "--gs1-prefix", prefix + "5"
    )
    assert f"{prefix}5 extends {acme}'s prefix {prefix}" in message
    assert registry_store.get_org(db, evil) is None  # refused as a whole
    run(database_url, "org", "add", evil, "--role", "manufacturer")
    assert f"is a prefix of {acme}'s prefix" in refused(
        database_url, "org", "prefix", "add", evil, prefix[:-2]
    )
    assert f"belongs to {acme}" in refused(database_url, "org", "prefix", "add", evil, prefix)
    assert "4 to 12 digits" in refused(database_url, "org", "prefix", "add", evil, "123")
    other = own_prefix()
    assert run(database_url, "org", "prefix", "add", evil, other)["gs1_prefixes"] == [other]
    # Again by its holder: nothing changes.
    assert run(database_url, "org", "prefix", "add", acme, prefix)["gs1_prefixes"] == [prefix]
    parties = registry_store.authority_parties(db)
    assert parties.owner_of(keyed("0" + prefix + "12")) == acme
    assert parties.owner_of(keyed("0" + other + "12")) == evil
    # Roles that need no prefix, and the new ones.
    for role in ("financier", "regulator", "guarantor", "inspector"):
        assert run(database_url, "org", "add", slug(role), "--role", role)["role"] == role


def test_only_the_prefix_holder_registers_its_products(database_url: str, db: Conn) -> None:
    prefix = own_prefix()
    acme, evil = slug("acme"), slug("evil")
    registry_store.add_org(db, acme, "manufacturer", [prefix])
    registry_store.add_org(db, evil, "manufacturer")
    gtin = keyed("0" + prefix + "01")
    product = ("--name", "Dumplings", "--category", "frozen", "--price", "1", "--currency", "CNY")
    stolen = refused(database_url, "product", "add", evil, gtin, *product)
    assert "not_your_prefix" in stolen
    assert "invalid_identifier" in refused(
        database_url, "product", "add", acme, wrong(gtin), *product
    )
    assert run(database_url, "product", "add", acme, gtin, *product)["gtin"] == gtin
    # The holder's product stays the holder's: another org cannot rename it either.
    assert "not_your_prefix" in refused(database_url, "product", "add", evil, gtin, *product)
    assert db.execute("SELECT name FROM products WHERE gtin = %s", (gtin,)).fetchone() == (
        "Dumplings",
    )


def test_sites_by_own_prefix_or_the_operators_grant(database_url: str, db: Conn) -> None:
    prefix = own_prefix()
    acme, shop, bank = slug("acme"), slug("shop"), slug("bank")
    registry_store.add_org(db, acme, "manufacturer", [prefix])
    registry_store.add_org(db, shop, "retailer")
    registry_store.add_org(db, bank, "financier")
    store, outlet = keyed(prefix + "01"), keyed(prefix + "02")
    site = run(
        database_url,
        "site",
        "add",
        acme,
        store,
        "--name",
        "Cold store",
        "--supervised",
        "--city",
        "Ningbo",
    )
    assert site == {
        "gln": store,
        "operator": acme,
        "name": "Cold store",
        "supervised": True,
        "granted": False,
        "city": "Ningbo",
    }
    # Every form of the GLN names the same site; its registrant may rename it (the city stays).
    for form in (f"https://id.gs1.org/414/{store}", f"urn:epc:id:sgln:{prefix}.01.0"):
        renamed = run(database_url, "site", "add", acme, form, "--name", "Store")
        assert (renamed["gln"], renamed["city"]) == (store, "Ningbo")
    assert "invalid_input" in refused(
        database_url, "site", "add", acme, store, "--name", "Store", "--city", ""
    )
    # A supervised site is a warehouse financiers may supervise.
    run(database_url, "warehouse", "supervise", bank, f"https://id.gs1.org/414/{store}")
    # Someone else's GLN: only by the operator's grant.
    assert "not_your_prefix" in refused(database_url, "site", "add", shop, outlet, "--name", "Shop")
    granted = run(database_url, "site", "add", shop, outlet, "--name", "Shop", "--grant")
    assert (granted["operator"], granted["granted"]) == (shop, True)
    assert "site_taken" in refused(
        database_url, "site", "add", acme, outlet, "--name", "Mine", "--grant"
    )
    assert "invalid_identifier" in refused(
        database_url, "site", "add", acme, wrong(store), "--name", "Typo"
    )
    listed = run(database_url, "site", "list", shop)
    assert listed == {"sites": [granted | {"name": "Shop"}]}
    assert registry_store.authority_parties(db).site_operators[outlet] == shop


def test_warehouse_add_stays_an_alias_that_registers_a_supervised_site(
    database_url: str, db: Conn
) -> None:
    prefix = own_prefix()
    operator = slug("wh")
    registry_store.add_org(db, operator, "warehouse")
    gln = keyed(prefix + "07")
    placed = run(database_url, "warehouse", "add", operator, gln, "--name", "Bonded")
    assert placed == {"location": f"https://id.gs1.org/414/{gln}"}
    (site,) = registry_store.list_sites(db, operator)
    assert (site.gln, site.supervised, site.granted) == (gln, True, True)
    assert db.execute(
        "SELECT name FROM warehouses WHERE location = %s", (placed["location"],)
    ).fetchone() == ("Bonded",)


def test_owners_authorise_manufacturers_and_inspectors(database_url: str, db: Conn) -> None:
    prefix = own_prefix()
    owner, maker, inspector, carrier = slug("own"), slug("oem"), slug("qc"), slug("truck")
    registry_store.add_org(db, owner, "manufacturer", [prefix])
    registry_store.add_org(db, maker, "manufacturer")
    registry_store.add_org(db, inspector, "inspector")
    registry_store.add_org(db, carrier, "logistics")
    gtin = keyed("0" + prefix + "03")
    made = run(database_url, "org", "authorise", owner, maker)
    assert made == {
        "authorisations": [{"owner": owner, "agent": maker, "kind": "manufacture", "gtin": None}]
    }
    checked = run(database_url, "org", "authorise", owner, inspector, "--gtin", gtin)
    assert checked["authorisations"] == [
        {"owner": owner, "agent": inspector, "kind": "inspect", "gtin": gtin}
    ]
    assert "only a manufacturer or an inspector" in refused(
        database_url, "org", "authorise", owner, carrier
    )
    other = gtin_for(3)  # in the simulated factory's prefix, not the owner's
    assert "not in" in refused(database_url, "org", "authorise", owner, inspector, "--gtin", other)
    assert "invalid_identifier" in refused(
        database_url, "org", "authorise", owner, inspector, "--gtin", wrong(gtin)
    )
    parties = registry_store.authority_parties(db)
    assert parties.authorised(owner, maker, "manufacture", gtin)
    assert parties.authorised(owner, inspector, "inspect", gtin)
    assert not parties.authorised(owner, inspector, "inspect", keyed("0" + prefix + "04"))


def test_rules_are_data_the_operator_reads_and_extends(database_url: str, db: Conn) -> None:
    step = f"https://example.com/bizstep/moved-{secrets.token_hex(3)}"
    assert run(database_url, "rules", "add", "--biz-step", step, "--fact", "site_custody") == {
        "biz_step": step,
        "fact": "site_custody",
    }
    assert registry_store.rule_extensions(db)[step] is Fact.SITE_CUSTODY
    rows = run(database_url, "rules", "show")["rules"]
    assert isinstance(rows, list)
    assert {row["fact"] for row in rows if row["source"] == "built-in"} == {f.value for f in Fact}
    (mine,) = [row for row in rows if row["biz_steps"] == step]
    assert mine == {
        "fact": "site_custody",
        "biz_steps": step,
        "counts_when_attested_by": "devices of the org that operates the site",
        "source": "operator",
    }
    # A built-in step keeps its rule.
    assert "built-in rule" in refused(
        database_url,
        "rules",
        "add",
        "--biz-step",
        "https://ref.gs1.org/cbv/BizStep-shipping",
        "--fact",
        "making",
    )


# --- the API ---------------------------------------------------------------------------------


def test_products_over_the_api_need_the_prefix_and_a_right_check_digit(world: Api) -> None:
    def product(gtin: str) -> dict[str, str]:
        return {
            "gtin": gtin,
            "name": "Buns",
            "category": "frozen",
            "unit_price": "3.00",
            "currency": "CNY",
        }

    gtin = gtin_for(77)  # maker's prefix, not registered yet
    evil = world.call("POST", "/v1/products", "rival", json=product(gtin))
    assert (evil.status_code, evil.json()["code"]) == (403, "not_your_prefix")
    typo = world.call("POST", "/v1/products", "maker", json=product(wrong(gtin)))
    assert (typo.status_code, typo.json()["code"]) == (422, "invalid_identifier")
    assert world.call("POST", "/v1/products", "maker", json=product(gtin)).status_code == 201


def test_sites_over_the_api_by_the_callers_own_prefix(world: Api) -> None:
    gln = keyed(COMPANY_PREFIX + "00009")
    created = world.call("POST", "/v1/sites", "maker", json={"gln": gln, "name": "Depot"})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "gln": gln,
        "operator": "maker",
        "name": "Depot",
        "supervised": False,
        "granted": False,
        "city": None,
    }
    listed = world.call("GET", "/v1/sites", "maker").json()["sites"]
    assert created.json() in listed
    assert {site["gln"] for site in listed} >= {gln, FACTORY_GLN}
    # The same GLN as a Digital Link: the same site, renamed.
    again = world.call(
        "POST", "/v1/sites", "maker", json={"gln": f"https://id.gs1.org/414/{gln}", "name": "D2"}
    )
    assert (again.status_code, again.json()["name"]) == (201, "D2")
    # Its city, shown beside its name on product pages.
    city = world.call(
        "POST", "/v1/sites", "maker", json={"gln": gln, "name": "D2", "city": "Ningbo"}
    )
    assert (city.status_code, city.json()["city"]) == (201, "Ningbo")
    other = keyed(COMPANY_PREFIX + "00010")
    evil = world.call("POST", "/v1/sites", "rival", json={"gln": other, "name": "Mine"})
    assert (evil.status_code, evil.json()["code"]) == (403, "not_your_prefix")
    typo = world.call("POST", "/v1/sites", "maker", json={"gln": wrong(other), "name": "x"})
    assert (typo.status_code, typo.json()["code"]) == (422, "invalid_identifier")
    # A GLN of maker's operated by rival, by the operator's grant: maker cannot take it over.
    registry_store.add_site(world.conn, "rival", other, "Leased", grant=True)
    taken = world.call("POST", "/v1/sites", "maker", json={"gln": other, "name": "Mine"})
    assert (taken.status_code, taken.json()["code"]) == (409, "site_taken")
    assert world.call("POST", "/v1/sites", "bank", json={"gln": gln, "name": "x"}).status_code == (
        403
    )


def test_capture_and_query_refuse_a_wrong_check_digit(world: Api) -> None:
    gtin = gtin_for(5)
    bad_item = make_event(epcList=[f"https://id.gs1.org/01/{wrong(gtin)}/21/1"])
    bad_place = make_event(bizLocation={"id": f"https://id.gs1.org/414/{wrong(FACTORY_GLN)}"})
    for event in (bad_item, bad_place):
        answer = world.call("POST", "/v1/capture", "maker", json=event)
        assert (answer.status_code, answer.json()["code"]) == (422, "no_event_accepted")
        assert [r["reason"] for r in answer.json()["rejected"]] == ["invalid_identifier"]
    for name, value in (
        ("MATCH_epc", f"https://id.gs1.org/01/{wrong(gtin)}/21/1"),
        ("EQ_bizLocation", f"https://id.gs1.org/414/{wrong(FACTORY_GLN)}"),
    ):
        query = world.call("GET", "/v1/events", "maker", params={name: value})
        assert (query.status_code, query.json()["code"]) == (400, "invalid_identifier")
        assert "wrong check digit" in query.json()["detail"]
    factory = f"urn:epc:id:sgln:{COMPANY_PREFIX}.00000.0"
    right = world.call("GET", "/v1/events", "maker", params={"EQ_bizLocation": factory})
    assert right.status_code == 200


# --- the migration ---------------------------------------------------------------------------


@pytest.fixture
def before_sites() -> Iterator[str]:
    """A database migrated up to 0008 (before identity), as the runner would have done."""
    with records_db.scratch_database(admin_url(), (), "tracefin_sites") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            for migration in load_migrations():
                if migration.version > 8:
                    break
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, timescale)"
                    " VALUES (%s, %s, false)",
                    (migration.version, migration.name),
                )
        yield url


def test_migration_makes_every_plain_gln_warehouse_a_site(before_sites: str) -> None:
    assert MIGRATION_PACKAGES  # the runner's packages: records, ledger, finance
    with psycopg.connect(before_sites, autocommit=True) as conn:
        operator = conn.execute(
            "INSERT INTO orgs (slug, role) VALUES ('wh', 'warehouse') RETURNING id"
        ).fetchone()
        bank = conn.execute(
            "INSERT INTO orgs (slug, role) VALUES ('bank', 'financier') RETURNING id"
        ).fetchone()
        assert operator is not None
        assert bank is not None
        for location, name in (
            ("https://id.gs1.org/414/0614141000012", "Supervised"),
            ("https://id.gs1.org/414/0614141000029", "Plain"),
            ("https://id.gs1.org/414/0614141000012/254/7", "Bay 7"),  # a sub-location: no site
        ):
            conn.execute(
                "INSERT INTO warehouses (location, operator_org_id, name) VALUES (%s, %s, %s)",
                (location, operator[0], name),
            )
        conn.execute(
            "INSERT INTO supervised_warehouses (financier_org_id, location)"
            " VALUES (%s, 'https://id.gs1.org/414/0614141000012')",
            (bank[0],),
        )
    applied = migrate(before_sites)
    assert {"0009_identity", "0011_sites_from_warehouses"} <= set(applied)
    with psycopg.connect(before_sites, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT gln, operator_org_id, name, supervised, granted FROM sites ORDER BY gln"
        ).fetchall()
        assert rows == [
            ("0614141000012", operator[0], "Supervised", True, True),
            ("0614141000029", operator[0], "Plain", False, True),
        ]
        assert registry_store.authority_parties(conn).site_operators == {
            "0614141000012": "wh",
            "0614141000029": "wh",
        }
