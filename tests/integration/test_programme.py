"""The programme as the regulator sees it (issue 15, items 6-8): reports on a seeded portfolio
whose totals are known, JSON and CSV alike; run-off and line closing over HTTP; the regulator's
and the borrower's reads.

The portfolio (all loans interest-free, bullet at 365 days, the policy defaults):

| loan | financier  | borrower | category | currency | principal | repaid | drawn        |
|------|------------|----------|----------|----------|-----------|--------|--------------|
| L1   | bank       | maker    | frozen   | CNY      | 300.00    |        | today        |
| L2   | bank       | maker    | dry      | CNY      | 100.00    | 40.00  | today        |
| L3   | bank       | rival    | frozen   | CNY      | 200.00    |        | 400 days ago |
| L4   | other-bank | maker    | frozen   | CNY      | 50.00     |        | today        |
| L5   | bank       | rival    | dry      | USD      | 10.00     |        | today        |
| L6   | bank       | maker    | frozen   | CNY      | 70.00     | 70.00  | today        |

L3 fell due on day 365 and is overdue from day 366: 34 overdue days before today (day 400).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest

from finance import repayments, service
from finance.store import credit
from records import registry_store
from tests.support.api import Api
from tests.support.world import JOURNAL
from tracefin.simulate import gtin_for

pytestmark = pytest.mark.integration


def _lot(api: Api, gtin: str, name: str) -> str:
    lot = f"https://id.gs1.org/01/{gtin}/10/{name}"
    api.conn.execute(
        "INSERT INTO lots (lot_uri, gtin, lot, quantity) VALUES (%s, %s, %s, 10)",
        (lot, gtin, name),
    )
    return lot


def _line(api: Api, financier: str, borrower: str, currency: str) -> int:
    return service.open_line(api.conn, JOURNAL, financier, borrower, "1000", currency).id


def _loan(api: Api, line: int, lot: str, minor: int, currency: str, days_ago: int = 0) -> int:
    loan = credit.add_loan(api.conn, line, lot, None, minor, currency, repayments.DEFAULT_TERMS)
    credit.move_money(api.conn, line, "drawdown", minor)
    if days_ago:
        api.conn.execute(
            "UPDATE loans SET drawn_on = drawn_on - %s WHERE id = %s", (days_ago, loan.id)
        )
    return loan.id


@pytest.fixture
def portfolio(world: Api) -> dict[str, int]:
    service.add_product(world.conn, JOURNAL, "maker", gtin_for(1), "Rice", "dry", "2.00", "CNY")
    frozen, dry = gtin_for(0), gtin_for(1)
    bank_maker = credit.line_between(world.conn, _id(world, "bank"), _id(world, "maker"))
    assert bank_maker is not None
    bank_rival = _line(world, "bank", "rival", "CNY")
    other_maker = _line(world, "other-bank", "maker", "CNY")
    loans = {
        "L1": _loan(world, bank_maker.id, _lot(world, frozen, "P1"), 30000, "CNY"),
        "L2": _loan(world, bank_maker.id, _lot(world, dry, "P2"), 10000, "CNY"),
        "L3": _loan(world, bank_rival, _lot(world, frozen, "P3"), 20000, "CNY", days_ago=400),
        "L4": _loan(world, other_maker, _lot(world, frozen, "P4"), 5000, "CNY"),
        "L6": _loan(world, bank_maker.id, _lot(world, frozen, "P6"), 7000, "CNY"),
    }
    # A USD line of bank to rival: lines are one per financier and borrower here, so the USD
    # loan sits on a line made for it directly.
    [(usd_line,)] = world.conn.execute(
        "INSERT INTO credit_lines (financier_org_id, borrower_org_id, currency, limit_minor)"
        " VALUES (%s, %s, 'USD', 100000) RETURNING id",
        (_id(world, "bank"), _id(world, "rival")),
    ).fetchall()
    loans["L5"] = _loan(world, usd_line, _lot(world, dry, "P5"), 1000, "USD")
    service.repay_loan(world.conn, JOURNAL, "bank", loans["L2"], "40.00")
    service.repay_loan(world.conn, JOURNAL, "bank", loans["L6"], "70.00")
    return loans


def _id(api: Api, slug: str) -> int:
    org = registry_store.get_org(api.conn, slug)
    assert org is not None
    return org.id


def report(api: Api, name: str, who: str = "regulator", **params: Any) -> list[dict[str, Any]]:
    """The report's JSON rows, after checking that its CSV holds exactly the same."""
    as_json = api.get(f"/v1/reports/{name}", who, params=params)
    assert as_json.status_code == 200, as_json.text
    rows: list[dict[str, Any]] = as_json.json()["rows"]
    as_csv = api.get(f"/v1/reports/{name}", who, params=params, headers={"Accept": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert parsed == [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]
    return rows


def test_exposure_by_financier_borrower_and_category(world: Api, portfolio: dict[str, int]) -> None:
    def sums(by: str) -> set[tuple[str, str, int, int]]:
        return {
            (r["group"], r["currency"], r["loans"], r["principal_outstanding_minor"])
            for r in report(world, "exposure", by=by)
        }

    assert sums("financier") == {
        ("bank", "CNY", 3, 56000),  # L1 30000 + L2 6000 + L3 20000 (L6 is repaid)
        ("bank", "USD", 1, 1000),
        ("other-bank", "CNY", 1, 5000),
    }
    assert sums("borrower") == {
        ("maker", "CNY", 3, 41000),
        ("rival", "CNY", 1, 20000),
        ("rival", "USD", 1, 1000),
    }
    assert sums("category") == {
        ("dry", "CNY", 1, 6000),
        ("dry", "USD", 1, 1000),
        ("frozen", "CNY", 3, 55000),
    }
    # Interest-free: what is owed is the principal outstanding.
    assert all(
        r["owed_minor"] == r["principal_outstanding_minor"]
        for r in report(world, "exposure", by="financier")
    )


def test_concentration_aging_and_runoff(world: Api, portfolio: dict[str, int]) -> None:
    top = report(world, "concentration", top=1)
    assert [
        (r["financier"], r["currency"], r["borrower"], r["share"], r["cumulative_share"])
        for r in top
    ] == [
        ("bank", "CNY", "maker", "0.6429", "0.6429"),  # 36000 / 56000
        ("bank", "USD", "rival", "1.0000", "1.0000"),
        ("other-bank", "CNY", "maker", "1.0000", "1.0000"),
    ]
    both = report(world, "concentration", top=2, financier="bank")
    assert [(r["borrower"], r["share"], r["cumulative_share"]) for r in both][:2] == [
        ("maker", "0.6429", "0.6429"),
        ("rival", "0.3571", "1.0000"),
    ]
    aging = report(world, "aging")
    assert [
        (r["financier"], r["kind"], r["bucket"], r["count"], r["amount_minor"]) for r in aging
    ] == [
        # The repayments revalued bank's line to maker (360.00 drawn against its one pledged
        # lot): a margin call for 342.50, raised today.
        ("bank", "margin_call", "1-30", 1, 34250),
        ("bank", "overdue_loan", "31-60", 1, 20000),  # L3, day 35 of being overdue
    ]
    runoff = report(world, "runoff")
    assert [r["loan"] for r in runoff] == [
        portfolio["L3"],  # bank's, the earliest expected end
        portfolio["L1"],
        portfolio["L2"],
        portfolio["L5"],
        portfolio["L4"],  # other-bank's
    ]
    l3 = runoff[0]
    assert (l3["status"], l3["days_overdue"], l3["owed_minor"], l3["lot_quantity"]) == (
        "overdue",
        34,
        20000,
        10,
    )
    assert date.fromisoformat(l3["expected_end"]) == date.fromisoformat(
        world.get(f"/v1/loans/{portfolio['L3']}/statement", "regulator").json()["maturity_on"]
    )


def test_who_reads_which_report(world: Api, portfolio: dict[str, int]) -> None:
    # A financier reads its own lines only, and cannot name another's.
    mine = report(world, "exposure", "bank", by="borrower")
    assert {(r["group"], r["currency"]) for r in mine} == {
        ("maker", "CNY"),
        ("rival", "CNY"),
        ("rival", "USD"),
    }
    assert sum(r["principal_outstanding_minor"] for r in mine if r["currency"] == "CNY") == 56000
    theirs = world.get("/v1/reports/exposure", "bank", params={"financier": "other-bank"})
    assert (theirs.status_code, theirs.json()["code"]) == (404, "unknown_org")
    only = report(world, "runoff", "regulator", financier="other-bank")
    assert [r["loan"] for r in only] == [portfolio["L4"]]
    for who in ("maker", "rival"):
        for name in ("exposure", "concentration", "aging", "runoff"):
            assert world.get(f"/v1/reports/{name}", who).status_code == 403
    assert world.client.get("/v1/reports/exposure").status_code == 401


def test_the_regulator_reads_everything_and_the_borrower_its_own(
    world: Api, portfolio: dict[str, int]
) -> None:
    assert len(world.get("/v1/loans", "regulator").json()) == 6
    assert {line["currency"] for line in world.get("/v1/lines", "regulator").json()} == {
        "CNY",
        "USD",
    }
    assert len(world.get("/v1/lines", "regulator").json()) == 4
    statement = world.get(f"/v1/loans/{portfolio['L4']}/statement", "regulator")
    assert statement.status_code == 200
    assert world.get("/v1/risk-flags", "regulator").status_code == 200
    journal = world.get("/v1/journal", "regulator", params={"limit": 1000}).json()
    assert {"repayment", "line_opened"} <= {entry["action"] for entry in journal}
    after = world.get("/v1/journal", "regulator", params={"after": journal[0]["id"]}).json()
    assert after[0]["id"] == journal[1]["id"]
    # Read-only: the regulator records nothing on a line or a loan.
    assert (
        world.call(
            "POST", f"/v1/loans/{portfolio['L1']}/repayments", "regulator", json={"amount": "1.00"}
        ).status_code
        == 403
    )
    assert world.get("/v1/journal", "bank").status_code == 403
    # The borrower sees its own lines and loans, with both financiers; not rival's.
    lines = world.get("/v1/lines", "maker").json()
    assert {line["financier_org_id"] for line in lines} == {
        _id(world, "bank"),
        _id(world, "other-bank"),
    }
    loans = {loan["id"] for loan in world.get("/v1/loans", "maker").json()}
    assert loans == {portfolio[name] for name in ("L1", "L2", "L4", "L6")}
    assert world.get(f"/v1/loans/{portfolio['L3']}/statement", "maker").status_code == 404


def test_run_off_stops_new_lending_services_the_rest_and_the_line_closes_at_zero(
    world: Api, portfolio: dict[str, int]
) -> None:
    # Only the regulator starts a run-off over HTTP (the operator: `tracefin programme run-off`).
    body = {"financier": "bank", "reason": "sandbox exit"}
    for who in ("bank", "maker"):
        assert world.call("POST", "/v1/programmes/run-off", who, json=body).status_code == 403
    started = world.call("POST", "/v1/programmes/run-off", "regulator", json=body)
    assert started.status_code == 200, started.text
    assert started.json()["financier"] == "bank"
    again = world.call("POST", "/v1/programmes/run-off", "regulator", json=body)
    assert again.json()["started_at"] == started.json()["started_at"]  # idempotent
    # No new application, line or limit increase at bank; other-bank lends as before.
    refused = world.call(
        "POST",
        "/v1/applications",
        "maker",
        json={
            "financier": "bank",
            "lot": f"https://id.gs1.org/01/{gtin_for(0)}/10/L0000000",
            "amount": "1.00",
        },
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "programme_in_run_off")
    raised = world.call(
        "POST", "/v1/lines", "bank", json={"borrower": "rival", "limit": "2000", "currency": "CNY"}
    )
    assert (raised.status_code, raised.json()["code"]) == (409, "programme_in_run_off")
    lowered = world.call(
        "POST", "/v1/lines", "bank", json={"borrower": "rival", "limit": "500", "currency": "CNY"}
    )
    assert lowered.status_code == 201, lowered.text
    other = world.call(
        "POST",
        "/v1/lines",
        "other-bank",
        json={"borrower": "rival", "limit": "10", "currency": "CNY"},
    )
    assert other.status_code == 201, other.text
    # Repayments are still applied; the run-off report lists exactly what remains.
    l3 = portfolio["L3"]
    assert (
        world.call(
            "POST", f"/v1/loans/{l3}/repayments", "bank", json={"amount": "150.00"}
        ).status_code
        == 200
    )
    remaining = report(world, "runoff", financier="bank")
    assert {(r["loan"], r["owed_minor"]) for r in remaining} == {
        (l3, 5000),
        (portfolio["L1"], 30000),
        (portfolio["L2"], 6000),
        (portfolio["L5"], 1000),
    }
    # rival's CNY line with bank closes once its loan is repaid (it holds no pledge).
    [line] = [
        row
        for row in world.get("/v1/lines", "bank").json()
        if row["borrower_org_id"] == _id(world, "rival") and row["currency"] == "CNY"
    ]
    early = world.call("POST", f"/v1/lines/{line['id']}/close", "bank")
    assert (early.status_code, early.json()["code"]) == (409, "line_not_settled")
    assert (
        world.call(
            "POST", f"/v1/loans/{l3}/repayments", "bank", json={"amount": "50.00"}
        ).status_code
        == 200
    )
    assert world.call("POST", f"/v1/lines/{line['id']}/close", "rival").status_code == 403
    closed = world.call("POST", f"/v1/lines/{line['id']}/close", "bank")
    assert (closed.status_code, closed.json()["status"]) == (200, "closed")
    assert l3 not in {r["loan"] for r in report(world, "runoff", financier="bank")}
    # A closed line is not unfrozen or re-limited.
    for path, payload in (
        (f"/v1/lines/{line['id']}/unfreeze", None),
        ("/v1/lines", {"borrower": "rival", "limit": "100", "currency": "CNY"}),
    ):
        again_open = world.call("POST", path, "bank", json=payload)
        assert (again_open.status_code, again_open.json()["code"]) == (409, "line_closed")
    # The whole programme: other-bank stops too.
    world.call(
        "POST",
        "/v1/programmes/run-off",
        "regulator",
        json={"financier": None, "reason": "pilot ends"},
    )
    stopped = world.call(
        "POST",
        "/v1/lines",
        "other-bank",
        json={"borrower": "rival", "limit": "20", "currency": "CNY"},
    )
    assert (stopped.status_code, stopped.json()["code"]) == (409, "programme_in_run_off")
    listed = world.get("/v1/programmes/run-offs", "other-bank").json()
    assert [r["financier"] for r in listed] == ["bank", None]
