"""The finance commands of the CLI: registration, lines, and refusals with stable codes."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal

import pytest

from epcis.identifiers import check_digit
from finance import repayments
from finance.store import credit, goods
from records import registry_store
from records.db import Conn
from tests.support.cli import tracefin

pytestmark = pytest.mark.integration


def ok(database_url: str, *args: str) -> object:
    result = tracefin(database_url, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_financier_sets_up_and_manages_a_line(database_url: str, db: Conn) -> None:
    maker, bank = f"maker-{secrets.token_hex(3)}", f"bank-{secrets.token_hex(3)}"
    # A GS1 Company Prefix of its own (this database is shared), and a GTIN in it.
    prefix = "9" + str(secrets.randbelow(10**9)).zfill(9)
    registry_store.add_org(db, maker, "manufacturer", [prefix])
    registry_store.add_org(db, bank, "financier")
    body = "0" + prefix + str(secrets.randbelow(100)).zfill(2)
    gtin = body + check_digit(body)
    product = ok(
        database_url,
        "product",
        "add",
        maker,
        gtin,
        "--name",
        "Ice cream",
        "--category",
        "frozen",
        "--price",
        "8.90",
        "--currency",
        "CNY",
        "--min-temp",
        "-25",
        "--max-temp",
        "-15",
    )
    assert product["unit_price_minor"] == 890  # type: ignore[index]
    place = ok(
        database_url,
        "warehouse",
        "add",
        maker,
        "urn:epc:id:sgln:0614141.00001.0",
        "--name",
        "Cold store",
    )
    location = place["location"]  # type: ignore[index]
    assert location == "https://id.gs1.org/414/0614141000012"
    ok(database_url, "warehouse", "supervise", bank, location)
    priced = ok(database_url, "price", "set", bank, gtin, "8.00", "--currency", "CNY")
    assert (priced["gtin"], priced["unit_price_minor"]) == (gtin, 800)  # type: ignore[index]
    later = ok(
        *(database_url, "price", "set", bank, gtin, "9.00", "--currency", "CNY"),
        *("--valid-from", "2099-01-01T00:00:00+08:00"),
    )
    assert later["unit_price_minor"] == 900  # type: ignore[index]
    listed = ok(database_url, "price", "list", bank)
    assert [p["unit_price_minor"] for p in listed] == [800, 900]  # type: ignore[union-attr,index]
    ok(database_url, "policy", "set", bank, "--category", "frozen", "--haircut", "0.10")
    line = ok(database_url, "line", "open", bank, maker, "--limit", "50000", "--currency", "CNY")
    assert (line["limit_minor"], line["status"]) == (5_000_000, "active")  # type: ignore[index]
    frozen = ok(database_url, "line", "freeze", bank, str(line["id"]))  # type: ignore[index]
    assert frozen["status"] == "frozen"  # type: ignore[index]
    active = ok(database_url, "line", "unfreeze", bank, str(line["id"]))  # type: ignore[index]
    assert active["status"] == "active"  # type: ignore[index]
    assert ok(database_url, "loan", "list", bank) == []  # nothing drawn yet
    actions = {
        row[0]
        for row in db.execute(
            "SELECT action FROM finance_journal WHERE actor IN (%s, %s)", (maker, bank)
        ).fetchall()
    }
    assert {
        "product_registered",
        "warehouse_registered",
        "warehouse_supervised",
        "policy_set",
        "line_opened",
        "line_frozen",
        "line_active",
    } <= actions


def test_supervising_an_unregistered_warehouse_is_refused(database_url: str, db: Conn) -> None:
    bank = f"bank-{secrets.token_hex(3)}"
    registry_store.add_org(db, bank, "financier")
    result = tracefin(database_url, "warehouse", "supervise", bank, "0614141999996")
    assert result.returncode == 2, result.stdout
    assert "tracefin: unknown_warehouse:" in result.stderr
    assert "Traceback" not in result.stderr
    assert db.execute(
        "SELECT count(*) FROM supervised_warehouses WHERE location LIKE %s", ("%0614141999996",)
    ).fetchone() == (0,)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("lot", "status", "https://id.gs1.org/01/09506000134352/10/NOPE"), "unknown_lot"),
        (("lot", "status", "urn:epc:id:sgtin:0614141.012345.1"), "invalid_lot"),
        (("line", "freeze", "{maker}", "1"), "wrong_role"),
        (("repay", "nobody", "1", "10.00"), "unknown_org"),
        (("loan", "show", "{maker}", "1"), "unknown_loan"),
        (("warehouse", "supervise", "{maker}", "0614141999996"), "wrong_role"),
        (
            (
                "product",
                "add",
                "{maker}",
                "00614141000012",
                "--name",
                "x",
                "--category",
                "c",
                "--price",
                "10000000.01",  # one minor unit above the bound on a unit price
                "--currency",
                "CNY",
            ),
            "amount_out_of_range",
        ),
        (("sensor", "add", "{maker}", "probe-1", "0614141999996"), "unknown_warehouse"),
        (("sensor", "add", "{maker}", "probe-1", "0614141999999"), "invalid_identifier"),
        (
            (
                "product",
                "add",
                "{maker}",
                "123",
                "--name",
                "x",
                "--category",
                "c",
                "--price",
                "1",
                "--currency",
                "CNY",
            ),
            "invalid_gtin",
        ),
        (
            (
                "product",
                "add",
                "{maker}",
                "00614141000012",
                "--name",
                "x",
                "--category",
                "c",
                "--price",
                "1.234",
                "--currency",
                "CNY",
            ),
            "invalid_input",
        ),
    ],
)
def test_refusals_have_stable_codes(
    database_url: str, db: Conn, args: tuple[str, ...], code: str
) -> None:
    maker = f"maker-{secrets.token_hex(3)}"
    registry_store.add_org(db, maker, "manufacturer")
    result = tracefin(database_url, *(a.format(maker=maker) for a in args))
    assert result.returncode == 2, result.stdout
    assert f"tracefin: {code}:" in result.stderr
    assert "Traceback" not in result.stderr


def test_loan_terms_statements_and_repayments_from_the_cli(database_url: str, db: Conn) -> None:
    maker, bank = f"maker-{secrets.token_hex(3)}", f"bank-{secrets.token_hex(3)}"
    registry_store.add_org(db, maker, "manufacturer")
    bank_id = registry_store.add_org(db, bank, "financier")[0].id
    terms = ("--rate", "0.0365", "--day-count", "ACT/360", "--schedule", "instalments")
    terms += ("--instalments", "2", "--fee-rate", "0.01", "--tenor-days", "60")
    terms += ("--grace-days", "5", "--penalty-rate", "0.073", "--default-after-days", "30")
    ok(database_url, "policy", "set", bank, *terms)
    policy = goods.policy_for(db, bank_id, "frozen")
    assert policy is not None
    assert (policy.annual_rate, policy.day_count, policy.instalment_count) == (
        Decimal("0.0365"),
        "ACT/360",
        2,
    )
    # Terms that do not hold together are refused, and the policy stays as it was.
    refused = tracefin(
        database_url, "policy", "set", bank, "--schedule", "bullet", "--instalments", "3"
    )
    assert (refused.returncode, "Traceback" in refused.stderr) == (2, False)
    assert "tracefin: invalid_terms:" in refused.stderr
    assert goods.policy_for(db, bank_id, "frozen") == policy
    # A loan of 360.00 drawn on those terms 36 days ago (made here: the CLI test has no chain).
    line = ok(database_url, "line", "open", bank, maker, "--limit", "1000", "--currency", "CNY")
    lot = f"https://id.gs1.org/01/09506000134352/10/CLI-{secrets.token_hex(3)}"
    db.execute("INSERT INTO lots (lot_uri, gtin, lot) VALUES (%s, '09506000134352', 'x')", (lot,))
    stored = repayments.terms_at_drawdown(db, bank_id, "frozen")
    loan = credit.add_loan(db, line["id"], lot, None, 36000, "CNY", stored)  # type: ignore[index]
    credit.move_money(db, line["id"], "drawdown", 36000)  # type: ignore[index]
    db.execute("UPDATE loans SET drawn_on = drawn_on - 36 WHERE id = %s", (loan.id,))
    today = db.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]  # type: ignore[index]
    # ACT/360: ceil(36000 x 0.0365 x 36 / 360) = ceil(131.4) = 132 of interest; fee 360;
    # instalment 1 (18000, due day 30) is overdue from day 36: nothing of penalty yet.
    stated = ok(database_url, "loan", "statement", str(loan.id), "--as-of", today.isoformat())
    assert stated["status"] == "overdue"  # type: ignore[index]
    assert stated["outstanding"] == {  # type: ignore[index]
        "fees_minor": 360,
        "penalty_minor": 0,
        "interest_minor": 132,
        "principal_minor": 36000,
    }
    # 5.00 pays the fee (3.60), all 1.32 of interest, then 0.08 of principal (off the line).
    ok(database_url, "loan", "repay", str(loan.id), "5.00")
    after = ok(database_url, "loan", "statement", str(loan.id))
    assert after["paid"] == {  # type: ignore[index]
        "fees_minor": 360,
        "penalty_minor": 0,
        "interest_minor": 132,
        "principal_minor": 8,
    }
    assert credit.get_line(db, line["id"]).drawn_minor == 35992  # type: ignore[index, union-attr]
    too_much = tracefin(database_url, "loan", "repay", str(loan.id), "400.00")
    assert too_much.returncode == 2
    assert "tracefin: invalid_amount:" in too_much.stderr
    # Another financier cannot record it; a day that is no date is refused by the parser.
    other = f"bank-{secrets.token_hex(3)}"
    registry_store.add_org(db, other, "financier")
    theirs = tracefin(database_url, "loan", "repay", str(loan.id), "1.00", "--financier", other)
    assert theirs.returncode == 2
    assert "tracefin: unknown_loan:" in theirs.stderr
    bad_day = tracefin(database_url, "loan", "statement", str(loan.id), "--as-of", "soon")
    assert bad_day.returncode == 2
    assert "not a YYYY-MM-DD date" in bad_day.stderr


def test_run_off_close_and_reports_from_the_cli(database_url: str, db: Conn) -> None:
    maker, bank = f"maker-{secrets.token_hex(3)}", f"bank-{secrets.token_hex(3)}"
    registry_store.add_org(db, maker, "manufacturer")
    registry_store.add_org(db, bank, "financier")
    line = ok(database_url, "line", "open", bank, maker, "--limit", "1000", "--currency", "CNY")
    lot = f"https://id.gs1.org/01/09506000134352/10/RO-{secrets.token_hex(3)}"
    db.execute("INSERT INTO lots (lot_uri, gtin, lot) VALUES (%s, '09506000134352', 'x')", (lot,))
    loan = credit.add_loan(db, line["id"], lot, None, 2500, "CNY", repayments.DEFAULT_TERMS)  # type: ignore[index]
    credit.move_money(db, line["id"], "drawdown", 2500)  # type: ignore[index]
    ran = ok(database_url, "programme", "run-off", "--financier", bank, "--reason", "exit")
    assert ran["financier"] == bank  # type: ignore[index]
    raised = tracefin(
        database_url, "line", "open", bank, maker, "--limit", "2000", "--currency", "CNY"
    )
    assert raised.returncode == 2
    assert "tracefin: programme_in_run_off:" in raised.stderr
    # The run-off report, as JSON and as CSV: the one loan still owing.
    [row] = ok(database_url, "report", "runoff", "--financier", bank)  # type: ignore[misc]
    assert (row["loan"], row["owed_minor"]) == (loan.id, 2500)
    as_csv = tracefin(database_url, "report", "runoff", "--financier", bank, "--csv")
    assert as_csv.returncode == 0, as_csv.stderr
    header, line_1 = as_csv.stdout.splitlines()
    assert header.split(",")[:3] == ["loan", "financier", "borrower"]
    assert line_1.split(",")[:3] == [str(loan.id), bank, maker]
    unsettled = tracefin(database_url, "line", "close", bank, str(line["id"]))  # type: ignore[index]
    assert unsettled.returncode == 2
    assert "tracefin: line_not_settled:" in unsettled.stderr
    ok(database_url, "loan", "repay", str(loan.id), "25.00")
    closed = ok(database_url, "line", "close", bank, str(line["id"]))  # type: ignore[index]
    assert closed["status"] == "closed"  # type: ignore[index]
    assert ok(database_url, "report", "runoff", "--financier", bank) == []
