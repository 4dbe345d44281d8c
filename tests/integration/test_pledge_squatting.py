"""PledgeRegistry squatting (issue 17, item 3): lot keys are predictable, so only the operator and
registered financiers may pledge; the operator clears a squatted or stale key, journaled; and a
registry of an older build is replaced with its live pledges restored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_account import Account
from eth_hash.auto import keccak

from finance import service
from finance.errors import FinanceError
from finance.pledges import (
    PledgeRegistry,
    checksum,
    clear_pledge_key,
    deploy_and_restore,
    lot_key,
    org_address,
)
from finance.store import credit
from ledger import log_store
from ledger.chain import Chain, ChainReverted, code_hash, connect, deploy, identity
from ledger.contracts import PLEDGE_REGISTRY, TRACE_ANCHOR
from ledger.deployment import current_chain
from records import registry_store
from tests.support.api import Api
from tests.support.cli import tracefin_only
from tests.support.world import JOURNAL, LOT_URI, WAREHOUSE
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import gtin_for

pytestmark = pytest.mark.integration
LOT_1 = f"/01/{gtin_for(1)}/10/L0000001"
LOT_1_URI = f"https://id.gs1.org{LOT_1}"
NOT_YET_A_LOT = f"https://id.gs1.org/01/{gtin_for(1)}/10/L0000099"
FINANCIER_ROLE = keccak(b"FINANCIER_ROLE")
# PledgeRegistry and TraceAnchor as first deployed (git: contracts/artifacts before version 2).
VERSION_1 = Path(__file__).resolve().parents[1] / "fixtures" / "contracts-v1"


def funded_account(api: Api) -> str:
    """A fresh account with ether and no role: anyone with a wallet."""
    account = Account.create()
    connect(api.chain_rpc_url).provider.make_request(
        "anvil_setBalance", [account.address, hex(10**20)]
    )
    return "0x" + bytes(account.key).hex()


def chain_of(api: Api, private_key: str = DEVNET_PRIVATE_KEY) -> Chain:
    """The world's current deployment, transactions signed by `private_key` (the operator's)."""
    chain = current_chain(api.conn, connect(api.chain_rpc_url), private_key)
    assert chain is not None
    return chain


def registry_as(api: Api, private_key: str) -> PledgeRegistry:
    """The world's current PledgeRegistry, called from `private_key`'s account."""
    return PledgeRegistry(chain_of(api, private_key))


def address_of(private_key: str) -> str:
    return str(Account.from_key(private_key).address)


def bank_address(api: Api) -> str:
    bank = registry_store.get_org(api.conn, "bank")
    assert bank is not None
    return checksum(org_address(bank))


@pytest.fixture
def warehouse_world(world: Api) -> Api:
    """The world with its lots back in the supervised warehouse: `bank` may pledge lot 1."""
    world.conn.execute(
        "UPDATE lots SET custody = 'warehouse', location = %s, held_at = NULL", (WAREHOUSE,)
    )
    service.add_product(world.conn, JOURNAL, "maker", gtin_for(1), "Buns", "frozen", "12.50", "CNY")
    return world


def test_an_account_without_a_role_cannot_pledge_any_lot_key(warehouse_world: Api) -> None:
    """The attack: an account holding no role pledges the predictable keys of a lot that
    exists and of one that does not exist yet. Refused; the bank then pledges lot 1."""
    squatter_key = funded_account(warehouse_world)
    squatter = registry_as(warehouse_world, squatter_key)
    for lot in (LOT_1_URI, NOT_YET_A_LOT):
        with pytest.raises(ChainReverted) as refused:
            squatter.pledge(lot_key(lot), address_of(squatter_key), bytes(32))
        assert refused.value.error == "NotRegisteredFinancier"
        assert squatter.pledgee(lot_key(lot)) is None
        # Nor in a bank's name: only the operator pledges for someone else.
        with pytest.raises(ChainReverted) as refused:
            squatter.pledge(lot_key(lot), bank_address(warehouse_world), bytes(32))
        assert refused.value.error == "NotFinancierOrOperator"
    pledged = warehouse_world.call("POST", f"/v1/pledges{LOT_1}", "bank")
    assert pledged.status_code == 200, pledged.text
    assert squatter.pledgee(lot_key(LOT_1_URI)) == bank_address(warehouse_world)


def test_the_operator_clears_a_squatted_key_and_the_bank_pledges(
    warehouse_world: Api, tmp_path: Path
) -> None:
    """A registered financier's account turned rogue squats lot 1: the bank's pledge is refused
    `double_pledge`; `tracefin chain clear-pledge` releases it, journaled; the bank pledges."""
    world = warehouse_world
    operator = registry_as(world, DEVNET_PRIVATE_KEY)
    rogue_key = funded_account(world)
    chain = chain_of(world)
    registry_contract = chain.contract(PLEDGE_REGISTRY, chain.pledge_address or "")
    chain.transact(
        registry_contract.functions.grantRole(FINANCIER_ROLE, address_of(rogue_key)),
        registry_contract,
    )
    rogue = registry_as(world, rogue_key)
    rogue.pledge(lot_key(LOT_1_URI), address_of(rogue_key), bytes(32))

    refused = world.call("POST", f"/v1/pledges{LOT_1}", "bank")
    assert (refused.status_code, refused.json()["code"]) == (409, "double_pledge"), refused.text

    env = {
        "TRACEFIN_DATABASE_URL": str(world.conn.info.dsn),
        "TRACEFIN_CHAIN_RPC_URL": world.chain_rpc_url,
    }
    # This ledger's own live pledge (lot 0, to `bank`) is not the operator's to clear, and a
    # key nobody holds is nothing to clear.
    for lot, code in ((LOT_URI, "our_live_pledge"), (NOT_YET_A_LOT, "not_pledged")):
        with pytest.raises(FinanceError) as refused_clear:
            clear_pledge_key(world.conn, JOURNAL, chain_of(world), lot, "probe")
        assert refused_clear.value.code == code
    assert operator.pledgee(lot_key(LOT_URI)) == bank_address(world)

    cleared = tracefin_only(
        "chain", "clear-pledge", LOT_1_URI, "--reason", "squatted by 0xrogue", env=env, cwd=tmp_path
    )
    assert cleared.returncode == 0, cleared.stderr
    result: dict[str, Any] = orjson.loads(cleared.stdout)
    assert result["released_pledgee"] == address_of(rogue_key)
    assert operator.pledgee(lot_key(LOT_1_URI)) is None
    entry = world.conn.execute(
        "SELECT actor, detail FROM finance_journal WHERE action = 'pledge_key_cleared'"
        " AND subject = %s",
        (LOT_1_URI,),
    ).fetchall()
    assert [(actor, detail["reason"], detail["pledgee"]) for actor, detail in entry] == [
        ("operator", "squatted by 0xrogue", address_of(rogue_key))
    ]
    pledged = world.call("POST", f"/v1/pledges{LOT_1}", "bank")
    assert pledged.status_code == 200, pledged.text
    assert operator.pledgee(lot_key(LOT_1_URI)) == bank_address(world)


def test_an_older_registry_is_replaced_and_its_live_pledges_restored(world: Api) -> None:
    """A deployment of version 1 contracts (where anyone could pledge any key, and someone
    squatted lot 1): `chain deploy` replaces it with this build's, puts lot 0's live pledge to
    `bank` on the new registry, and the squat does not carry over."""
    w3 = connect(world.chain_rpc_url)
    anchor_v1, block = deploy(w3, DEVNET_PRIVATE_KEY, TRACE_ANCHOR, VERSION_1)
    registry_v1, _ = deploy(w3, DEVNET_PRIVATE_KEY, PLEDGE_REGISTRY, VERSION_1)
    seen = identity(w3)
    with world.conn.transaction():
        old = log_store.record_deployment(
            world.conn,
            chain_id=seen.chain_id,
            genesis_hash=seen.genesis_hash,
            anchor_address=anchor_v1,
            pledge_address=registry_v1,
            anchor_code_hash=code_hash(w3, anchor_v1),
            pledge_code_hash=code_hash(w3, registry_v1),
            deployed_block=block,
        )
    on_v1 = PledgeRegistry(Chain(w3, anchor_v1, registry_v1, DEVNET_PRIVATE_KEY))
    on_v1.pledge(lot_key(LOT_URI), bank_address(world), bytes(32))
    squatter_key = funded_account(world)
    # The attack worked on version 1: no role needed.
    PledgeRegistry(Chain(w3, anchor_v1, registry_v1, squatter_key)).pledge(
        lot_key(LOT_1_URI), address_of(squatter_key), bytes(32)
    )
    assert on_v1.pledgee(lot_key(LOT_1_URI)) == address_of(squatter_key)
    assert credit.live_pledge(world.conn, LOT_URI) is not None

    deployed = deploy_and_restore(world.conn, JOURNAL, w3, DEVNET_PRIVATE_KEY)

    outcome = deployed.outcome
    assert (outcome.created, outcome.upgraded) == (True, True)
    assert outcome.replaced is not None
    assert outcome.replaced.id == old.id
    assert deployed.pledges.restored == [LOT_URI]
    current = registry_as(world, DEVNET_PRIVATE_KEY)
    assert current.address == outcome.deployment.pledge_address != registry_v1
    assert current.pledgee(lot_key(LOT_URI)) == bank_address(world)
    assert current.pledgee(lot_key(LOT_1_URI)) is None
    # Run again: this build's deployment is reused, nothing more to restore.
    again = deploy_and_restore(world.conn, JOURNAL, w3, DEVNET_PRIVATE_KEY)
    assert (again.outcome.created, again.pledges.restored) == (False, [])
