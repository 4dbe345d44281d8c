"""One seeded world for the API tests: organisations with keys, anchored lots, a pledge."""

from __future__ import annotations

from finance import pledges, service
from finance.journal_seal import DEVELOPMENT_KEY
from finance.pledges import PledgeRegistry
from finance.store import credit
from finance.store.journal import Journal
from finance.worker import FinanceConfig, FinanceWorker
from ledger.anchoring import anchor_everything
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from records import registry_store
from records.db import Conn
from tests.support.events import store_events
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import (
    COMPANY_PREFIX,
    ITEMS_PER_LOT,
    WAREHOUSE_GLN,
    gtin_for,
    register_sim_sites,
)

# The journal the tests write and audit with: the key every process uses outside production.
JOURNAL = Journal(DEVELOPMENT_KEY)

WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
GTIN = gtin_for(0)
ITEM = f"/01/{GTIN}/21/0000000000"
LOT = f"/01/{GTIN}/10/L0000000"
LOT_URI = f"https://id.gs1.org{LOT}"
# A pledge the seeds record before the lot's events arrive covers the units they will bring.
EVERY_UNIT = ITEMS_PER_LOT
# `maker` holds the GS1 Company Prefix of the world's goods (it registers their product).
ORGS = (
    ("maker", "manufacturer"),
    ("rival", "manufacturer"),
    ("bank", "financier"),
    ("other-bank", "financier"),
    ("regulator", "regulator"),
)


def seed_world(conn: Conn, chain_rpc_url: str) -> tuple[dict[str, str], list[bytes]]:
    """Two lots of `maker` through all five stages, anchored; lot 0 pledged to `bank`.

    Returns the API key of every organisation and the digests of the stored events.
    """
    keys = {slug: registry_store.add_org(conn, slug, role)[1] for slug, role in ORGS}
    registry_store.add_prefix(conn, "maker", COMPANY_PREFIX)
    digests = store_events(conn, 14, "maker")
    register_sim_sites(conn, "maker")  # its devices' custody, delivery and sale events count
    service.add_product(conn, JOURNAL, "maker", GTIN, "Frozen dumplings", "frozen", "12.50", "CNY")
    service.add_warehouse(conn, JOURNAL, "maker", WAREHOUSE, "Cold store")
    service.supervise(conn, JOURNAL, "bank", WAREHOUSE)
    service.set_price(conn, JOURNAL, "bank", GTIN, "12.50", "CNY")
    deployment = ensure_deployment(conn, connect(chain_rpc_url), DEVNET_PRIVATE_KEY).deployment
    chain = Chain(connect(chain_rpc_url), deployment.anchor_address, None, DEVNET_PRIVATE_KEY)
    anchor_everything(conn, chain, deployment.id)
    # The finance worker's view of the lots, so goods status has something to show.
    FinanceWorker("unused", FinanceConfig(), JOURNAL).apply_next_chunk(conn)
    line = service.open_line(conn, JOURNAL, "bank", "maker", "1000.00", "CNY")
    # Pledged as service.pledge would (on chain, then the row and its journal entry), though
    # the lot has left the warehouse by now: the audit compares all three.
    bank = registry_store.get_org(conn, "bank")
    assert bank is not None
    registry = PledgeRegistry(
        Chain(
            connect(chain_rpc_url),
            deployment.anchor_address,
            deployment.pledge_address,
            DEVNET_PRIVATE_KEY,
        )
    )
    key = pledges.lot_key(LOT_URI)
    tx = registry.pledge(key, pledges.org_address(bank), bytes(32))
    credit.add_pledge(conn, LOT_URI, line.id, key, WAREHOUSE, tx, EVERY_UNIT)
    JOURNAL.write(
        conn,
        "bank",
        "pledged",
        LOT_URI,
        {"line": line.id, "lot_key": "0x" + key.hex(), "tx": "0x" + tx.hex()},
    )
    return keys, digests
