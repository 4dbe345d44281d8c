"""TraceAnchor and PledgeRegistry on a real anvil: every revert path, every event, access control.

Each test deploys fresh contracts from the committed artifacts. Reverts are checked twice: the
custom error (selector and decoded arguments) from `eth_call`, and a mined transaction with a
fixed gas limit that must fail with no logs. Events are checked as the exact, ordered list of logs
a transaction emitted, raw topics included where verifiers depend on them.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_hash.auto import keccak
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError
from web3.types import TxReceipt

from ledger.contracts import PLEDGE_REGISTRY, TRACE_ANCHOR, load_artifact

pytestmark = pytest.mark.integration

DEFAULT_ADMIN_ROLE = bytes(32)
ANCHORER_ROLE = keccak(b"ANCHORER_ROLE")
OPERATOR_ROLE = keccak(b"OPERATOR_ROLE")
FINANCIER_ROLE = keccak(b"FINANCIER_ROLE")
BATCH_ANCHORED_TOPIC = keccak(b"BatchAnchored(uint64,bytes32,uint64,uint32)")
ZERO_ADDRESS = "0x" + "00" * 20


def root(n: int) -> bytes:
    """A distinct, non-zero stand-in for a Merkle root."""
    return keccak(b"root-%d" % n)


def lot(name: str) -> bytes:
    return keccak(name.encode())


@pytest.fixture(scope="module")
def w3(chain_rpc_url: str) -> Web3:
    web3 = Web3(Web3.HTTPProvider(chain_rpc_url, request_kwargs={"timeout": 30}))
    assert web3.is_connected(), f"no chain at {chain_rpc_url}"
    return web3


@pytest.fixture(scope="module")
def accounts(w3: Web3) -> list[ChecksumAddress]:
    unlocked = list(w3.eth.accounts)
    assert len(unlocked) >= 5, "the chain must expose at least 5 unlocked dev accounts"
    return unlocked


@pytest.fixture(scope="module")
def deployer(accounts: list[ChecksumAddress]) -> ChecksumAddress:
    return accounts[0]


@pytest.fixture(scope="module")
def stranger(accounts: list[ChecksumAddress]) -> ChecksumAddress:
    return accounts[1]


@pytest.fixture(scope="module")
def bank_a(accounts: list[ChecksumAddress]) -> ChecksumAddress:
    return accounts[2]


@pytest.fixture(scope="module")
def bank_b(accounts: list[ChecksumAddress]) -> ChecksumAddress:
    return accounts[3]


@pytest.fixture(scope="module")
def helper(accounts: list[ChecksumAddress]) -> ChecksumAddress:
    """An account that is given roles during a test."""
    return accounts[4]


def deploy(w3: Web3, name: str, deployer: ChecksumAddress) -> tuple[Contract, TxReceipt]:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor().transact({"from": deployer})
    )
    assert receipt["status"] == 1
    address = receipt["contractAddress"]
    assert address is not None
    assert w3.eth.get_code(address) == HexBytes(artifact.deployed_bytecode)
    return w3.eth.contract(address=address, abi=artifact.abi), receipt


@pytest.fixture
def anchor(w3: Web3, deployer: ChecksumAddress) -> Contract:
    return deploy(w3, TRACE_ANCHOR, deployer)[0]


@pytest.fixture
def registry(
    w3: Web3, deployer: ChecksumAddress, bank_a: ChecksumAddress, bank_b: ChecksumAddress
) -> Contract:
    """A registry whose admin registered two banks as financiers (they pledge for themselves)."""
    registry = deploy(w3, PLEDGE_REGISTRY, deployer)[0]
    for bank in (bank_a, bank_b):
        send(w3, registry.functions.grantRole(FINANCIER_ROLE, bank), deployer)
    return registry


def send(w3: Web3, call: ContractFunction, sender: ChecksumAddress) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": sender}))
    assert receipt["status"] == 1
    return receipt


def events(contract: Contract, receipt: TxReceipt) -> list[tuple[str, dict[str, Any]]]:
    """Every log of the receipt, in order, as (event name, decoded args); all from `contract`."""
    by_topic = {
        keccak(f"{e['name']}({','.join(i['type'] for i in e['inputs'])})".encode()): e["name"]
        for e in contract.abi
        if e["type"] == "event"
    }
    decoded = []
    for log in receipt["logs"]:
        assert log["address"] == contract.address
        name = by_topic[bytes(log["topics"][0])]
        decoded.append((name, dict(contract.events[name]().process_log(log)["args"])))
    return decoded


def expect_revert(
    w3: Web3,
    contract: Contract,
    call: ContractFunction,
    sender: ChecksumAddress,
    error: str,
    *args: object,
    mined: bool = True,
) -> None:
    """`call` from `sender` reverts with custom `error(*args)`; if `mined`, as a transaction too."""
    (abi,) = [e for e in contract.abi if e["type"] == "error" and e["name"] == error]
    types = [i["type"] for i in abi["inputs"]]
    selector = keccak(f"{error}({','.join(types)})".encode())[:4]

    with pytest.raises(ContractCustomError) as raised:
        call.call({"from": sender})
    data = HexBytes(raised.value.data)
    assert data[:4] == selector, f"expected {error}, got selector {data[:4].hex()}"
    decoded = tuple(
        Web3.to_checksum_address(value) if kind == "address" else value
        for kind, value in zip(types, w3.codec.decode(types, data[4:]), strict=True)
    )
    assert decoded == args

    if mined:
        # A fixed gas limit skips estimation, so the node mines the failing transaction.
        tx = call.transact({"from": sender, "gas": 500_000})
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 0
        assert receipt["logs"] == []


# --- TraceAnchor -------------------------------------------------------------------------------


def test_deployer_is_admin_and_anchorer_of_an_empty_anchor(
    w3: Web3, deployer: ChecksumAddress, stranger: ChecksumAddress
) -> None:
    anchor, receipt = deploy(w3, TRACE_ANCHOR, deployer)
    assert events(anchor, receipt) == [
        ("RoleGranted", {"role": DEFAULT_ADMIN_ROLE, "account": deployer, "sender": deployer}),
        ("RoleGranted", {"role": ANCHORER_ROLE, "account": deployer, "sender": deployer}),
    ]
    assert anchor.functions.DEFAULT_ADMIN_ROLE().call() == DEFAULT_ADMIN_ROLE
    assert anchor.functions.ANCHORER_ROLE().call() == ANCHORER_ROLE
    assert anchor.functions.VERSION().call() == 1
    assert anchor.functions.hasRole(DEFAULT_ADMIN_ROLE, deployer).call()
    assert anchor.functions.hasRole(ANCHORER_ROLE, deployer).call()
    assert not anchor.functions.hasRole(ANCHORER_ROLE, stranger).call()
    assert not anchor.functions.hasRole(DEFAULT_ADMIN_ROLE, stranger).call()
    assert anchor.functions.batchCount().call() == 0
    assert anchor.functions.nextIndex().call() == 0


def test_batches_get_sequential_ids_and_are_stored_with_their_block(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress
) -> None:
    first_index = 0
    for batch_id, count in enumerate([3, 1, 4]):
        call = anchor.functions.anchorBatch(first_index, count, root(batch_id))
        assert call.call({"from": deployer}) == batch_id
        receipt = send(w3, call, deployer)
        assert events(anchor, receipt) == [
            (
                "BatchAnchored",
                {
                    "batchId": batch_id,
                    "root": root(batch_id),
                    "firstIndex": first_index,
                    "count": count,
                },
            )
        ]
        block = w3.eth.get_block(receipt["blockNumber"])
        assert anchor.functions.batch(batch_id).call() == (
            root(batch_id),
            first_index,
            count,
            receipt["blockNumber"],
            block["timestamp"],
        )
        first_index += count
        assert anchor.functions.batchCount().call() == batch_id + 1
        assert anchor.functions.nextIndex().call() == first_index
    assert first_index == 8
    # Earlier batches are untouched by later ones.
    assert anchor.functions.batch(0).call()[:3] == (root(0), 0, 3)
    assert anchor.functions.batch(1).call()[:3] == (root(1), 3, 1)


def test_batch_anchored_log_has_the_declared_layout(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress
) -> None:
    """What an independent verifier reads: topics [sig, batchId, root], data (firstIndex, count)."""
    send(w3, anchor.functions.anchorBatch(0, 2, root(0)), deployer)
    receipt = send(w3, anchor.functions.anchorBatch(2, 70_000, root(1)), deployer)
    (log,) = receipt["logs"]
    assert [bytes(topic) for topic in log["topics"]] == [
        BATCH_ANCHORED_TOPIC,
        (1).to_bytes(32, "big"),
        root(1),
    ]
    assert bytes(log["data"]) == encode(["uint64", "uint32"], [2, 70_000])


def test_first_index_must_be_the_next_unanchored_position(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress
) -> None:
    fn = anchor.functions.anchorBatch
    expect_revert(w3, anchor, fn(1, 1, root(0)), deployer, "UnexpectedFirstIndex", 0, 1)
    send(w3, fn(0, 3, root(0)), deployer)
    # A rewrite of anchored positions, an overlap, and a gap.
    expect_revert(w3, anchor, fn(0, 3, root(1)), deployer, "UnexpectedFirstIndex", 3, 0)
    expect_revert(w3, anchor, fn(2, 5, root(1)), deployer, "UnexpectedFirstIndex", 3, 2)
    expect_revert(w3, anchor, fn(4, 1, root(1)), deployer, "UnexpectedFirstIndex", 3, 4)
    expect_revert(
        w3, anchor, fn(2**64 - 1, 1, root(1)), deployer, "UnexpectedFirstIndex", 3, 2**64 - 1
    )
    assert anchor.functions.batchCount().call() == 1
    assert anchor.functions.nextIndex().call() == 3


def test_empty_batches_and_zero_roots_are_refused(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress
) -> None:
    fn = anchor.functions.anchorBatch
    expect_revert(w3, anchor, fn(0, 0, root(0)), deployer, "EmptyBatch")
    expect_revert(w3, anchor, fn(0, 1, bytes(32)), deployer, "ZeroRoot")
    send(w3, fn(0, 1, root(0)), deployer)
    expect_revert(w3, anchor, fn(1, 0, root(1)), deployer, "EmptyBatch")
    expect_revert(w3, anchor, fn(1, 2, bytes(32)), deployer, "ZeroRoot")
    assert anchor.functions.batchCount().call() == 1


def test_reading_an_unknown_batch_reverts(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress
) -> None:
    expect_revert(w3, anchor, anchor.functions.batch(0), deployer, "UnknownBatch", 0, mined=False)
    send(w3, anchor.functions.anchorBatch(0, 1, root(0)), deployer)
    send(w3, anchor.functions.anchorBatch(1, 1, root(1)), deployer)
    assert anchor.functions.batch(1).call()[0] == root(1)
    for missing in (2, 3, 2**64 - 1):
        expect_revert(
            w3,
            anchor,
            anchor.functions.batch(missing),
            deployer,
            "UnknownBatch",
            missing,
            mined=False,
        )


def test_batch_of_finds_every_position_including_boundaries(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress
) -> None:
    batch_of = anchor.functions.batchOf
    expect_revert(w3, anchor, batch_of(0), deployer, "PositionNotAnchored", 0, 0, mined=False)

    counts = [1, 3, 2, 5, 1, 1, 7, 4, 2]
    expected: list[int] = []
    for batch_id, count in enumerate(counts):
        send(w3, anchor.functions.anchorBatch(len(expected), count, root(batch_id)), deployer)
        expected += [batch_id] * count
    total = len(expected)
    assert anchor.functions.nextIndex().call() == total == 26

    assert [batch_of(position).call() for position in range(total)] == expected
    for position in (total, total + 1, 2**64 - 1):
        expect_revert(
            w3,
            anchor,
            batch_of(position),
            deployer,
            "PositionNotAnchored",
            position,
            total,
            mined=False,
        )


def test_batch_of_with_a_single_batch(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress
) -> None:
    send(w3, anchor.functions.anchorBatch(0, 4, root(0)), deployer)
    assert [anchor.functions.batchOf(p).call() for p in range(4)] == [0, 0, 0, 0]
    expect_revert(
        w3, anchor, anchor.functions.batchOf(4), deployer, "PositionNotAnchored", 4, 4, mined=False
    )


def test_only_anchorers_can_anchor(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress, stranger: ChecksumAddress
) -> None:
    expect_revert(
        w3,
        anchor,
        anchor.functions.anchorBatch(0, 1, root(0)),
        stranger,
        "AccessControlUnauthorizedAccount",
        stranger,
        ANCHORER_ROLE,
    )
    # Access is checked before the arguments: a stranger learns nothing about the log.
    expect_revert(
        w3,
        anchor,
        anchor.functions.anchorBatch(5, 0, bytes(32)),
        stranger,
        "AccessControlUnauthorizedAccount",
        stranger,
        ANCHORER_ROLE,
    )
    assert anchor.functions.batchCount().call() == 0


def test_admin_grants_and_revokes_the_anchorer_role(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress, helper: ChecksumAddress
) -> None:
    receipt = send(w3, anchor.functions.grantRole(ANCHORER_ROLE, helper), deployer)
    assert events(anchor, receipt) == [
        ("RoleGranted", {"role": ANCHORER_ROLE, "account": helper, "sender": deployer})
    ]
    assert anchor.functions.hasRole(ANCHORER_ROLE, helper).call()
    # Granting a held role changes nothing and emits nothing.
    assert (
        events(anchor, send(w3, anchor.functions.grantRole(ANCHORER_ROLE, helper), deployer)) == []
    )

    send(w3, anchor.functions.anchorBatch(0, 2, root(0)), helper)
    send(w3, anchor.functions.anchorBatch(2, 2, root(1)), deployer)

    receipt = send(w3, anchor.functions.revokeRole(ANCHORER_ROLE, helper), deployer)
    assert events(anchor, receipt) == [
        ("RoleRevoked", {"role": ANCHORER_ROLE, "account": helper, "sender": deployer})
    ]
    assert not anchor.functions.hasRole(ANCHORER_ROLE, helper).call()
    assert (
        events(anchor, send(w3, anchor.functions.revokeRole(ANCHORER_ROLE, helper), deployer)) == []
    )
    expect_revert(
        w3,
        anchor,
        anchor.functions.anchorBatch(4, 1, root(2)),
        helper,
        "AccessControlUnauthorizedAccount",
        helper,
        ANCHORER_ROLE,
    )
    assert anchor.functions.nextIndex().call() == 4


def test_non_admins_cannot_grant_or_revoke(
    w3: Web3,
    anchor: Contract,
    deployer: ChecksumAddress,
    stranger: ChecksumAddress,
    helper: ChecksumAddress,
) -> None:
    for role in (ANCHORER_ROLE, DEFAULT_ADMIN_ROLE):
        for call in (
            anchor.functions.grantRole(role, stranger),
            anchor.functions.revokeRole(role, deployer),
        ):
            expect_revert(
                w3,
                anchor,
                call,
                stranger,
                "AccessControlUnauthorizedAccount",
                stranger,
                DEFAULT_ADMIN_ROLE,
            )
    # Holding the anchorer role does not make one an admin.
    send(w3, anchor.functions.grantRole(ANCHORER_ROLE, helper), deployer)
    expect_revert(
        w3,
        anchor,
        anchor.functions.grantRole(ANCHORER_ROLE, stranger),
        helper,
        "AccessControlUnauthorizedAccount",
        helper,
        DEFAULT_ADMIN_ROLE,
    )
    assert not anchor.functions.hasRole(ANCHORER_ROLE, stranger).call()
    assert anchor.functions.hasRole(DEFAULT_ADMIN_ROLE, deployer).call()


def test_a_new_admin_can_grant_and_the_old_one_can_be_removed(
    w3: Web3,
    anchor: Contract,
    deployer: ChecksumAddress,
    stranger: ChecksumAddress,
    helper: ChecksumAddress,
) -> None:
    send(w3, anchor.functions.grantRole(DEFAULT_ADMIN_ROLE, helper), deployer)
    send(w3, anchor.functions.grantRole(ANCHORER_ROLE, stranger), helper)
    assert anchor.functions.hasRole(ANCHORER_ROLE, stranger).call()
    receipt = send(w3, anchor.functions.revokeRole(DEFAULT_ADMIN_ROLE, deployer), helper)
    assert events(anchor, receipt) == [
        ("RoleRevoked", {"role": DEFAULT_ADMIN_ROLE, "account": deployer, "sender": helper})
    ]
    expect_revert(
        w3,
        anchor,
        anchor.functions.revokeRole(ANCHORER_ROLE, stranger),
        deployer,
        "AccessControlUnauthorizedAccount",
        deployer,
        DEFAULT_ADMIN_ROLE,
    )


def test_an_account_can_renounce_its_own_role_only(
    w3: Web3, anchor: Contract, deployer: ChecksumAddress, stranger: ChecksumAddress
) -> None:
    expect_revert(
        w3,
        anchor,
        anchor.functions.renounceRole(ANCHORER_ROLE, deployer),
        stranger,
        "AccessControlBadConfirmation",
    )
    assert anchor.functions.hasRole(ANCHORER_ROLE, deployer).call()
    receipt = send(w3, anchor.functions.renounceRole(ANCHORER_ROLE, deployer), deployer)
    assert events(anchor, receipt) == [
        ("RoleRevoked", {"role": ANCHORER_ROLE, "account": deployer, "sender": deployer})
    ]
    assert not anchor.functions.hasRole(ANCHORER_ROLE, deployer).call()
    assert anchor.functions.hasRole(DEFAULT_ADMIN_ROLE, deployer).call()
    expect_revert(
        w3,
        anchor,
        anchor.functions.anchorBatch(0, 1, root(0)),
        deployer,
        "AccessControlUnauthorizedAccount",
        deployer,
        ANCHORER_ROLE,
    )
    # Renouncing a role one does not hold is a no-op.
    assert (
        events(anchor, send(w3, anchor.functions.renounceRole(ANCHORER_ROLE, stranger), stranger))
        == []
    )


# --- PledgeRegistry ----------------------------------------------------------------------------


def test_deployer_is_admin_and_operator_of_an_empty_registry(
    w3: Web3, deployer: ChecksumAddress, bank_a: ChecksumAddress
) -> None:
    registry, receipt = deploy(w3, PLEDGE_REGISTRY, deployer)
    assert events(registry, receipt) == [
        ("RoleGranted", {"role": DEFAULT_ADMIN_ROLE, "account": deployer, "sender": deployer}),
        ("RoleGranted", {"role": OPERATOR_ROLE, "account": deployer, "sender": deployer}),
    ]
    assert registry.functions.OPERATOR_ROLE().call() == OPERATOR_ROLE
    assert registry.functions.FINANCIER_ROLE().call() == FINANCIER_ROLE
    assert registry.functions.VERSION().call() == 2
    assert not registry.functions.hasRole(FINANCIER_ROLE, bank_a).call()
    assert registry.functions.hasRole(OPERATOR_ROLE, deployer).call()
    assert not registry.functions.hasRole(OPERATOR_ROLE, bank_a).call()
    assert registry.functions.isPledged(lot("any")).call() is False
    assert registry.functions.pledgeOf(lot("any")).call() == (ZERO_ADDRESS, bytes(32), 0)


def test_a_financier_pledges_for_itself(
    w3: Web3, registry: Contract, bank_a: ChecksumAddress
) -> None:
    evidence = keccak(b"evidence-1")
    receipt = send(w3, registry.functions.pledge(lot("L1"), bank_a, evidence), bank_a)
    assert events(registry, receipt) == [
        ("Pledged", {"lotKey": lot("L1"), "financier": bank_a, "evidence": evidence})
    ]
    (log,) = receipt["logs"]
    assert [bytes(t) for t in log["topics"]] == [
        keccak(b"Pledged(bytes32,address,bytes32)"),
        lot("L1"),
        bytes(12) + bytes.fromhex(bank_a[2:]),
    ]
    timestamp = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert registry.functions.pledgeOf(lot("L1")).call() == (bank_a, evidence, timestamp)
    assert registry.functions.isPledged(lot("L1")).call() is True
    assert registry.functions.isPledged(lot("L2")).call() is False


def test_the_operator_pledges_on_a_financiers_behalf(
    w3: Web3, registry: Contract, deployer: ChecksumAddress, bank_a: ChecksumAddress
) -> None:
    receipt = send(w3, registry.functions.pledge(lot("L1"), bank_a, bytes(32)), deployer)
    assert events(registry, receipt) == [
        ("Pledged", {"lotKey": lot("L1"), "financier": bank_a, "evidence": bytes(32)})
    ]
    assert registry.functions.pledgeOf(lot("L1")).call()[0] == bank_a


def test_only_the_financier_or_an_operator_can_pledge(
    w3: Web3,
    registry: Contract,
    deployer: ChecksumAddress,
    stranger: ChecksumAddress,
    bank_a: ChecksumAddress,
    bank_b: ChecksumAddress,
) -> None:
    pledge = registry.functions.pledge
    expect_revert(
        w3,
        registry,
        pledge(lot("L1"), bank_a, bytes(32)),
        stranger,
        "NotFinancierOrOperator",
        stranger,
        bank_a,
    )
    # Squatting: lot keys are predictable, and an account nobody registered cannot take one
    # for itself; once the admin registers it as a financier it can, until revoked.
    expect_revert(
        w3,
        registry,
        pledge(lot("L1"), stranger, bytes(32)),
        stranger,
        "NotRegisteredFinancier",
        stranger,
    )
    send(w3, registry.functions.grantRole(FINANCIER_ROLE, stranger), deployer)
    send(w3, pledge(lot("L9"), stranger, bytes(32)), stranger)
    send(w3, registry.functions.revokeRole(FINANCIER_ROLE, stranger), deployer)
    expect_revert(
        w3,
        registry,
        pledge(lot("L8"), stranger, bytes(32)),
        stranger,
        "NotRegisteredFinancier",
        stranger,
    )
    # A bank cannot pledge a lot to another bank.
    expect_revert(
        w3,
        registry,
        pledge(lot("L1"), bank_a, bytes(32)),
        bank_b,
        "NotFinancierOrOperator",
        bank_b,
        bank_a,
    )
    assert registry.functions.isPledged(lot("L1")).call() is False
    # An operator role granted later works, and stops working when revoked.
    send(w3, registry.functions.grantRole(OPERATOR_ROLE, stranger), deployer)
    send(w3, pledge(lot("L1"), bank_a, bytes(32)), stranger)
    send(w3, registry.functions.revokeRole(OPERATOR_ROLE, stranger), deployer)
    expect_revert(
        w3,
        registry,
        pledge(lot("L2"), bank_a, bytes(32)),
        stranger,
        "NotFinancierOrOperator",
        stranger,
        bank_a,
    )


def test_the_zero_address_cannot_be_a_pledgee(
    w3: Web3, registry: Contract, deployer: ChecksumAddress, stranger: ChecksumAddress
) -> None:
    for sender in (deployer, stranger):
        expect_revert(
            w3,
            registry,
            registry.functions.pledge(lot("L1"), ZERO_ADDRESS, bytes(32)),
            sender,
            "ZeroFinancier",
        )


def test_a_pledged_lot_cannot_be_pledged_again(
    w3: Web3,
    registry: Contract,
    deployer: ChecksumAddress,
    bank_a: ChecksumAddress,
    bank_b: ChecksumAddress,
) -> None:
    pledge = registry.functions.pledge
    send(w3, pledge(lot("L1"), bank_a, keccak(b"a")), bank_a)
    for call, sender in [
        (pledge(lot("L1"), bank_b, keccak(b"b")), bank_b),  # another bank, double pledging
        (pledge(lot("L1"), bank_b, keccak(b"b")), deployer),  # nor through the operator
        (pledge(lot("L1"), bank_a, keccak(b"a")), bank_a),  # nor the same bank twice
    ]:
        expect_revert(w3, registry, call, sender, "AlreadyPledged", lot("L1"), bank_a)
    assert registry.functions.pledgeOf(lot("L1")).call()[:2] == (bank_a, keccak(b"a"))
    # Other lots are independent.
    send(w3, pledge(lot("L2"), bank_b, keccak(b"b")), bank_b)
    assert registry.functions.pledgeOf(lot("L2")).call()[0] == bank_b


def test_the_pledgee_releases(w3: Web3, registry: Contract, bank_a: ChecksumAddress) -> None:
    send(w3, registry.functions.pledge(lot("L1"), bank_a, keccak(b"a")), bank_a)
    receipt = send(w3, registry.functions.release(lot("L1")), bank_a)
    assert events(registry, receipt) == [
        ("Released", {"lotKey": lot("L1"), "financier": bank_a, "releasedBy": bank_a})
    ]
    (log,) = receipt["logs"]
    assert [bytes(t) for t in log["topics"]] == [
        keccak(b"Released(bytes32,address,address)"),
        lot("L1"),
        bytes(12) + bytes.fromhex(bank_a[2:]),
    ]
    assert registry.functions.isPledged(lot("L1")).call() is False
    assert registry.functions.pledgeOf(lot("L1")).call() == (ZERO_ADDRESS, bytes(32), 0)


def test_the_operator_releases(
    w3: Web3, registry: Contract, deployer: ChecksumAddress, bank_a: ChecksumAddress
) -> None:
    send(w3, registry.functions.pledge(lot("L1"), bank_a, keccak(b"a")), bank_a)
    receipt = send(w3, registry.functions.release(lot("L1")), deployer)
    assert events(registry, receipt) == [
        ("Released", {"lotKey": lot("L1"), "financier": bank_a, "releasedBy": deployer})
    ]
    assert registry.functions.isPledged(lot("L1")).call() is False


def test_strangers_and_other_banks_cannot_release(
    w3: Web3,
    registry: Contract,
    stranger: ChecksumAddress,
    bank_a: ChecksumAddress,
    bank_b: ChecksumAddress,
) -> None:
    send(w3, registry.functions.pledge(lot("L1"), bank_a, keccak(b"a")), bank_a)
    for sender in (stranger, bank_b):
        expect_revert(
            w3,
            registry,
            registry.functions.release(lot("L1")),
            sender,
            "NotPledgee",
            lot("L1"),
            sender,
        )
    assert registry.functions.pledgeOf(lot("L1")).call()[0] == bank_a


def test_releasing_an_unpledged_lot_reverts(
    w3: Web3, registry: Contract, deployer: ChecksumAddress, bank_a: ChecksumAddress
) -> None:
    release = registry.functions.release
    expect_revert(w3, registry, release(lot("L1")), deployer, "NotPledged", lot("L1"))
    expect_revert(w3, registry, release(lot("L1")), bank_a, "NotPledged", lot("L1"))
    send(w3, registry.functions.pledge(lot("L1"), bank_a, bytes(32)), bank_a)
    send(w3, release(lot("L1")), bank_a)
    expect_revert(w3, registry, release(lot("L1")), bank_a, "NotPledged", lot("L1"))


def test_a_released_lot_can_be_pledged_again(
    w3: Web3,
    registry: Contract,
    deployer: ChecksumAddress,
    bank_a: ChecksumAddress,
    bank_b: ChecksumAddress,
) -> None:
    pledge = registry.functions.pledge
    send(w3, pledge(lot("L1"), bank_a, keccak(b"a")), bank_a)
    send(w3, registry.functions.release(lot("L1")), bank_a)
    receipt = send(w3, pledge(lot("L1"), bank_b, keccak(b"b")), bank_b)
    assert events(registry, receipt) == [
        ("Pledged", {"lotKey": lot("L1"), "financier": bank_b, "evidence": keccak(b"b")})
    ]
    assert registry.functions.pledgeOf(lot("L1")).call()[:2] == (bank_b, keccak(b"b"))
    # The former pledgee has no say any more; the new one does.
    expect_revert(
        w3,
        registry,
        registry.functions.release(lot("L1")),
        bank_a,
        "NotPledgee",
        lot("L1"),
        bank_a,
    )
    send(w3, registry.functions.release(lot("L1")), deployer)
    send(w3, pledge(lot("L1"), bank_a, keccak(b"c")), deployer)
    assert registry.functions.pledgeOf(lot("L1")).call()[:2] == (bank_a, keccak(b"c"))
