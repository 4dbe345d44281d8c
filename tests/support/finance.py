"""Finance rigs: a seeded financing set-up and a snapshot of everything the worker decides."""

from __future__ import annotations

from epcis.identifiers import lot_uri
from finance import service
from finance.store import credit
from records import registry_store
from records.db import Conn
from tests.support.world import EVERY_UNIT, JOURNAL, WAREHOUSE
from tracefin.simulate import gtin_for, register_sim_sites


def snapshot(conn: Conn) -> dict[str, object]:
    """Everything the worker decides, without ids and wall-clock times."""
    queries = {
        "cursor": "SELECT next_index FROM log_cursors",
        "lots": "SELECT lot_uri, quantity, location, custody, best_before, recalled,"
        " last_inspection_disposition, last_inspection_hash, updated_log_index FROM lots"
        " ORDER BY lot_uri",
        "members": "SELECT epc, lot_uri FROM lot_members ORDER BY epc",
        "evidence": "SELECT lot_uri, log_index, event_hash FROM lot_evidence ORDER BY 1, 2",
        "flags": "SELECT lot_uri, line_id, kind, detail FROM risk_flags ORDER BY 1, 3",
        "lines": "SELECT id, status, drawn_minor FROM credit_lines ORDER BY id",
        "movements": "SELECT line_id, kind, amount_minor FROM line_movements ORDER BY 1, 2, 3",
        "receivables": "SELECT lot_uri, purchase_order, amount_minor, advance_minor"
        " FROM receivables ORDER BY 1",
        "journal": "SELECT actor, action, subject, detail::text, log_index FROM finance_journal"
        " WHERE log_index IS NOT NULL ORDER BY log_index, action, subject",
    }
    return {name: conn.execute(query).fetchall() for name, query in queries.items()}  # type: ignore[arg-type]


def seed_finance(conn: Conn, org: str, lots: int, pledged: range) -> None:
    """A bank supervising `org`'s warehouse, a product per lot, a line, and `pledged` lots
    pledged on it (in the database only). `org` holds the goods' prefix (`store_events`)."""
    registry_store.add_org(conn, "bank", "financier")
    register_sim_sites(conn, org)
    service.add_warehouse(conn, JOURNAL, org, WAREHOUSE, "Cold store")
    service.supervise(conn, JOURNAL, "bank", WAREHOUSE)
    for number in range(lots):
        service.add_product(
            conn, JOURNAL, org, gtin_for(number), f"P{number}", "frozen", "2.00", "CNY"
        )
        service.set_price(conn, JOURNAL, "bank", gtin_for(number), "2.00", "CNY")
    line = service.open_line(conn, JOURNAL, "bank", org, "100.00", "CNY")
    for number in pledged:
        uri = lot_uri(gtin_for(number), f"L{number:07d}")
        conn.execute(
            "INSERT INTO lots (lot_uri, gtin, lot) VALUES (%s, %s, %s)",
            (uri, gtin_for(number), f"L{number:07d}"),
        )
        credit.add_pledge(
            conn, uri, line.id, number.to_bytes(32, "big"), WAREHOUSE, b"", EVERY_UNIT
        )
