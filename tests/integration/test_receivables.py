"""Receivables finance on real PostgreSQL (issue 15, item 4): a receivable made when the buyer's
own device attests accepting goods with their purchase order is confirmed by that buyer alone,
financed by a financier at its own policy (no built-in default) as a loan on its line to the
seller, and repaid by the buyer's payment through the waterfall, the rest going to the seller.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from epcis.identifiers import check_digit
from finance import service
from finance.errors import FinanceError, FinanceErrorCode
from finance.store import credit
from records import registry_store
from records.db import Conn
from tests.integration.test_finance_monitoring import commit, follow
from tests.support.world import JOURNAL
from tracefin.simulate import COMPANY_PREFIX, gtin_for, lifecycle, register_sim_sites

pytestmark = pytest.mark.integration
SELLER, BUYER, BANK = "acme-r", "shopco", "bank-r"
# shopco's own GS1 Company Prefix and shop: the consignee of a shipment is the party its
# destination names, and a PGLN belongs to whoever holds its prefix.
BUYER_PREFIX = "9506001"
BUYER_GLN = "950600100001" + check_digit("950600100001")


def refused(code: FinanceErrorCode, call: object) -> None:
    assert callable(call)
    with pytest.raises(FinanceError) as raised:
        call()
    assert raised.value.code == code, raised.value


@pytest.fixture
def receivable(conn: Conn) -> int:
    """acme-r's lot 0 delivered to shopco's shop, accepted there by shopco's own device."""
    registry_store.add_org(conn, SELLER, "manufacturer", [COMPANY_PREFIX])
    registry_store.add_device(conn, SELLER, "plc-1", None)
    registry_store.add_org(conn, BUYER, "retailer", [BUYER_PREFIX])
    registry_store.add_site(conn, BUYER, BUYER_GLN, "Shop")
    registry_store.add_device(conn, BUYER, "shop-1", None)
    register_sim_sites(conn, SELLER)
    registry_store.add_org(conn, BANK, "financier")
    registry_store.add_org(conn, "other-bank-r", "financier")
    service.add_product(conn, JOURNAL, SELLER, gtin_for(0), "Dumplings", "frozen", "12.50", "CNY")
    service.open_line(conn, JOURNAL, BANK, SELLER, "1000.00", "CNY")
    story = [event for _, event in lifecycle(0, datetime.now(UTC) - timedelta(hours=1))]
    ship, accept = story[4], story[5]
    ship["destinationList"] = [
        {"type": "owning_party", "destination": f"https://id.gs1.org/417/{BUYER_GLN}"}
    ]
    accept["bizLocation"] = {"id": f"https://id.gs1.org/414/{BUYER_GLN}"}
    commit(conn, story[:5], org=SELLER)
    commit(conn, [accept], org=BUYER, device_id="shop-1")  # accepting, with the PO
    follow(conn)
    [row] = service.receivables(conn, SELLER)
    assert (row.seller, row.buyer, row.state, row.amount_minor) == (SELLER, BUYER, "open", 3750)
    return row.id


def test_only_the_buyer_confirms_and_only_a_confirmed_receivable_is_financed(
    conn: Conn, receivable: int
) -> None:
    refused(
        FinanceErrorCode.RECEIVABLE_NOT_CONFIRMED,
        lambda: service.finance_receivable(conn, JOURNAL, BANK, receivable),
    )
    # The seller cannot confirm its own receivable, nor can the bank: the buyer's key only.
    for who in (SELLER, BANK):
        refused(
            FinanceErrorCode.UNKNOWN_RECEIVABLE,
            lambda who=who: service.confirm_receivable(conn, JOURNAL, who, receivable),  # type: ignore[misc]
        )
    assert service.confirm_receivable(conn, JOURNAL, BUYER, receivable).state == "confirmed"
    refused(
        FinanceErrorCode.RECEIVABLE_NOT_OPEN,
        lambda: service.confirm_receivable(conn, JOURNAL, BUYER, receivable),
    )
    # A bank without a line to the seller does not even see it.
    refused(
        FinanceErrorCode.UNKNOWN_RECEIVABLE,
        lambda: service.finance_receivable(conn, JOURNAL, "other-bank-r", receivable),
    )
    assert service.receivables(conn, "other-bank-r") == []
    assert [r.id for r in service.receivables(conn, BANK)] == [receivable]  # to finance


def test_financed_at_the_financiers_policy_and_repaid_by_the_buyer(
    conn: Conn, receivable: int
) -> None:
    service.confirm_receivable(conn, JOURNAL, BUYER, receivable)
    # No policy, no advance: there is no built-in rate to lend at.
    refused(
        FinanceErrorCode.NO_POLICY,
        lambda: service.finance_receivable(conn, JOURNAL, BANK, receivable),
    )
    service.set_policy(
        conn,
        JOURNAL,
        BANK,
        "frozen",
        receivable_advance_rate="0.90",
        annual_rate="0.0365",
        tenor_days=30,
    )
    financed = service.finance_receivable(conn, JOURNAL, BANK, receivable)
    assert (financed.state, financed.financier, financed.advance_minor) == ("financed", BANK, 3375)
    assert financed.loan_id is not None
    loan = credit.get_loan(conn, financed.loan_id)
    assert loan is not None
    assert (loan.principal_minor, loan.annual_rate, loan.tenor_days) == (
        3375,
        Decimal("0.0365"),
        30,
    )
    line = credit.line_between(
        conn, registry_store.get_org(conn, BANK).id, registry_store.get_org(conn, SELLER).id
    )  # type: ignore[union-attr]
    assert line is not None
    assert line.drawn_minor == 3375
    # Ten days later the buyer pays the whole 37.50: interest ceil(3375 x 0.0365 x 10 / 365)
    # = ceil(3.375) = 4, then the principal; the 3.71 left over is the seller's.
    conn.execute("UPDATE loans SET drawn_on = drawn_on - 10 WHERE id = %s", (loan.id,))
    refused(
        FinanceErrorCode.INVALID_AMOUNT,
        lambda: service.receivable_paid(conn, JOURNAL, BANK, receivable, "37.51"),
    )
    paid = service.receivable_paid(conn, JOURNAL, BANK, receivable, "37.50")
    assert (paid.state, paid.paid_minor) == ("paid", 3750)
    assert conn.execute(
        "SELECT source, interest_minor, principal_minor FROM loan_payments WHERE loan_id = %s",
        (loan.id,),
    ).fetchall() == [("buyer", 4, 3375)]
    assert credit.get_line(conn, line.id).drawn_minor == 0  # type: ignore[union-attr]
    [entry] = conn.execute(
        "SELECT detail->'to_seller_minor' FROM finance_journal WHERE action = 'receivable_paid'"
    ).fetchall()
    assert entry == (371,)
    refused(
        FinanceErrorCode.INVALID_AMOUNT,
        lambda: service.receivable_paid(conn, JOURNAL, BANK, receivable, "0.01"),
    )


def test_no_receivable_is_financed_in_run_off(conn: Conn, receivable: int) -> None:
    service.confirm_receivable(conn, JOURNAL, BUYER, receivable)
    service.set_policy(conn, JOURNAL, BANK, receivable_advance_rate="0.80")
    service.run_off(conn, JOURNAL, "regulator", BANK, "exit")
    refused(
        FinanceErrorCode.PROGRAMME_IN_RUN_OFF,
        lambda: service.finance_receivable(conn, JOURNAL, BANK, receivable),
    )
