"""Direct SQL edits the audit and the consumer pages must catch (beyond tests/test_audit.py)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from epcis.event_hash import digest_from_hash_id
from finance import pledges
from finance.audit import full_audit as audit
from finance.store.journal import Journal
from ledger import log_store
from ledger.audit import Finding
from ledger.chain import connect
from tests.support.api import Api
from tests.support.cli import run_audit_cli
from tests.support.world import JOURNAL, LOT, LOT_URI, WAREHOUSE

pytestmark = pytest.mark.integration

JSON = {"Accept": "application/json"}


def auth(world: Api, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.keys[who]}"}


def lot_page(world: Api) -> dict[str, Any]:
    response = world.client.get(LOT, headers=JSON)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def states(page: dict[str, Any]) -> dict[bytes, str]:
    return {
        digest_from_hash_id(e["event_hash"]): e["verification"]["state"] for e in page["events"]
    }


def findings(world: Api, journal: Journal = JOURNAL) -> list[Finding]:
    return audit(world.conn, connect(world.chain_rpc_url), journal).findings


def kinds(world: Api, journal: Journal = JOURNAL) -> set[str]:
    return {f.kind for f in findings(world, journal)}


@pytest.fixture(autouse=True)
def _seed_pledge_released(world: Api) -> None:
    """Start every test from records that agree with the chain.

    The seed (tests/integration/world.py) pledges lot 0 in the database only, which the audit
    rightly reports (`pledge_differs_from_chain`, `pledge_differs_from_journal`). It is released
    through the API (on chain too, should the seed ever pledge there) and its row dropped;
    `financed` below pledges the lot for real.
    """
    released = world.client.delete(f"/v1/pledges{LOT}", headers=auth(world, "bank"))
    assert released.status_code == 200, released.text
    world.conn.execute("DELETE FROM pledges WHERE lot_uri = %s", (LOT_URI,))


def lot_event(world: Api, biz_step: str) -> bytes:
    """The digest of the lot's own event with this business step (one per lot in the seed)."""
    row = world.conn.execute(
        "SELECT event_hash FROM events WHERE biz_step = %s AND lots @> ARRAY[%s]",
        (biz_step, LOT_URI),
    ).fetchone()
    assert row is not None, biz_step
    return bytes(row[0])


# --- events ---------------------------------------------------------------------------------


def test_a_released_seed_pledge_audits_clean(world: Api) -> None:
    # The baseline of the event and batch tests below.
    assert kinds(world) == set()


def test_lot_page_shows_an_edited_event_as_failed(world: Api) -> None:
    # test_api checks the item page; the lot page has its own query (lot history) and must
    # not show an edited event as anchored either.
    digest = lot_event(world, "storing")
    assert states(lot_page(world))[digest] == "anchored"
    world.conn.execute(
        "UPDATE events SET event = jsonb_set(event, '{bizLocation,id}', '\"urn:x:elsewhere\"')"
        " WHERE event_hash = %s",
        (digest,),
    )
    page = lot_page(world)
    assert states(page)[digest] == "failed"
    assert page["failed"] == 1
    failed = next(e for e in page["events"] if e["verification"]["state"] == "failed")
    # No batch, block or transaction lends a tampered event credibility.
    assert (failed["verification"]["tx_hash"], failed["verification"]["block_number"]) == (
        None,
        None,
    )
    html = world.client.get(LOT, headers={"Accept": "text/html"}).text
    assert html.count('class="event failed ') == 1
    assert kinds(world) == {"event_altered"}


@pytest.mark.parametrize(
    "edit",
    [
        "event - 'type'",
        "jsonb_set(event, '{epcList}', '{\"a\": [1, null]}')",
        "'[1, 2]'::jsonb",
        "'null'::jsonb",
    ],
    ids=["no-type", "object-for-a-list", "array", "json-null"],
)
def test_an_event_edited_into_junk_is_failed_not_a_crash(
    world: Api,
    edit: str,
) -> None:
    # A tamperer may leave JSON the hash cannot even read: the page and the audit must answer
    # `failed` / `event_altered`, never a 500.
    digest = lot_event(world, "storing")
    assert states(lot_page(world))[digest] == "anchored"  # seen (and cached) intact first
    world.conn.execute(
        f"UPDATE events SET event = {edit} WHERE event_hash = %s",  # fixed SQL fragments
        (digest,),
    )
    assert states(lot_page(world))[digest] == "failed"
    assert kinds(world) == {"event_altered"}


@pytest.mark.parametrize(
    ("step", "column", "value"),
    [
        # A conformant inspection shown as damaged; goods shown in another place.
        ("inspecting", "disposition", "damaged"),
        ("storing", "biz_location", "https://id.gs1.org/414/9999999999999"),
        ("commissioning", "stage", "logistics"),
        ("storing", "biz_step", "shipping"),
    ],
)
def test_an_edited_index_column_is_caught(
    world: Api,
    step: str,
    column: str,
    value: str,
) -> None:
    # The JSON is left alone, so it still hashes to the event's identity: only the
    # cross-check of the columns with the JSON (provenance.row_is_intact) sees the edit.
    digest = lot_event(world, step)
    assert states(lot_page(world))[digest] == "anchored"  # seen (and cached) intact first
    world.conn.execute(
        f"UPDATE events SET {column} = %s WHERE event_hash = %s",  # fixed column names
        (value, digest),
    )
    shown = next(
        e for e in lot_page(world)["events"] if digest_from_hash_id(e["event_hash"]) == digest
    )
    assert shown[column] == value  # the page shows the forged value...
    assert shown["verification"]["state"] == "failed"  # ...so it must not vouch for it
    [finding] = findings(world)
    assert finding.kind == "event_columns_altered"
    assert digest.hex() in finding.detail
    assert column in finding.detail


def test_an_edited_epc_list_column_is_caught(world: Api) -> None:
    # One of the commissioned items no longer appears to belong to the lot.
    digest = lot_event(world, "commissioning")
    assert (
        world.conn.execute(
            "UPDATE events SET epcs = epcs[2:] WHERE event_hash = %s AND cardinality(epcs) > 1",
            (digest,),
        ).rowcount
        == 1
    )
    [finding] = findings(world)
    assert (finding.kind, "epcs" in finding.detail) == ("event_columns_altered", True)


def test_an_event_hidden_from_its_lot_is_caught(world: Api) -> None:
    # Dropping the lot from the row's `lots` column removes a damaging inspection from the lot
    # page and from the finance view, without touching the hashed JSON.
    digest = lot_event(world, "inspecting")
    assert digest in states(lot_page(world))
    world.conn.execute("UPDATE events SET lots = '{}' WHERE event_hash = %s", (digest,))
    assert digest not in states(lot_page(world))
    result = run_audit_cli(world.conn.info.dsn, world.chain_rpc_url)
    assert result.returncode == 1, result.stdout
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["kind"] == "event_columns_altered"
    assert digest.hex() in finding["detail"]
    assert "lots" in finding["detail"]


# --- anchor batches ----------------------------------------------------------------------------


def _batch_of(world: Api, digest: bytes) -> int:
    row = world.conn.execute(
        "SELECT b.batch_id FROM log_entries l JOIN anchor_batches b"
        " ON l.log_index >= b.first_index AND l.log_index < b.first_index + b.count"
        " WHERE l.event_hash = %s",
        (digest,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_deleted_batch_row_is_caught_and_its_events_are_not_shown_anchored(
    world: Api,
) -> None:
    digest = lot_event(world, "storing")
    batch = _batch_of(world, digest)
    assert states(lot_page(world))[digest] == "anchored"
    world.conn.execute("DELETE FROM anchor_batches WHERE batch_id = %s", (batch,))
    assert "batch_unrecorded" in kinds(world)
    assert states(lot_page(world))[digest] != "anchored"


def test_an_edited_batch_root_shows_its_events_as_failed(world: Api) -> None:
    digest = lot_event(world, "storing")
    assert states(lot_page(world))[digest] == "anchored"
    world.conn.execute(
        "UPDATE anchor_batches SET root = %s WHERE batch_id = %s",
        (secrets.token_bytes(32), _batch_of(world, digest)),
    )
    assert kinds(world) == {"batch_root_mismatch", "batch_differs_from_chain"}
    assert states(lot_page(world))[digest] == "failed"


def _deployment_tx(world: Api) -> tuple[bytes, int]:
    """A real transaction that anchored nothing: the one that created the TraceAnchor."""
    deployment = log_store.current_deployment(world.conn)
    assert deployment is not None
    block = connect(world.chain_rpc_url).eth.get_block(deployment.deployed_block)
    return bytes(block["transactions"][0]), deployment.deployed_block  # type: ignore[arg-type]


def _forge_anchor_transaction(world: Api, digest: bytes, forgery: str) -> int:
    """Edit the transaction and/or block of the batch of `digest`; returns the batch id."""
    batch = _batch_of(world, digest)
    if forgery == "random-tx-and-block":
        edit = "tx_hash = %(tx)s, block_number = block_number + 1000"
        tx, block = secrets.token_bytes(32), 0
    elif forgery == "another-real-tx-in-its-block":
        edit = "tx_hash = %(tx)s, block_number = %(block)s"
        tx, block = _deployment_tx(world)
    else:
        edit = "block_number = block_number - 1"
        tx, block = b"", 0
    world.conn.execute(
        f"UPDATE anchor_batches SET {edit} WHERE batch_id = %(batch)s",  # fixed SQL fragments
        {"tx": tx, "block": block, "batch": batch},
    )
    return batch


# The deployment transaction's RoleGranted logs do not decode as BatchAnchored; web3 warns.
@pytest.mark.filterwarnings("ignore:The log with transaction hash")
@pytest.mark.parametrize(
    "forgery", ["random-tx-and-block", "another-real-tx-in-its-block", "block-only"]
)
def test_a_forged_anchor_transaction_is_caught(world: Api, forgery: str) -> None:
    digest = lot_event(world, "storing")
    batch = _forge_anchor_transaction(world, digest, forgery)
    # The proof bundle built from the row no longer verifies against the chain...
    bundle = world.client.get(f"/v1/proofs/{digest.hex()}").json()
    assert world.client.post("/v1/verify", json=bundle).json()["valid"] is False
    # ...and the audit says which batch row lies.
    [finding] = findings(world)
    assert finding.kind == "batch_tx_mismatch"
    assert f"batch {batch}:" in finding.detail


@pytest.mark.filterwarnings("ignore:The log with transaction hash")
@pytest.mark.parametrize(
    "forgery", ["random-tx-and-block", "another-real-tx-in-its-block", "block-only"]
)
def test_a_forged_anchor_transaction_shows_its_events_as_failed(
    world: Api,
    forgery: str,
) -> None:
    """The page checks each batch record it cites against the chain (once per record)."""
    digest = lot_event(world, "storing")
    assert states(lot_page(world))[digest] == "anchored"
    _forge_anchor_transaction(world, digest, forgery)
    assert states(lot_page(world))[digest] == "failed"


# --- finance: pledges and decisions ------------------------------------------------------------


@pytest.fixture
def financed(world: Api) -> Api:
    """The world's lot 0 pledged on chain to `bank` (not only in the database), then financed."""
    world.conn.execute(
        "UPDATE lots SET custody = 'warehouse', location = %s WHERE lot_uri = %s",
        (WAREHOUSE, LOT_URI),
    )
    pledged = world.client.post(f"/v1/pledges{LOT}", headers=auth(world, "bank"))
    assert pledged.status_code == 200, pledged.text
    decided = world.client.post(
        "/v1/applications",
        headers=auth(world, "maker"),
        json={"financier": "bank", "lot": LOT_URI, "amount": "1.00"},
    )
    assert decided.status_code == 200, decided.text
    offer = decided.json()["offer_id"]
    accepted = world.client.post(f"/v1/offers/{offer}/accept", headers=auth(world, "maker"))
    assert accepted.status_code == 200, accepted.text
    # Two more lines, so that a pledge can be moved to another bank or to another borrower.
    world.conn.execute(
        "INSERT INTO credit_lines (financier_org_id, borrower_org_id, currency, limit_minor)"
        " SELECT f.id, b.id, 'CNY', 100 FROM orgs f, orgs b"
        " WHERE (f.slug, b.slug) IN (('other-bank', 'maker'), ('bank', 'rival'))"
    )
    return world


def test_a_financed_world_audits_clean(financed: Api) -> None:
    # The baseline of the tests below: pledging and deciding add no finding.
    assert kinds(financed) == set()
    assert financed.conn.execute("SELECT count(*) FROM decisions").fetchone() == (1,)


def _line_of(financier: str, borrower: str) -> str:
    """A subquery for the id of the line between two organisations (fixed slugs only)."""
    return (
        "(SELECT c.id FROM credit_lines c JOIN orgs f ON f.id = c.financier_org_id"
        f" JOIN orgs b ON b.id = c.borrower_org_id WHERE f.slug = '{financier}'"
        f" AND b.slug = '{borrower}')"
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # Moved to another bank's line: the chain still says `bank` is the pledgee.
        (
            "UPDATE pledges SET line_id = " + _line_of("other-bank", "maker"),
            {"pledge_differs_from_chain", "pledge_differs_from_journal"},
        ),
        # Moved to the same bank's line of another borrower: the chain cannot tell, the journal
        # entry written with the pledge can.
        (
            "UPDATE pledges SET line_id = " + _line_of("bank", "rival"),
            {"pledge_differs_from_journal"},
        ),
        # Marked released in the database while still pledged on chain.
        ("UPDATE pledges SET released_at = now()", {"pledge_differs_from_chain"}),
        # Erased: the chain still holds the pledge to one of our financiers.
        ("DELETE FROM pledges", {"pledge_differs_from_chain"}),
        # Another lot key stored (the chain is read at the lot's true key, which agrees).
        (
            "UPDATE pledges SET lot_key = '\\x" + "ab" * 32 + "'::bytea",
            {"pledge_altered"},
        ),
    ],
    ids=["moved-to-other-bank", "moved-to-other-borrower", "released", "deleted", "lot-key"],
)
def test_an_edited_pledge_is_caught(financed: Api, edit: str, expected: set[str]) -> None:
    assert financed.conn.execute(edit + " WHERE lot_uri = %s", (LOT_URI,)).rowcount == 1
    assert kinds(financed) == expected


def test_a_pledge_released_on_chain_but_live_here_is_caught(financed: Api) -> None:
    line = financed.conn.execute("SELECT line_id FROM loans").fetchone()
    assert line is not None
    repaid = financed.client.post(
        f"/v1/lines/{line[0]}/repayments", headers=auth(financed, "bank"), json={"amount": "1.00"}
    )
    assert repaid.status_code == 200, repaid.text  # a lot securing a loan is not released
    released = financed.client.delete(f"/v1/pledges{LOT}", headers=auth(financed, "bank"))
    assert released.status_code == 200, released.text
    assert kinds(financed) == set()
    # Revived by SQL: the lot counts as collateral here, but other banks may now take it.
    financed.conn.execute(
        "UPDATE pledges SET released_at = NULL, release_tx = NULL WHERE lot_uri = %s",
        (LOT_URI,),
    )
    [finding] = findings(financed)
    assert finding.kind == "pledge_differs_from_chain"
    assert LOT_URI in finding.detail
    assert "not pledged" in finding.detail


def test_a_forged_pledge_of_another_lot_is_caught(financed: Api) -> None:
    row = financed.conn.execute(
        "SELECT lot_uri FROM lots WHERE lot_uri <> %s ORDER BY lot_uri LIMIT 1", (LOT_URI,)
    ).fetchone()
    assert row is not None
    other = str(row[0])
    financed.conn.execute(
        "INSERT INTO pledges (lot_uri, line_id, lot_key, location, chain_tx, quantity)"
        " SELECT %s, line_id, %s, location, chain_tx, quantity FROM pledges WHERE lot_uri = %s",
        (other, pledges.lot_key(other), LOT_URI),
    )
    assert {(f.kind, other in f.detail) for f in findings(financed)} == {
        ("pledge_differs_from_chain", True),
        ("pledge_differs_from_journal", True),
    }


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            "UPDATE decisions SET approved_minor = approved_minor + 100000000, kind = 'approve'",
            {"decision_differs_from_journal"},
        ),
        ("UPDATE decisions SET reasons = '{}'", {"decision_differs_from_journal"}),
        # Evidence pointing to an event that was never stored.
        (
            "UPDATE decisions SET evidence = ARRAY['\\x" + "cd" * 32 + "'::bytea]",
            {"decision_differs_from_journal", "decision_evidence_missing"},
        ),
        # Erased with the money it moved and the loan it made: the journal still records it.
        (
            "WITH gone AS (DELETE FROM line_movements WHERE decision_id IS NOT NULL),"
            " offers_gone AS (DELETE FROM offers),"
            " loans_gone AS (DELETE FROM loans) DELETE FROM decisions",
            {"decision_differs_from_journal"},
        ),
    ],
    ids=["amount", "reasons", "evidence", "deleted"],
)
def test_an_edited_financing_decision_is_caught(
    financed: Api, edit: str, expected: set[str]
) -> None:
    assert financed.conn.execute(edit).rowcount == 1
    assert kinds(financed) == expected


def test_evidence_of_a_decision_whose_event_was_deleted_is_caught(financed: Api) -> None:
    row = financed.conn.execute("SELECT evidence[1] FROM decisions").fetchone()
    assert row is not None
    assert row[0] is not None
    financed.conn.execute("DELETE FROM events WHERE event_hash = %s", (row[0],))
    assert kinds(financed) == {"event_missing", "decision_evidence_missing"}


def test_a_decision_edited_with_its_journal_entry_is_caught(financed: Api) -> None:
    with financed.conn.transaction():
        financed.conn.execute("UPDATE decisions SET approved_minor = approved_minor + 100000000")
        financed.conn.execute(
            "UPDATE finance_journal SET detail = jsonb_set(detail, '{approved_minor}',"
            " to_jsonb((SELECT approved_minor FROM decisions)))"
            " WHERE left(action, 9) = 'decision_'"
        )
    assert kinds(financed) == {"journal_altered"}


@pytest.mark.parametrize(
    "edit",
    [
        # another entry's seal copied over (seals are per entry, not reusable)
        "UPDATE finance_journal SET seal = (SELECT seal FROM finance_journal"
        " WHERE action = 'pledged' LIMIT 1) WHERE left(action, 9) = 'decision_'",
        # the seal removed
        "UPDATE finance_journal SET seal = NULL WHERE left(action, 9) = 'decision_'",
        # the journal alone rewritten: the transaction a `pledged` entry names
        "UPDATE finance_journal SET detail = jsonb_set(detail, '{tx}', '\"0x00\"')"
        " WHERE id = (SELECT min(id) FROM finance_journal WHERE action = 'pledged')",
    ],
)
def test_journal_entries_edited_without_the_key_are_caught(financed: Api, edit: str) -> None:
    assert financed.conn.execute(edit).rowcount == 1
    assert kinds(financed) == {"journal_altered"}


def test_the_journal_checks_with_the_key_it_was_sealed_with(financed: Api) -> None:
    """An audit under another key (a process not given TRACEFIN_JOURNAL_KEY) condemns every
    entry: the key, not the database, vouches for the journal."""
    assert kinds(financed) == set()
    assert kinds(financed, Journal(b"k" * 32)) == {"journal_altered"}
