"""The credit ledger over HTTP, real PostgreSQL and a real chain (issue 14, first part).

Money is lent only against the applicant's own goods, pledged live on its line; each drawdown is
a loan secured by its lot; exposure is counted per lot; repayments are allocated to loans
(oldest first unless one is named) and restore availability; a lot that secures money is not
released; a line is not re-limited below what it has drawn.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from finance import service, valuation
from finance.audit import full_audit
from finance.money import Money
from finance.rules import Policy, credit_limit
from finance.store import goods
from ledger.chain import connect
from records import registry_store
from tests.support.api import Api
from tests.support.world import JOURNAL, LOT, LOT_URI, WAREHOUSE
from tracefin.simulate import gtin_for

pytestmark = pytest.mark.integration
LOT_1 = f"https://id.gs1.org/01/{gtin_for(1)}/10/L0000001"


@pytest.fixture
def ledger(world: Api) -> Api:
    """The world's lots back in the supervised warehouse (lot 0 is pledged to `bank`, on chain
    and here, on its line to `maker`); `rival` has a line at `bank` too."""
    world.conn.execute(
        "UPDATE lots SET custody = 'warehouse', location = %s, held_at = NULL", (WAREHOUSE,)
    )
    service.add_product(world.conn, JOURNAL, "maker", gtin_for(1), "Buns", "frozen", "12.50", "CNY")
    opened = world.call(
        "POST", "/v1/lines", "bank", json={"borrower": "rival", "limit": "500", "currency": "CNY"}
    )
    assert opened.status_code == 201, opened.text
    return world


def apply(api: Api, who: str, lot: str, amount: str) -> Any:
    return api.call(
        "POST", "/v1/applications", who, json={"financier": "bank", "lot": lot, "amount": amount}
    )


def borrow(api: Api, amount: str) -> dict[str, Any]:
    """`maker` applies against lot 0 and accepts the offer: the decision, and its `loan`."""
    decided = apply(api, "maker", LOT_URI, amount)
    assert decided.status_code == 200, decided.text
    body: dict[str, Any] = decided.json()
    assert body["offer_id"] is not None, body
    accepted = api.call("POST", f"/v1/offers/{body['offer_id']}/accept", "maker")
    assert accepted.status_code == 200, accepted.text
    return {**body, "loan": accepted.json()["loan_id"]}


def line_of_maker(api: Api) -> dict[str, Any]:
    [line] = [
        row
        for row in api.get("/v1/lines", "bank").json()
        if row["borrower_org_id"] == _org_id(api, "maker")
    ]
    return line  # type: ignore[no-any-return]


def _org_id(api: Api, slug: str) -> int:
    row = api.conn.execute("SELECT id FROM orgs WHERE slug = %s", (slug,)).fetchone()
    assert row is not None
    return int(row[0])


def money_moved(api: Api) -> tuple[int, int, int]:
    """(decisions, line movements, loans) recorded so far."""
    row = api.conn.execute(
        "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM line_movements),"
        " (SELECT count(*) FROM loans)"
    ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]))


def test_an_application_against_an_unpledged_lot_is_refused(ledger: Api) -> None:
    before = money_moved(ledger)
    refused = apply(ledger, "maker", LOT_1, "5.00")
    assert (refused.status_code, refused.json()["code"]) == (409, "not_pledged")
    assert money_moved(ledger) == before


def test_another_borrower_cannot_borrow_against_someone_elses_pledged_lot(ledger: Api) -> None:
    before = money_moved(ledger)
    refused = apply(ledger, "rival", LOT_URI, "5.00")
    assert (refused.status_code, refused.json()["code"]) == (403, "not_your_goods")
    assert money_moved(ledger) == before


def test_an_approval_is_an_offer_and_its_acceptance_a_loan_secured_by_its_lot(
    ledger: Api,
) -> None:
    decided = apply(ledger, "maker", LOT_URI, "5.00")
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert (body["decision"], body["approved_minor"]) == ("approve", 500)
    assert money_moved(ledger)[1:] == (0, 0)  # an offer: nothing drawn yet
    [offer] = ledger.get("/v1/offers", "maker").json()
    assert (offer["id"], offer["state"], offer["amount_minor"]) == (body["offer_id"], "open", 500)
    # Only the borrower accepts it, once.
    for who in ("bank", "rival"):
        refused = ledger.call("POST", f"/v1/offers/{body['offer_id']}/accept", who)
        assert refused.status_code in (403, 404), (who, refused.text)
    accepted = ledger.call("POST", f"/v1/offers/{body['offer_id']}/accept", "maker")
    assert accepted.status_code == 200, accepted.text
    body["loan"] = accepted.json()["loan_id"]
    again = ledger.call("POST", f"/v1/offers/{body['offer_id']}/accept", "maker")
    assert (again.status_code, again.json()["code"]) == (409, "offer_not_open")
    loan = ledger.get(f"/v1/loans/{body['loan']}", "maker").json()
    assert (loan["lot_uri"], loan["principal_minor"], loan["outstanding_minor"]) == (
        LOT_URI,
        500,
        500,
    )
    assert [row["id"] for row in ledger.get("/v1/loans", "bank").json()] == [body["loan"]]
    # Nobody else sees it: not the rival, not another bank.
    for who in ("rival", "other-bank"):
        assert ledger.get(f"/v1/loans/{body['loan']}", who).status_code == 404, who
        assert ledger.get("/v1/loans", who).json() == [], who
    # What the lot secures counts against what it can secure: a request up to the LTV cap is
    # cut to what the advance rate leaves; one above the cap is referred for a guarantee.
    value = ledger.get(f"/v1/lots{LOT}", "bank").json()["collateral_value_minor"]
    limit = credit_limit(Money(value, "CNY"), Policy()).minor  # the bank's default policy
    at_cap = value * 75 // 100 - 500
    more = apply(ledger, "maker", LOT_URI, f"{at_cap / 100:.2f}").json()
    assert (more["decision"], more["approved_minor"]) == ("partial", limit - 500)
    over = apply(ledger, "maker", LOT_URI, f"{(at_cap + 1) / 100:.2f}").json()
    assert (over["decision"], over["reasons"], over["offer_id"]) == (
        "refer",
        ["guarantor_required"],
        None,
    )
    assert float(over["ltv"]) > 0.75


def test_repayments_go_to_the_oldest_loan_first_and_restore_availability(ledger: Api) -> None:
    first = borrow(ledger, "5.00")["loan"]
    second = borrow(ledger, "3.00")["loan"]
    line = line_of_maker(ledger)
    repaid = ledger.call(
        "POST", f"/v1/lines/{line['id']}/repayments", "bank", json={"amount": "6.00"}
    )
    assert repaid.status_code == 200, repaid.text
    outstanding = {
        row["id"]: row["outstanding_minor"] for row in ledger.get("/v1/loans", "bank").json()
    }
    assert outstanding == {first: 0, second: 200}
    # Named: the repayment goes to that loan first.
    third = borrow(ledger, "4.00")
    assert third["decision"] == "approve", third  # the 6.00 repaid is available again
    ledger.call(
        "POST",
        f"/v1/lines/{line['id']}/repayments",
        "bank",
        json={"amount": "1.00", "loan_id": third["loan"]},
    )
    outstanding = {
        row["id"]: row["outstanding_minor"] for row in ledger.get("/v1/loans", "bank").json()
    }
    assert outstanding == {first: 0, second: 200, third["loan"]: 300}
    other = ledger.call(
        "POST",
        f"/v1/lines/{line['id']}/repayments",
        "bank",
        json={"amount": "1.00", "loan_id": 999},
    )
    assert (other.status_code, other.json()["code"]) == (404, "unknown_loan")


def test_a_lot_that_secures_a_loan_is_released_only_after_repayment(ledger: Api) -> None:
    borrow(ledger, "5.00")
    refused = ledger.call("DELETE", f"/v1/pledges{LOT}", "bank")
    assert (refused.status_code, refused.json()["code"]) == (409, "lot_secures_loans")
    assert ledger.conn.execute(
        "SELECT count(*) FROM pledges WHERE lot_uri = %s AND released_at IS NULL", (LOT_URI,)
    ).fetchone() == (1,)
    line = line_of_maker(ledger)
    ledger.call("POST", f"/v1/lines/{line['id']}/repayments", "bank", json={"amount": "5.00"})
    released = ledger.call("DELETE", f"/v1/pledges{LOT}", "bank")
    assert released.status_code == 200, released.text


def pledged_units(api: Api) -> int:
    return int(api.get(f"/v1/lots{LOT}", "bank").json()["pledge"]["quantity"])


def test_a_partial_release_lowers_the_pledged_units_while_the_rest_covers_the_loans(
    ledger: Api,
) -> None:
    """Lot 0 holds two units, both pledged. A loan one unit cannot carry keeps both pledged;
    repaid down to what one unit lends, one unit is released: the pledge (still on chain) and
    the collateral value are one unit's; only the bank, only whole units it has pledged."""
    ledger.conn.execute("UPDATE pledges SET quantity = 2 WHERE lot_uri = %s", (LOT_URI,))
    assert pledged_units(ledger) == 2
    value = bank_value(ledger)
    one_unit = credit_limit(Money(value // 2, "CNY"), Policy()).minor
    borrow(ledger, f"{(one_unit + 1) / 100:.2f}")
    before = money_moved(ledger)
    refused = ledger.call("DELETE", f"/v1/pledges{LOT}?quantity=1", "bank")
    assert (refused.status_code, refused.json()["code"]) == (409, "lot_secures_loans")
    assert (pledged_units(ledger), money_moved(ledger)) == (2, before)
    for who, query, status, code in (
        ("other-bank", "quantity=1", 409, "not_pledged"),
        ("maker", "quantity=1", 403, None),
        ("bank", "quantity=0", 422, None),
        ("bank", "quantity=3", 422, "invalid_input"),
        ("bank", "quantity=one", 422, None),
    ):
        answer = ledger.call("DELETE", f"/v1/pledges{LOT}?{query}", who)
        assert answer.status_code == status, (who, query, answer.text)
        if code is not None:
            assert answer.json()["code"] == code, (who, query, answer.text)
    assert pledged_units(ledger) == 2
    line = line_of_maker(ledger)
    ledger.call("POST", f"/v1/lines/{line['id']}/repayments", "bank", json={"amount": "0.01"})
    released = ledger.call("DELETE", f"/v1/pledges{LOT}?quantity=1", "bank")
    assert released.status_code == 200, released.text
    assert (released.json()["still_pledged"], released.json()["tx"]) == (1, "")
    assert (pledged_units(ledger), bank_value(ledger)) == (1, value // 2)
    actions = ledger.conn.execute(
        "SELECT detail FROM finance_journal WHERE action = 'partially_released'"
    ).fetchall()
    assert actions == [({"line": line["id"], "units": 1, "still_pledged": 1},)]
    assert full_audit(ledger.conn, connect(ledger.chain_rpc_url), JOURNAL).findings == []


def test_lines_go_only_to_borrowers_and_say_nothing_of_other_slugs(ledger: Api) -> None:
    """A regulator, another bank or a slug nobody holds: one answer, and no line (issue 17)."""
    registry_store.add_org(ledger.conn, "guaranty-co", "guarantor")
    answers = set()
    for who in ("regulator", "other-bank", "guaranty-co", "nobody-at-all"):
        refused = ledger.call(
            "POST", "/v1/lines", "bank", json={"borrower": who, "limit": "10", "currency": "CNY"}
        )
        detail = refused.json()["detail"].replace(who, "*")
        answers.add((refused.status_code, refused.json()["code"], detail))
    assert answers == {(404, "unknown_org", "no borrower '*'")}
    borrowers = ledger.conn.execute(
        "SELECT DISTINCT o.role FROM credit_lines l JOIN orgs o ON o.id = l.borrower_org_id"
    ).fetchall()
    assert borrowers == [("manufacturer",)]


def test_an_application_names_a_financier_it_has_a_line_at_or_learns_nothing(
    ledger: Api,
) -> None:
    """A slug nobody holds, an org that lends nothing, a bank with no line to the applicant:
    one answer, and nothing decided (issue 17: `unknown_org` and `wrong_role` told them apart)."""
    before = money_moved(ledger)
    answers = set()
    for financier in ("nobody-at-all", "regulator", "rival", "other-bank"):
        refused = ledger.call(
            "POST",
            "/v1/applications",
            "maker",
            json={"financier": financier, "lot": LOT_URI, "amount": "5.00"},
        )
        answers.add((refused.status_code, refused.json()["code"], refused.json()["detail"]))
    assert answers == {(409, "no_line", "no credit line between the financier and the lot's owner")}
    assert money_moved(ledger) == before


def test_amounts_enter_only_in_iso_4217_currencies(ledger: Api) -> None:
    """No line, price or product in a metal, a test code or three made-up letters (issue 17);
    a real currency, with or without a minor unit, enters."""
    before = money_moved(ledger)
    prices = ledger.get("/v1/prices", "bank").json()
    for code in ("ZZZ", "XAU", "XTS"):
        for method, path, who, body in (
            ("POST", "/v1/lines", "bank", {"borrower": "maker", "limit": "10", "currency": code}),
            ("PUT", f"/v1/prices/{gtin_for(0)}", "bank", {"unit_price": "1", "currency": code}),
            (
                "POST",
                "/v1/products",
                "maker",
                {"gtin": gtin_for(7), "name": "n", "category": "c", "unit_price": "1"}
                | {"currency": code},
            ),
        ):
            refused = ledger.call(method, path, who, json=body)
            assert (refused.status_code, refused.json()["code"]) == (422, "invalid_input"), (
                code,
                path,
                refused.text,
            )
    assert (money_moved(ledger), ledger.get("/v1/prices", "bank").json()) == (before, prices)
    for code, unit_price, minor in (("EUR", "12.34", 1234), ("JPY", "1250", 1250)):
        answer = ledger.call(
            "PUT",
            f"/v1/prices/{gtin_for(0)}",
            "bank",
            json={"unit_price": unit_price, "currency": code},
        )
        assert answer.status_code == 200, answer.text
        assert (answer.json()["currency"], answer.json()["unit_price_minor"]) == (code, minor)


def test_a_line_is_not_relimited_below_what_it_has_drawn(ledger: Api) -> None:
    borrow(ledger, "5.00")
    lower = ledger.call(
        "POST", "/v1/lines", "bank", json={"borrower": "maker", "limit": "4.99", "currency": "CNY"}
    )
    assert (lower.status_code, lower.json()["code"]) == (409, "limit_below_drawn")
    assert line_of_maker(ledger)["limit_minor"] == 100_000
    enough = ledger.call(
        "POST", "/v1/lines", "bank", json={"borrower": "maker", "limit": "5.00", "currency": "CNY"}
    )
    assert (enough.status_code, enough.json()["limit_minor"]) == (201, 500)


# --- the financier's own prices ----------------------------------------------------------------


def bank_value(api: Api) -> int:
    return int(api.get(f"/v1/lots{LOT}", "bank").json()["collateral_value_minor"])


def test_the_borrowers_price_lends_nothing_and_an_update_nulls_nothing(ledger: Api) -> None:
    before = bank_value(ledger)
    product = {
        "gtin": gtin_for(0),
        "name": "Frozen dumplings",
        "category": "frozen",
        "unit_price": "12.50",
        "currency": "CNY",
        "min_temp_c": "-25",
        "max_temp_c": "-15",
    }
    assert ledger.call("POST", "/v1/products", "maker", json=product).status_code == 201
    inflated = {k: v for k, v in product.items() if not k.endswith("temp_c")}
    inflated["unit_price"] = "999999.99"
    assert ledger.call("POST", "/v1/products", "maker", json=inflated).status_code == 201
    assert bank_value(ledger) == before  # the bank's price, not the borrower's
    kept = goods.get_product(ledger.conn, gtin_for(0))
    assert kept is not None
    assert (kept.min_temp_c, kept.max_temp_c) == (Decimal("-25"), Decimal("-15"))
    limit = credit_limit(Money(before, "CNY"), Policy()).minor
    at_cap = before * 75 // 100
    decided = apply(ledger, "maker", LOT_URI, f"{at_cap / 100:.2f}").json()
    assert (decided["decision"], decided["approved_minor"]) == ("partial", limit)


def test_a_lot_the_financier_has_not_priced_secures_nothing(ledger: Api) -> None:
    ledger.conn.execute("DELETE FROM financier_prices")  # as if the bank never priced it
    decided = apply(ledger, "maker", LOT_URI, "5.00").json()
    assert (decided["decision"], decided["approved_minor"]) == ("decline", 0)
    assert "no_price" in decided["reasons"]
    assert bank_value(ledger) == 0


def test_a_price_cut_revalues_the_pledged_lots_and_calls_margin(ledger: Api) -> None:
    borrow(ledger, "10.00")
    line = line_of_maker(ledger)
    cut = ledger.call(
        "PUT", f"/v1/prices/{gtin_for(0)}", "bank", json={"unit_price": "1.00", "currency": "CNY"}
    )
    assert cut.status_code == 200, cut.text
    assert (cut.json()["unit_price_minor"], cut.json()["revalued_lines"]) == (100, [line["id"]])
    assert bank_value(ledger) < 1000  # two items at 1.00 less the haircut
    calls = ledger.conn.execute(
        "SELECT shortfall_minor FROM margin_calls WHERE line_id = %s AND settled_at IS NULL",
        (line["id"],),
    ).fetchall()
    limit = credit_limit(Money(bank_value(ledger), "CNY"), Policy()).minor
    assert calls == [(1000 - limit,)]
    listed = ledger.get("/v1/prices", "bank").json()
    assert [(p["gtin"], p["unit_price_minor"]) for p in listed][-1] == (gtin_for(0), 100)
    # A later price holds only from when it says.
    later = ledger.call(
        "PUT",
        f"/v1/prices/{gtin_for(0)}",
        "bank",
        json={"unit_price": "50.00", "currency": "CNY", "valid_from": "2099-01-01T00:00:00Z"},
    )
    assert later.status_code == 200, later.text
    assert bank_value(ledger) < 1000


def test_a_price_set_for_later_revalues_when_its_time_comes(ledger: Api) -> None:
    """A cut set to hold from a later time changes nothing now; when that time comes the
    worker's check revalues the pledged lot and calls margin, once."""
    borrow(ledger, "10.00")
    line = line_of_maker(ledger)
    before = bank_value(ledger)
    start = datetime.now(UTC) + timedelta(seconds=2)
    later = ledger.call(
        "PUT",
        f"/v1/prices/{gtin_for(0)}",
        "bank",
        json={"unit_price": "1.00", "currency": "CNY", "valid_from": start.isoformat()},
    )
    assert (later.status_code, later.json()["revalued_lines"]) == (200, [])
    conn = ledger.conn
    assert valuation.check_prices(conn, JOURNAL, datetime.now(UTC)) == 0
    assert (bank_value(ledger), calls(ledger)) == (before, [])
    time.sleep(max((start - datetime.now(UTC)).total_seconds(), 0) + 0.1)  # its time comes
    with conn.transaction():
        assert valuation.check_prices(conn, JOURNAL, datetime.now(UTC)) == 1
    assert valuation.check_prices(conn, JOURNAL, datetime.now(UTC)) == 0
    assert bank_value(ledger) < before
    [(_, state, amount)] = calls(ledger)
    assert state == "open"
    assert amount > 0
    entries = conn.execute(
        "SELECT subject, detail->'revalued_lines' FROM finance_journal"
        " WHERE action = 'price_in_force'"
    ).fetchall()
    assert entries == [(gtin_for(0), [line["id"]])]


@pytest.mark.parametrize(
    ("who", "gtin", "body", "status", "code"),
    [
        ("maker", gtin_for(0), {"unit_price": "1.00", "currency": "CNY"}, 403, "forbidden_role"),
        ("bank", gtin_for(0)[:-1] + "0", {"unit_price": "1.00", "currency": "CNY"}, 422, None),
        ("bank", gtin_for(0), {"unit_price": "999999999999", "currency": "CNY"}, 422, None),
        (
            "bank",
            gtin_for(0),
            {"unit_price": "1.00", "currency": "CNY", "valid_from": "2026-01-01T00:00:00"},
            422,
            "invalid_input",
        ),
    ],
    ids=["not-a-financier", "check-digit", "out-of-range", "naive-time"],
)
def test_prices_are_the_financiers_and_well_formed(
    ledger: Api, who: str, gtin: str, body: dict[str, str], status: int, code: str | None
) -> None:
    answer = ledger.call("PUT", f"/v1/prices/{gtin}", who, json=body)
    assert answer.status_code == status, answer.text
    if code is not None:
        assert answer.json()["code"] == code
    assert [p["unit_price_minor"] for p in ledger.get("/v1/prices", "bank").json()] == [1250]


# --- margin calls with a lifecycle -------------------------------------------------------------


def price(api: Api, unit_price: str) -> None:
    answer = api.call(
        "PUT",
        f"/v1/prices/{gtin_for(0)}",
        "bank",
        json={"unit_price": unit_price, "currency": "CNY"},
    )
    assert answer.status_code == 200, answer.text


def calls(api: Api, who: str = "bank") -> list[tuple[int, str, int]]:
    return [
        (c["line"], c["state"], c["amount_minor"]) for c in api.get("/v1/margin-calls", who).json()
    ]


def shortfall(api: Api, drawn: int) -> int:
    return drawn - credit_limit(Money(bank_value(api), "CNY"), Policy()).minor


def test_one_margin_call_per_line_follows_the_shortfall_and_is_cured(ledger: Api) -> None:
    borrow(ledger, "10.00")
    line = line_of_maker(ledger)["id"]
    price(ledger, "2.00")
    first = shortfall(ledger, 1000)
    assert calls(ledger) == [(line, "open", first)]
    price(ledger, "1.00")  # worse: the same call, for the larger shortfall
    worse = shortfall(ledger, 1000)
    assert worse > first
    assert calls(ledger) == [(line, "open", worse)]
    assert calls(ledger, "maker") == calls(ledger)  # the borrower sees its call
    assert calls(ledger, "rival") == []
    assert calls(ledger, "other-bank") == []
    # A repayment of part of it shrinks it; a price recovery cures it.
    repay = ledger.call("POST", f"/v1/lines/{line}/repayments", "bank", json={"amount": "1.00"})
    assert repay.status_code == 200, repay.text
    assert calls(ledger) == [(line, "open", shortfall(ledger, 900))]
    price(ledger, "12.50")
    assert [(line_id, state) for line_id, state, _ in calls(ledger)] == [(line, "cured")]
    cured = ledger.conn.execute(
        "SELECT count(*) FROM finance_journal WHERE action = 'margin_call_cured'"
    ).fetchone()
    assert cured == (1,)


def test_a_repayment_cures_a_margin_call(ledger: Api) -> None:
    borrow(ledger, "10.00")
    line = line_of_maker(ledger)["id"]
    price(ledger, "1.00")
    [(_, state, amount)] = calls(ledger)
    assert state == "open"
    ledger.call(
        "POST", f"/v1/lines/{line}/repayments", "bank", json={"amount": f"{amount / 100:.2f}"}
    )
    assert [state for _, state, _ in calls(ledger)] == ["cured"]


def test_a_margin_call_past_due_is_escalated_and_the_line_frozen(ledger: Api) -> None:
    service.set_policy(ledger.conn, JOURNAL, "bank", cure_period_s=60)
    borrow(ledger, "10.00")
    line = line_of_maker(ledger)["id"]
    price(ledger, "1.00")
    [call] = ledger.get("/v1/margin-calls", "bank").json()
    due = datetime.fromisoformat(call["due"])
    assert valuation.check_margin_calls(ledger.conn, JOURNAL, due - timedelta(seconds=1)) == 0
    assert valuation.check_margin_calls(ledger.conn, JOURNAL, due) == 1
    assert [state for _, state, _ in calls(ledger)] == ["escalated"]
    assert line_of_maker(ledger)["status"] == "frozen"
    assert valuation.check_margin_calls(ledger.conn, JOURNAL, due) == 0  # once
    # Still cured by repayment; the line stays frozen until the bank decides.
    ledger.call("POST", f"/v1/lines/{line}/repayments", "bank", json={"amount": "10.00"})
    assert [state for _, state, _ in calls(ledger)] == ["cured"]
    assert line_of_maker(ledger)["status"] == "frozen"


# --- offers that can no longer be accepted -----------------------------------------------------


def test_an_offer_expires_after_the_policys_validity(ledger: Api) -> None:
    service.set_policy(ledger.conn, JOURNAL, "bank", offer_validity_s=1)
    offer = apply(ledger, "maker", LOT_URI, "5.00").json()["offer_id"]
    time.sleep(1.1)
    late = ledger.call("POST", f"/v1/offers/{offer}/accept", "maker")
    assert (late.status_code, late.json()["code"]) == (409, "offer_expired")
    assert money_moved(ledger)[1:] == (0, 0)
    assert [o["state"] for o in ledger.get("/v1/offers", "bank").json()] == ["expired"]


def test_an_offer_the_goods_no_longer_support_is_withdrawn_at_acceptance(ledger: Api) -> None:
    offer = apply(ledger, "maker", LOT_URI, "10.00").json()["offer_id"]
    price(ledger, "1.00")  # the bank's price falls before the borrower accepts
    late = ledger.call("POST", f"/v1/offers/{offer}/accept", "maker")
    assert (late.status_code, late.json()["code"]) == (409, "offer_withdrawn")
    assert "guarantor_required" in late.json()["detail"]  # 10.00 against 2 x 1.00 now
    assert money_moved(ledger)[1:] == (0, 0)
    assert [o["state"] for o in ledger.get("/v1/offers", "maker").json()] == ["withdrawn"]


# --- above the LTV cap: the review queue and a guarantor's guarantee ---------------------------


def invite(api: Api, borrower: str, application: int, guarantor: str) -> Any:
    return api.call(
        "POST",
        f"/v1/applications/{application}/guarantors",
        borrower,
        json={"guarantor": guarantor},
    )


@pytest.fixture
def guarantor(ledger: Api) -> Api:
    """A guarantor org with its own key, and a bank lending up to 90 % (so the 75 % LTV cap,
    not the advance rate, is what binds)."""
    _, key = registry_store.add_org(ledger.conn, "guaranty-co", "guarantor")
    ledger.keys["guaranty-co"] = key
    service.set_policy(ledger.conn, JOURNAL, "bank", advance_rate="0.90")
    return ledger


def test_above_the_cap_only_a_guarantors_own_guarantee_lets_the_bank_approve(
    guarantor: Api,
) -> None:
    api = guarantor
    value = bank_value(api)
    asked = value * 85 // 100  # an LTV of 85 %
    body = {"financier": "bank", "lot": LOT_URI, "amount": f"{asked / 100:.2f}", "guarantor": True}
    decided = api.call("POST", "/v1/applications", "maker", json=body).json()
    # The borrower's own "guarantor" flag is ignored: referred, nothing offered.
    assert (decided["decision"], decided["reasons"], decided["offer_id"]) == (
        "refer",
        ["guarantor_required"],
        None,
    )
    application = decided["application"]
    [queued] = api.get("/v1/reviews", "bank").json()
    assert (queued["application"], queued["guarantor"]) == (application, None)
    assert api.get("/v1/reviews", "other-bank").json() == []
    # Without a guarantee the bank cannot approve it: the rules still refer it.
    early = api.call(
        "POST",
        f"/v1/applications/{application}/review",
        "bank",
        json={"decision": "approve", "reason": "known client"},
    )
    assert (early.status_code, early.json()["code"]) == (409, "review_refused")
    # Only a guarantor guarantees: not the borrower, not the bank.
    for who in ("maker", "bank"):
        denied = api.call(
            "POST", f"/v1/applications/{application}/guarantee", who, json={"amount": "1.00"}
        )
        assert denied.status_code == 403, (who, denied.text)
    # Only one the borrower invited: to any other the application does not exist.
    uninvited = api.call(
        "POST", f"/v1/applications/{application}/guarantee", "guaranty-co", json={"amount": "1"}
    )
    assert (uninvited.status_code, uninvited.json()["code"]) == (404, "unknown_application")
    # Not its application: whoever it names, the application does not exist for it.
    for guarantor in ("guaranty-co", "bank", "nobody-at-all"):
        refused = invite(api, "rival", application, guarantor)
        assert (refused.status_code, refused.json()["code"]) == (404, "unknown_application")
    # A bank, a regulator, a slug nobody holds: one answer, so slugs cannot be sorted (issue 17).
    answers = set()
    for guarantor in ("bank", "regulator", "maker", "nobody-at-all"):
        refused = invite(api, "maker", application, guarantor)
        detail = refused.json()["detail"].replace(guarantor, "*")
        answers.add((refused.status_code, refused.json()["code"], detail))
    assert answers == {(404, "unknown_org", "no guarantor '*'")}
    assert invite(api, "maker", application, "guaranty-co").status_code == 200
    above_cap = asked - value * 75 // 100
    given = api.call(
        "POST",
        f"/v1/applications/{application}/guarantee",
        "guaranty-co",
        json={"amount": f"{above_cap / 100:.2f}"},
    )
    assert given.status_code == 200, given.text
    # Another guarantor's token guarantee blocks nobody: the largest one counts.
    _, other = registry_store.add_org(api.conn, "tiny-guarantor", "guarantor")
    api.keys["tiny-guarantor"] = other
    assert invite(api, "maker", application, "tiny-guarantor").status_code == 200
    small = api.call(
        "POST",
        f"/v1/applications/{application}/guarantee",
        "tiny-guarantor",
        json={"amount": "0.01"},
    )
    assert small.status_code == 200, small.text
    approved = api.call(
        "POST",
        f"/v1/applications/{application}/review",
        "bank",
        # Priced for this loan: 5 % a year, whatever the policy says (issue 15).
        json={"decision": "approve", "reason": "guaranteed by guaranty-co", "rate": "0.05"},
    )
    assert approved.status_code == 200, approved.text
    decision = approved.json()["decision"]
    assert (decision["decision"], decision["approved_minor"], decision["reasons"]) == (
        "approve",
        asked,
        ["within_limits", "guarantor_accepted"],
    )
    [offer] = [o for o in api.get("/v1/offers", "maker").json() if o["id"] == decision["offer_id"]]
    assert offer["annual_rate"] == "0.05"
    accepted = api.call("POST", f"/v1/offers/{decision['offer_id']}/accept", "maker")
    assert accepted.status_code == 200
    loan = api.get(f"/v1/loans/{accepted.json()['loan_id']}", "maker").json()
    assert (loan["annual_rate"], loan["fee_rate"]) == ("0.05", "0")  # the rest: the policy's
    assert api.get("/v1/reviews", "bank").json() == []
    twice = api.call(
        "POST",
        f"/v1/applications/{application}/review",
        "bank",
        json={"decision": "decline", "reason": "changed my mind"},
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "not_in_review")
    # The audit agrees with the two decisions and their journal entries.
    found = full_audit(api.conn, connect(api.chain_rpc_url), JOURNAL).findings
    assert [f for f in found if f.kind.startswith("decision_")] == []


def test_a_too_small_guarantee_does_not_carry_the_loan(guarantor: Api) -> None:
    api = guarantor
    value = bank_value(api)
    asked = value * 85 // 100
    application = apply(api, "maker", LOT_URI, f"{asked / 100:.2f}").json()["application"]
    assert invite(api, "maker", application, "guaranty-co").status_code == 200
    small = api.call(
        "POST", f"/v1/applications/{application}/guarantee", "guaranty-co", json={"amount": "0.01"}
    )
    assert small.status_code == 200, small.text
    refused = api.call(
        "POST",
        f"/v1/applications/{application}/review",
        "bank",
        json={"decision": "approve", "reason": "guaranteed"},
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "review_refused")


def test_a_declined_review_ends_the_application(ledger: Api) -> None:
    value = bank_value(ledger)
    application = apply(ledger, "maker", LOT_URI, f"{value / 100:.2f}").json()["application"]
    declined = ledger.call(
        "POST",
        f"/v1/applications/{application}/review",
        "bank",
        json={"decision": "decline", "reason": "exposure to frozen food is full"},
    )
    assert declined.status_code == 200, declined.text
    assert (declined.json()["review"], declined.json()["decision"]) == ("declined", None)
    assert ledger.get("/v1/reviews", "bank").json() == []
    nobody = ledger.call(
        "POST",
        f"/v1/applications/{application}/review",
        "other-bank",
        json={"decision": "approve", "reason": "x"},
    )
    assert nobody.status_code in (404, 409), nobody.text
