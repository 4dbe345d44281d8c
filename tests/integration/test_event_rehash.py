"""Events stored and anchored under hash rule 1, re-identified by the migration (issue 16 item 5):
the proofs on chain still verify, and each event is found by its old id and its new one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import orjson
import psycopg
import pytest

from epcis.event_hash import (
    HASH_RULE_1,
    event_hash_digest,
    hash_context,
    hash_id_from_digest,
)
from finance import service
from finance.worker import FinanceConfig, FinanceWorker
from ingest.capture import CaptureBatch, Origin
from ledger import rehash_store
from ledger.anchoring import anchor_everything
from ledger.audit import audit
from ledger.bundle import TrustedAnchor
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from ledger.proofs import build_bundle
from ledger.rehash import OWN_REFERENCES
from ledger.verify import verify_bundle
from records import registry_store
from records.db import Conn
from tests.support.api import SeededWorld, serve
from tests.support.cli import run_audit_cli
from tests.support.events import store_events
from tests.support.world import GTIN, JOURNAL, WAREHOUSE
from tracefin.schema import EVENT_REFERENCES, migrate, rehash
from tracefin.settings import DEVNET_PRIVATE_KEY

pytestmark = pytest.mark.integration


def _as_stored_under_rule_1(conn: Conn) -> dict[bytes, bytes]:
    """Put the stored events back as tracefin stored them before the rule changed: keyed (with
    their attestations and queued log entries) by their rule-1 ids. Returns new id -> old id of
    those that differ."""
    changed: dict[bytes, bytes] = {}
    rows = conn.execute("SELECT event_hash, event::text, context::text FROM events").fetchall()
    for digest, event, context in rows:
        old_rule = hash_context(orjson.loads(context) if context else None, rule=HASH_RULE_1)
        old = event_hash_digest(orjson.loads(event), old_rule)
        if old != bytes(digest):
            changed[bytes(digest)] = old
    with conn.transaction():
        for new, old in changed.items():
            for table in ("events", "attestations", "log_queue"):
                conn.execute(
                    f"UPDATE {table} SET event_hash = %s WHERE event_hash = %s",
                    (old, new),
                )
        conn.execute("UPDATE event_hash_rule SET rule = 1")
    return changed


def test_anchored_proofs_survive_the_rule_change_and_both_ids_resolve(
    fresh_database_url: str, chain_rpc_url: str
) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        keys = {"regulator": registry_store.add_org(conn, "regulator", "regulator")[1]}
        digests = store_events(conn, 14, "maker")
        service.add_product(conn, JOURNAL, "maker", GTIN, "Frozen dumplings", "frozen", "1", "CNY")
        service.add_warehouse(conn, JOURNAL, "maker", WAREHOUSE, "Cold store")
        changed = _as_stored_under_rule_1(conn)
        # The simulator's commissioning names its lot as `cbvmda:lotNumber` without declaring
        # `cbvmda`: rule 1 expanded it, rule 2 (as the GS1 reference) does not.
        assert 0 < len(changed) < len(digests)
        deployment = ensure_deployment(conn, connect(chain_rpc_url), DEVNET_PRIVATE_KEY).deployment
        chain = Chain(connect(chain_rpc_url), deployment.anchor_address, None, DEVNET_PRIVATE_KEY)
        assert anchor_everything(conn, chain, deployment.id) == len(digests)
        FinanceWorker("unused", FinanceConfig(), JOURNAL).apply_next_chunk(conn)
        evidence_before = conn.execute("SELECT count(*) FROM lot_evidence").fetchone()
        assert evidence_before is not None
        assert evidence_before[0] > 0
        trusted = [TrustedAnchor.of(deployment.chain_id, deployment.anchor_address)]
        w3 = connect(chain_rpc_url)
        before = {new: build_bundle(conn, old) for new, old in changed.items()}
        assert all(b is not None and b.status == "anchored" for b in before.values())

    assert migrate(fresh_database_url) == ["rehash_events"]
    assert migrate(fresh_database_url) == []  # done once

    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        for new, old in changed.items():
            stored = conn.execute(
                "SELECT count(*) FILTER (WHERE event_hash = %s),"
                " count(*) FILTER (WHERE event_hash = %s) FROM events",
                (new, old),
            ).fetchone()
            assert stored == (1, 0)
            for asked in (old, new):
                bundle = build_bundle(conn, asked)
                assert bundle is not None
                assert bundle.digest == old  # the leaf on chain was made from the old id
                assert bundle.current == new
                assert bundle.to_json()["current_event_hash"] == hash_id_from_digest(new)
                assert verify_bundle(bundle.to_json(), w3, trusted).valid
            previous = before[new]
            assert previous is not None
            assert bundle.inclusion == previous.inclusion  # the same proof as before
        # Events the rule did not change: bundles as ever, with no alias.
        unchanged = [d for d in digests if d not in changed]
        bundle = build_bundle(conn, unchanged[0])
        assert bundle is not None
        assert (bundle.digest, bundle.current) == (unchanged[0], None)
        assert verify_bundle(bundle.to_json(), w3, trusted).valid
        # Every reference follows the event; no old id is left but in the aliases and the log.
        olds = list(changed.values())
        for reference in (*OWN_REFERENCES, *EVENT_REFERENCES):
            left = conn.execute(
                f"SELECT count(*) FROM {reference.table} WHERE {reference.column} = ANY(%s)",
                (olds,),
            ).fetchone()
            assert left == (0,), reference
        kept = conn.execute(
            "SELECT count(*) FROM log_entries WHERE leaf_hash = ANY(%s)", (olds,)
        ).fetchone()
        assert kept == (len(olds),)
        report = audit(conn, w3)
        assert report.clean, report.findings
        assert report.events_checked == len(digests)
    printed = run_audit_cli(fresh_database_url, chain_rpc_url)
    assert json.loads(printed.stdout)["clean"], printed.stdout

    world = SeededWorld(fresh_database_url, chain_rpc_url, keys, digests)
    with serve(world, public_rate_per_minute=10_000) as api:
        new, old = next(iter(changed.items()))
        for asked in (old, new):
            ni = quote(hash_id_from_digest(asked), safe="")
            proof = api.get(f"/v1/proofs/{ni}")
            assert proof.status_code == 200, proof.text
            assert proof.json()["event_hash"] == hash_id_from_digest(old)
            assert proof.json()["current_event_hash"] == hash_id_from_digest(new)
            found = api.get(f"/epcis/events/{ni}", "regulator")
            assert found.status_code == 200, found.text
            [event] = found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            assert event["type"] == "ObjectEvent"
        verdict = api.client.post("/v1/verify", json=api.get(f"/v1/proofs/{ni}").json())
        assert verdict.json() == {"valid": True, "reasons": []}


def _capture(conn: Conn, batch: CaptureBatch, org: str, payload: dict[str, object]) -> str:
    device = registry_store.find_devices(conn, [(org, "http-1")])[(org, "http-1")]
    result = batch.capture(
        Origin(f"tf/{org}/http-1/events", datetime.now(UTC), orjson.dumps(payload)),
        device,
        max_payload_bytes=256 * 1024,
        max_future_skew=timedelta(minutes=10),
    )
    assert not result.refused, result.refused
    with conn.transaction():
        new = batch.store(conn)
    [answer] = batch.answers(new)
    return answer.status


def _renamed(prefix: str) -> dict[str, object]:
    """The same event, its CURIEs under the prefix `prefix` bound to one IRI."""
    return {
        "@context": [
            "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
            {prefix: "https://ns.example.com/"},
        ],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-12-01T10:00:00Z",
        "epcisBody": {
            "eventList": [
                {
                    "type": "ObjectEvent",
                    "eventTime": "2026-12-01T09:00:00.000Z",
                    "eventTimeZoneOffset": "+00:00",
                    "epcList": ["https://id.gs1.org/01/09506000134352/21/77"],
                    "action": "OBSERVE",
                    "bizStep": "inspecting",
                    "readPoint": {"id": f"{prefix}:line-7"},
                    f"{prefix}:grade": f"{prefix}:A",
                }
            ]
        },
    }


def test_a_renamed_prefix_is_one_event_and_the_old_rules_two_copies_fold_into_one(
    fresh_database_url: str,
) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        registry_store.add_org(conn, "acme", "manufacturer")
        registry_store.add_device(conn, "acme", "http-1", None)
        assert _capture(conn, CaptureBatch(), "acme", _renamed("ex")) == "accepted"
        # Under rule 2 the same event with the prefix renamed is a duplicate.
        assert _capture(conn, CaptureBatch(), "acme", _renamed("acme")) == "duplicate"
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        # Under rule 1 (values not expanded) the two were two events: make that store.
        first = _as_stored_under_rule_1(conn)
        assert _capture(conn, CaptureBatch(), "acme", _renamed("acme")) == "accepted"
        second = _as_stored_under_rule_1(conn)
        [(new, old_first)] = first.items()
        [(same_new, old_second)] = second.items()
        assert new == same_new
        assert old_first != old_second
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)

    assert migrate(fresh_database_url) == ["rehash_events"]

    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        assert conn.execute("SELECT event_hash FROM events").fetchone() == (new,)
        aliases = conn.execute(
            "SELECT alias, event_hash, rule FROM event_hash_aliases ORDER BY alias"
        ).fetchall()
        assert sorted(aliases) == sorted([(old_first, new, 1), (old_second, new, 1)])
        # Both submissions stay attested (one party, one channel, unsigned: capture keeps one).
        attested = conn.execute(
            "SELECT count(*) FROM attestations WHERE event_hash = %s", (new,)
        ).fetchone()
        assert attested == (1,)
        assert conn.execute("SELECT count(*) FROM log_queue").fetchone() == (1,)


def test_every_column_holding_event_digests_follows_a_re_identified_event(
    fresh_database_url: str,
) -> None:
    """A new table naming an event digest (…event_hash) must be declared in
    tracefin.schema.EVENT_REFERENCES (or be one of the ledger's own), or the migration would
    leave it pointing at ids no event has."""
    own = {(r.table, r.column) for r in OWN_REFERENCES}
    own |= {("events", "event_hash"), ("log_entries", "event_hash")}
    own |= {("event_hash_aliases", "event_hash")}
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        found = {(r.table, r.column) for r in rehash_store.event_reference_columns(conn)}
    declared = {(r.table, r.column) for r in EVENT_REFERENCES}
    assert found - own == declared


def test_the_audit_checks_the_aliases(fresh_database_url: str, chain_rpc_url: str) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        store_events(conn, 14, "maker")
        changed = _as_stored_under_rule_1(conn)
        deployment = ensure_deployment(conn, connect(chain_rpc_url), DEVNET_PRIVATE_KEY).deployment
        chain = Chain(connect(chain_rpc_url), deployment.anchor_address, None, DEVNET_PRIVATE_KEY)
        anchor_everything(conn, chain, deployment.id)
    migrate(fresh_database_url)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        w3 = connect(chain_rpc_url)
        assert audit(conn, w3).clean
        (first_new, first_old), (second_new, _) = list(changed.items())[:2]
        # An old id re-pointed at another event: its log leaf is no earlier id of its event.
        conn.execute(
            "UPDATE event_hash_aliases SET event_hash = %s WHERE alias = %s",
            (second_new, first_old),
        )
        assert {f.kind for f in audit(conn, w3).findings} == {"leaf_not_alias"}
        # Pointed at nothing stored: dangling too.
        conn.execute(
            "UPDATE event_hash_aliases SET event_hash = %s WHERE alias = %s",
            (bytes(32), first_old),
        )
        assert {f.kind for f in audit(conn, w3).findings} == {"leaf_not_alias", "alias_dangling"}
        conn.execute(
            "UPDATE event_hash_aliases SET event_hash = %s WHERE alias = %s",
            (first_new, first_old),
        )
        assert audit(conn, w3).clean


def test_an_edited_row_is_not_re_identified(fresh_database_url: str) -> None:
    """A row edited in the database hashes to its id under neither rule: it keeps its id, so
    the audit goes on naming it (a new id would launder the edit)."""
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        store_events(conn, 14, "maker")
        changed = _as_stored_under_rule_1(conn)
        (kept_new, kept_old), (_, edited) = list(changed.items())[:2]
        conn.execute(
            "UPDATE events SET event = jsonb_set(event, '{action}', '\"DELETE\"')"
            " WHERE event_hash = %s",
            (edited,),
        )
    report = rehash(fresh_database_url)
    assert report is not None
    assert (report.rekeyed, report.left_altered) == (len(changed) - 1, 1)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        stays = conn.execute("SELECT count(*) FROM events WHERE event_hash = %s", (edited,))
        assert stays.fetchone() == (1,)
        moved = conn.execute("SELECT count(*) FROM events WHERE event_hash = %s", (kept_new,))
        assert moved.fetchone() == (1,)
        findings = audit(conn, None).findings
        assert [(f.kind, hash_id_from_digest(edited) in f.detail) for f in findings] == [
            ("event_altered", True)
        ]
        assert conn.execute(
            "SELECT count(*) FROM event_hash_aliases WHERE alias = %s", (edited,)
        ).fetchone() == (0,)
        assert kept_old != edited
