"""Loan servicing over HTTP on real PostgreSQL (issue 15, parts 1 and 2): the policy's terms are
copied to each loan at drawdown; a statement as of any day follows from the terms and payments
alone; repayments go fees -> penalty -> interest -> principal, and only principal comes off the
line's drawn amount.

The figures are hand-computed (docs/finance.md, "Loan economics"). Loans are drawn today by the
database's clock; to look at a loan 100 days on, a test moves its drawn date back (payments are
dated the day they are recorded, so none exists before the move).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from finance.audit import full_audit
from ledger.chain import connect
from tests.integration.test_credit_ledger import borrow, ledger, line_of_maker
from tests.support.api import Api
from tests.support.world import JOURNAL

pytestmark = pytest.mark.integration
__all__ = ["ledger"]  # the fixture, used by name

# 3.65 % a year ACT/365F on 500.00 minor units is 0.05 minor a day; 7.30 % penalty on 250 too.
TERMS = {
    "rate": "0.0365",
    "day_count": "ACT/365F",
    "schedule": "instalments",
    "instalments": 2,
    "fee_rate": "0.01",
    "tenor_days": 60,
    "grace_days": 5,
    "penalty_rate": "0.0730",
    "default_after_days": 30,
}


def set_terms(api: Api, **changes: Any) -> Any:
    return api.call("PUT", "/v1/policies/*", "bank", json={**TERMS, **changes})


@pytest.fixture
def loan(ledger: Api) -> int:
    """`maker` has borrowed 5.00 CNY from `bank` on TERMS."""
    stored = set_terms(ledger)
    assert stored.status_code == 200, stored.text
    return int(borrow(ledger, "5.00")["loan"])


def statement(api: Api, loan_id: int, as_of: date | None = None, who: str = "bank") -> Any:
    params = {"as_of": as_of.isoformat()} if as_of else {}
    response = api.get(f"/v1/loans/{loan_id}/statement", who, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def drawn_days_ago(api: Api, loan_id: int, days: int) -> date:
    """Move the loan's drawn date `days` back; returns today (UTC, the database's clock)."""
    row = api.conn.execute(
        "UPDATE loans SET drawn_on = drawn_on - %s WHERE id = %s"
        " RETURNING drawn_on + %s, (SELECT count(*) FROM loan_payments WHERE loan_id = %s)",
        (days, loan_id, days, loan_id),
    ).fetchone()
    assert row is not None
    assert row[1] == 0, "a loan with payments cannot be moved back in time"
    today: date = row[0]
    return today


def repay(api: Api, loan_id: int, amount: str, who: str = "bank") -> Any:
    return api.call("POST", f"/v1/loans/{loan_id}/repayments", who, json={"amount": amount})


def components(body: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        body["fees_minor"],
        body["penalty_minor"],
        body["interest_minor"],
        body["principal_minor"],
    )


def test_the_policy_api_sets_loan_terms_and_refuses_terms_that_do_not_hold(ledger: Api) -> None:
    stored = set_terms(ledger)
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert (body["annual_rate"], body["day_count"], body["schedule_kind"]) == (
        "0.0365",
        "ACT/365F",
        "instalments",
    )
    assert (body["instalment_count"], body["tenor_days"], body["default_after_days"]) == (2, 60, 30)
    before = ledger.get("/v1/policies", "bank").json()
    for bad, code in [
        ({"schedule": "bullet", "instalments": 3}, "invalid_terms"),
        ({"instalments": 61}, "invalid_terms"),  # more instalments than days
    ]:
        refused = set_terms(ledger, **bad)
        assert (refused.status_code, refused.json()["code"]) == (422, code), refused.text
    refused = set_terms(ledger, rate="1.5")  # above 100 % a year: not a rate
    assert refused.status_code == 422, refused.text
    assert ledger.get("/v1/policies", "bank").json() == before
    # Only a financier sets (and reads) its policies.
    for who in ("maker", "regulator"):
        assert ledger.call("PUT", "/v1/policies/*", who, json=TERMS).status_code == 403
        assert ledger.get("/v1/policies", who).status_code == 403


def test_a_loan_keeps_the_terms_of_its_drawdown(ledger: Api, loan: int) -> None:
    before = ledger.get(f"/v1/loans/{loan}", "maker").json()
    assert (before["annual_rate"], before["fee_rate"], before["instalment_count"]) == (
        "0.0365",
        "0.01",
        2,
    )
    assert set_terms(ledger, rate="0.20", fee_rate="0.05").status_code == 200
    assert ledger.get(f"/v1/loans/{loan}", "maker").json() == before


def test_a_new_loan_owes_its_fee_and_has_its_schedule(ledger: Api, loan: int) -> None:
    today = statement(ledger, loan)
    assert today["status"] == "current"
    assert (today["principal_minor"], today["fees_minor"], today["interest_accrued_minor"]) == (
        500,
        5,  # ceil(500 x 0.01)
        0,  # no day has passed
    )
    drawn = date.fromisoformat(today["drawn_on"])
    assert today["schedule"] == [
        {"number": 1, "due_on": (drawn + timedelta(days=30)).isoformat(), "principal_minor": 250},
        {"number": 2, "due_on": (drawn + timedelta(days=60)).isoformat(), "principal_minor": 250},
    ]
    assert today["maturity_on"] == (drawn + timedelta(days=60)).isoformat()
    # The fee is owed, not drawn: the line's drawn amount is the principal.
    assert line_of_maker(ledger)["drawn_minor"] == 500


def test_overdue_penalty_default_and_the_waterfall(ledger: Api, loan: int) -> None:
    today = drawn_days_ago(ledger, loan, 100)
    stated = statement(ledger, loan)
    assert stated["as_of"] == today.isoformat()
    # Interest: one span of 100 days on 500: ceil(500 x 0.0365 x 100 / 365) = 5.
    # Penalty: instalment 1 (due day 30, grace 5) is overdue from day 36 and instalment 2 from
    # day 66: ceil(250 x 0.073 x 30 / 365) = ceil(1.5) = 2, then ceil(500 x 0.073 x 34 / 365)
    # = ceil(3.4) = 4: 6. Overdue 64 days >= 30: in default.
    assert components(stated["outstanding"]) == (5, 6, 5, 500)
    assert (stated["status"], stated["days_overdue"], stated["overdue_principal_minor"]) == (
        "default",
        64,
        500,
    )
    # More than it owes is refused, and changes nothing.
    refused = repay(ledger, loan, "5.17")
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_amount")
    assert statement(ledger, loan) == stated
    # 0.12 pays the fee, the penalty and only 1 of the 5 of interest: no principal moves.
    partly = repay(ledger, loan, "0.12")
    assert partly.status_code == 200, partly.text
    body = partly.json()
    assert [components(p["applied"]) for p in body["payments"]] == [(5, 6, 1, 0)]
    assert components(body["outstanding"]) == (0, 0, 4, 500)
    assert body["status"] == "default"
    assert line_of_maker(ledger)["drawn_minor"] == 500
    # The rest: interest first, then all the principal. Repaid; the line is drawn no more.
    rest = repay(ledger, loan, "5.04").json()
    assert [components(p["applied"]) for p in rest["payments"]] == [(5, 6, 1, 0), (0, 0, 4, 500)]
    assert (rest["status"], rest["outstanding_minor"], rest["next_due"]) == ("repaid", 0, None)
    assert components(rest["paid"]) == (5, 6, 5, 500)
    assert line_of_maker(ledger)["drawn_minor"] == 0
    assert ledger.get(f"/v1/loans/{loan}", "bank").json()["outstanding_minor"] == 0
    # What was stored for each payment is what the statement recomputes from the payments.
    stored = ledger.conn.execute(
        "SELECT source, fees_minor, penalty_minor, interest_minor, principal_minor"
        " FROM loan_payments WHERE loan_id = %s ORDER BY id",
        (loan,),
    ).fetchall()
    assert stored == [("borrower", 5, 6, 1, 0), ("borrower", 0, 0, 4, 500)]
    # Nothing is owed any more, and the journal still verifies.
    assert repay(ledger, loan, "0.01").json()["code"] == "invalid_amount"
    assert full_audit(ledger.conn, connect(ledger.chain_rpc_url), JOURNAL).findings == []


def test_a_statement_is_a_function_of_the_day(ledger: Api, loan: int) -> None:
    today = drawn_days_ago(ledger, loan, 10)
    past = statement(ledger, loan, today - timedelta(days=5))
    # 5 days on 500: ceil(500 x 0.0365 x 5 / 365) = ceil(0.25) = 1.
    assert (past["interest_accrued_minor"], past["status"]) == (1, "current")
    # A future day projects accrual with no further payment: 40 days after drawdown the first
    # instalment (due day 30) is overdue from day 36: 4 days of penalty on 250.
    future = statement(ledger, loan, today + timedelta(days=30))
    assert (future["status"], future["days_overdue"]) == ("overdue", 4)
    assert future["interest_accrued_minor"] == 2  # ceil(500 x 0.0365 x 40 / 365) = ceil(2.0)
    assert future["penalty_accrued_minor"] == 1  # ceil(250 x 0.073 x 4 / 365) = ceil(0.2)
    # The same question gives the same answer, however often it is asked.
    assert statement(ledger, loan, today + timedelta(days=30)) == future
    # Before the loan was drawn there is nothing to state.
    early = ledger.get(
        f"/v1/loans/{loan}/statement",
        "bank",
        params={"as_of": (today - timedelta(days=11)).isoformat()},
    )
    assert (early.status_code, early.json()["code"]) == (400, "invalid_date")
    garbled = ledger.get(f"/v1/loans/{loan}/statement", "bank", params={"as_of": "tomorrow"})
    assert garbled.status_code == 422


def test_line_repayments_go_through_the_same_waterfall(ledger: Api, loan: int) -> None:
    drawn_days_ago(ledger, loan, 100)
    line = line_of_maker(ledger)
    paid = ledger.call(
        "POST", f"/v1/lines/{line['id']}/repayments", "bank", json={"amount": "0.20"}
    )
    assert paid.status_code == 200, paid.text
    # fee 5, penalty 6, interest 5, then 4 of principal.
    assert paid.json()["drawn_minor"] == 496
    assert components(statement(ledger, loan)["paid"]) == (5, 6, 5, 4)


def test_who_may_read_and_repay_a_loan(ledger: Api, loan: int) -> None:
    # The borrower, the financier and the regulator read its statement; nobody else learns
    # it exists.
    assert statement(ledger, loan, who="maker")["loan"] == loan
    assert statement(ledger, loan, who="regulator")["loan"] == loan
    for who in ("rival", "other-bank"):
        hidden = ledger.get(f"/v1/loans/{loan}/statement", who)
        assert (hidden.status_code, hidden.json()["code"]) == (404, "unknown_loan"), who
    # Only its financier records a repayment: the borrower cannot mark its own loan paid.
    assert repay(ledger, loan, "0.01", who="maker").status_code == 403
    assert repay(ledger, loan, "0.01", who="regulator").status_code == 403
    other = repay(ledger, loan, "0.01", who="other-bank")
    assert (other.status_code, other.json()["code"]) == (404, "unknown_loan")
    anonymous = ledger.client.post(f"/v1/loans/{loan}/repayments", json={"amount": "0.01"})
    assert anonymous.status_code == 401
    count = ledger.conn.execute("SELECT count(*) FROM loan_payments").fetchone()
    assert count == (0,)
    # The decision that made it: its borrower, its financier and the regulator read it.
    for who, seen in (("maker", 1), ("bank", 1), ("regulator", 1), ("rival", 0), ("other-bank", 0)):
        read = ledger.get("/v1/decisions", who)
        assert read.status_code == 200, read.text
        assert [(d["kind"], d["approved_minor"]) for d in read.json()] == [("approve", 500)] * seen


def test_the_audit_finds_payments_and_loans_edited_behind_the_waterfall(
    ledger: Api, loan: int
) -> None:
    drawn_days_ago(ledger, loan, 100)
    assert repay(ledger, loan, "0.20").status_code == 200  # 5, 6, 5, then 4 of principal
    w3 = connect(ledger.chain_rpc_url)

    def loan_findings() -> list[str]:
        found = full_audit(ledger.conn, w3, JOURNAL).findings
        return [f.detail for f in found if f.kind == "loan_differs_from_payments"]

    assert loan_findings() == []
    # Interest recorded as principal: the borrower's debt shrinks on paper.
    ledger.conn.execute(
        "UPDATE loan_payments SET interest_minor = 4, principal_minor = 5 WHERE loan_id = %s",
        (loan,),
    )
    assert len(loan_findings()) == 1
    ledger.conn.execute(
        "UPDATE loan_payments SET interest_minor = 5, principal_minor = 4 WHERE loan_id = %s",
        (loan,),
    )
    ledger.conn.execute("UPDATE loans SET outstanding_minor = 400 WHERE id = %s", (loan,))
    [finding] = loan_findings()
    assert "400 is recorded outstanding; its payments leave 496" in finding
