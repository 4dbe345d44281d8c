"""Finance operations for financiers and enterprises: free of HTTP, used by the CLI and the API."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

from eth_hash.auto import keccak

from epcis.identifiers import lot_uri, normalise_epc, parse_lot
from finance import store, valuation
from finance.money import Money, Rate
from finance.rules import (
    Application,
    CreditLine,
    Decision,
    DecisionKind,
    LineStatus,
    Policy,
    decide,
    revalue,
)
from ledger.chain import Chain, ChainReverted
from records import registry_store
from records.db import Conn

log = logging.getLogger(__name__)


class FinanceError(Exception):
    """An operation refused; `code` is stable and machine-readable."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def lot_key(lot_uri: str) -> bytes:
    """The bytes32 a lot is known by on PledgeRegistry: keccak of its Digital Link URI."""
    return keccak(lot_uri.encode())


def org_address(org: registry_store.Org) -> str:
    """The on-chain identity of an organisation (a stable pseudo-address from its slug)."""
    return "0x" + keccak(b"tracefin-org:" + org.slug.encode())[-20:].hex()


def canonical_lot(value: str) -> str:
    """A lot given as URN, Digital Link, or Digital Link path (`01/{gtin}/10/{lot}`)."""
    if value.startswith(("01/", "/01/")):
        value = "https://id.gs1.org/" + value.lstrip("/")
    try:
        parsed = parse_lot(normalise_epc(value))
    except ValueError as exc:
        raise FinanceError("invalid_lot", str(exc)) from None
    if parsed is None:
        raise FinanceError("invalid_lot", f"{value!r} is not a lot (GTIN + lot number)")
    return lot_uri(*parsed)


def _org(conn: Conn, slug: str, role: str | None = None) -> registry_store.Org:
    org = registry_store.get_org(conn, slug)
    if org is None:
        raise FinanceError("unknown_org", f"no organisation {slug!r}")
    if role is not None and org.role != role:
        raise FinanceError("wrong_role", f"{slug!r} is a {org.role}, not a {role}")
    return org


def add_product(
    conn: Conn,
    owner: str,
    gtin: str,
    name: str,
    category: str,
    unit_price: str,
    currency: str,
    min_temp_c: str | None = None,
    max_temp_c: str | None = None,
    shelf_life_days: int | None = None,
) -> store.Product:
    org = _org(conn, owner)
    price = Money.of(unit_price, currency)
    if len(gtin) != 14 or not gtin.isdigit():
        raise FinanceError("invalid_gtin", "a GTIN here has 14 digits")
    product = store.Product(
        gtin,
        org.id,
        name,
        category,
        price.minor,
        price.currency,
        Decimal(min_temp_c) if min_temp_c is not None else None,
        Decimal(max_temp_c) if max_temp_c is not None else None,
        shelf_life_days,
    )
    store.add_product(conn, product)
    store.journal(
        conn,
        owner,
        "product_registered",
        gtin,
        {
            "name": name,
            "category": category,
            "unit_price_minor": price.minor,
            "currency": price.currency,
        },
    )
    return product


def add_warehouse(conn: Conn, operator: str, location: str, name: str) -> str:
    org = _org(conn, operator)
    canonical = normalise_epc(location)
    store.add_warehouse(conn, canonical, org.id, name)
    store.journal(conn, operator, "warehouse_registered", canonical, {"name": name})
    return canonical


def add_sensor(conn: Conn, org_slug: str, device_id: str, location: str) -> None:
    org = _org(conn, org_slug)
    store.add_sensor(conn, org.id, device_id, normalise_epc(location))


def supervise(conn: Conn, financier: str, location: str) -> None:
    org = _org(conn, financier, "financier")
    canonical = normalise_epc(location)
    store.supervise(conn, org.id, canonical)
    store.journal(conn, financier, "warehouse_supervised", canonical, {})


def set_policy(
    conn: Conn,
    financier: str,
    category: str = "*",
    *,
    advance_rate: str = "0.70",
    haircut: str = "0",
    ltv_cap: str = "0.75",
    breach_tolerance_s: int = 1800,
    inspection_freshness_s: int = 30 * 86400,
    receivable_advance_rate: str = "0.80",
) -> None:
    org = _org(conn, financier, "financier")
    row = store.PolicyRow(
        org.id,
        category,
        Rate.of(advance_rate).value,
        Rate.of(haircut).value,
        Rate.of(ltv_cap).value,
        breach_tolerance_s,
        inspection_freshness_s,
        Rate.of(receivable_advance_rate).value,
    )
    store.set_policy(conn, row)
    store.journal(
        conn,
        financier,
        "policy_set",
        category,
        {k: str(v) for k, v in asdict(row).items() if k != "financier_org_id"},
    )


def open_line(conn: Conn, financier: str, borrower: str, limit: str, currency: str) -> store.Line:
    bank = _org(conn, financier, "financier")
    client = _org(conn, borrower)
    amount = Money.of(limit, currency)
    line = store.open_line(conn, bank.id, client.id, amount.currency, amount.minor)
    store.journal(
        conn,
        financier,
        "line_opened",
        f"line:{line.id}",
        {"borrower": borrower, "limit_minor": amount.minor, "currency": currency},
    )
    return line


def _line_between(conn: Conn, financier_id: int, borrower_id: int) -> store.Line:
    row = conn.execute(
        "SELECT id FROM credit_lines WHERE financier_org_id = %s AND borrower_org_id = %s"
        " ORDER BY id LIMIT 1",
        (financier_id, borrower_id),
    ).fetchone()
    line = store.get_line(conn, int(row[0]), for_update=True) if row else None
    if line is None:
        raise FinanceError("no_line", "no credit line between the financier and the lot's owner")
    return line


def _lot_owner(conn: Conn, lot_uri: str) -> tuple[store.Lot, store.Product]:
    lot = store.get_lot(conn, lot_uri)
    if lot is None:
        raise FinanceError("unknown_lot", f"no events have described {lot_uri} yet")
    product = store.get_product(conn, lot.gtin)
    if product is None:
        raise FinanceError("unknown_product", f"product {lot.gtin} is not registered")
    return lot, product


def pledge(conn: Conn, chain: Chain, financier: str, lot: str) -> dict[str, Any]:
    """Pledge a lot to a financier: on PledgeRegistry first (no lot pledged to two banks)."""
    lot_uri = canonical_lot(lot)
    bank = _org(conn, financier, "financier")
    try:
        return _pledge(conn, chain, bank, lot_uri)
    except FinanceError as exc:
        # Kept outside the refused transaction: the attempt itself is worth a record.
        if exc.code == "double_pledge" and store.raise_flag(
            conn, "double_pledge", f"{financier}: {exc.detail}", lot_uri=lot_uri
        ):
            store.journal(conn, financier, "double_pledge_refused", lot_uri, {"detail": exc.detail})
        raise


def _pledge(conn: Conn, chain: Chain, bank: registry_store.Org, lot_uri: str) -> dict[str, Any]:
    financier = bank.slug
    with conn.transaction():
        state, product = _lot_owner(conn, lot_uri)
        line = _line_between(conn, bank.id, product.owner_org_id)
        if state.custody != "warehouse" or not store.is_supervised(conn, bank.id, state.location):
            raise FinanceError(
                "not_in_supervised_warehouse",
                f"{lot_uri} is not in a warehouse {financier} supervises",
            )
        existing = store.live_pledge(conn, lot_uri)
        if existing is not None and existing.line_id == line.id:
            raise FinanceError("already_pledged", f"{lot_uri} is already pledged to {financier}")
        key = lot_key(lot_uri)
        # The contract decides, not this database: other banks' systems share only the chain.
        try:
            tx = chain.pledge(key, org_address(bank), state.last_inspection_hash or bytes(32))
        except ChainReverted as exc:
            if exc.error == "AlreadyPledged" and chain.pledgee(key) == _checksum(org_address(bank)):
                tx = b""  # an earlier attempt pledged on chain but did not commit here
            elif exc.error == "AlreadyPledged":
                _double_pledge(lot_uri, "PledgeRegistry refused: already pledged")
            else:
                raise
        store.add_pledge(conn, lot_uri, line.id, key, state.location or "", tx)
        store.journal(
            conn,
            financier,
            "pledged",
            lot_uri,
            {"line": line.id, "lot_key": "0x" + key.hex(), "tx": "0x" + tx.hex()},
        )
    return {"lot": lot_uri, "line": line.id, "lot_key": "0x" + key.hex(), "tx": "0x" + tx.hex()}


def _checksum(address: str) -> str:
    from web3 import Web3

    return str(Web3.to_checksum_address(address))


def _double_pledge(lot_uri: str, detail: str) -> NoReturn:
    raise FinanceError("double_pledge", f"{lot_uri} is already pledged ({detail})")


def restore_pledges(conn: Conn, chain: Chain) -> dict[str, list[str]]:
    """Put every live pledge the registry does not show back on it; run after every deploy.

    A devnet reset leaves a new, empty PledgeRegistry, and it is the registry, not this database,
    that stops another bank pledging the same goods. Idempotent: pledges the registry already
    shows are left alone, so a deploy interrupted half way is finished by running it again. A lot
    the new registry shows pledged to someone else is not overwritten: it is flagged
    `double_pledge` and returned under "conflicting".
    """
    restored: list[str] = []
    conflicting: list[str] = []
    for pledge in store.pledges_for_audit(conn):
        if not pledge.live:
            continue
        bank = registry_store.Org(pledge.financier_org_id, pledge.financier, "financier")
        ours = _checksum(org_address(bank))
        on_chain = chain.pledgee(pledge.lot_key)
        if on_chain == ours:
            continue
        if on_chain is None:
            lot = store.get_lot(conn, pledge.lot_uri)
            evidence = (lot.last_inspection_hash if lot else None) or bytes(32)
            try:
                tx = chain.pledge(pledge.lot_key, ours, evidence)
            except ChainReverted as exc:
                if exc.error != "AlreadyPledged":
                    raise
                on_chain = chain.pledgee(pledge.lot_key)  # taken since we looked
            else:
                with conn.transaction():
                    store.set_pledge_tx(conn, pledge.lot_uri, tx)
                    store.journal(
                        conn,
                        "operator",
                        "pledge_restored",
                        pledge.lot_uri,
                        {"line": pledge.line_id, "tx": "0x" + tx.hex()},
                    )
                restored.append(pledge.lot_uri)
                continue
        if on_chain != ours:
            detail = f"the registry shows it pledged to {on_chain}, not to {pledge.financier}"
            if store.raise_flag(conn, "double_pledge", detail, lot_uri=pledge.lot_uri):
                store.journal(
                    conn, "operator", "pledge_conflict", pledge.lot_uri, {"detail": detail}
                )
            conflicting.append(pledge.lot_uri)
    if restored or conflicting:
        log.warning(
            "PledgeRegistry %s: %d live pledges restored, %d held by someone else",
            chain.pledges.address if chain.pledges is not None else "?",
            len(restored),
            len(conflicting),
        )
    return {"restored": restored, "conflicting": conflicting}


def release(conn: Conn, chain: Chain, financier: str, lot: str) -> dict[str, Any]:
    lot_uri = canonical_lot(lot)
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        live = store.live_pledge(conn, lot_uri)
        line = store.get_line(conn, live.line_id) if live else None
        if live is None or line is None or line.financier_org_id != bank.id:
            raise FinanceError("not_pledged", f"{lot_uri} is not pledged to {financier}")
        try:
            tx = chain.release(live.lot_key)
        except ChainReverted as exc:
            if exc.error != "NotPledged":
                raise
            tx = b""  # released on chain by an earlier attempt that did not commit here
        store.release_pledge(conn, lot_uri, tx)
        store.journal(
            conn, financier, "released", lot_uri, {"line": line.id, "tx": "0x" + tx.hex()}
        )
    return {"lot": lot_uri, "line": line.id, "tx": "0x" + tx.hex()}


def apply(
    conn: Conn, borrower: str, financier: str, lot: str, amount: str, guarantor: bool = False
) -> dict[str, Any]:
    """A financing application against a pledged lot: decided now, drawn down if approved."""
    lot_uri = canonical_lot(lot)
    client = _org(conn, borrower)
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        line = _line_between(conn, bank.id, client.id)
        requested = Money.of(amount, line.currency)
        state = valuation.lot_state(conn, lot_uri, bank.id)
        if state is None:
            raise FinanceError("unknown_lot", f"{lot_uri} has no events or no registered product")
        drawn_on_lot = _drawn_on_lot(conn, line.id, lot_uri, line.currency)
        decision = decide(
            Application(requested, guarantor, drawn_on_lot),
            state,
            valuation.policy(conn, bank.id, state.category),
            CreditLine(
                str(bank.id),
                Money(line.limit_minor, line.currency),
                Money(line.drawn_minor, line.currency),
                LineStatus(line.status),
            ),
            datetime.now(UTC),
        )
        application_id, decision_id = _record(
            conn, line.id, lot_uri, requested, guarantor, decision
        )
        if decision.kind in (DecisionKind.APPROVE, DecisionKind.PARTIAL):
            store.move_money(conn, line.id, "drawdown", decision.approved_amount.minor, decision_id)
        store.journal(
            conn,
            borrower,
            f"decision_{decision.kind}",
            f"application:{application_id}",
            {
                "approved_minor": decision.approved_amount.minor,
                "reasons": [str(r) for r in decision.reasons],
            },
            _digests(decision.evidence),
        )
    return {
        "application": application_id,
        "decision": str(decision.kind),
        "approved": decision.approved_amount.format(),
        "approved_minor": decision.approved_amount.minor,
        "reasons": [str(reason) for reason in decision.reasons],
        "evidence": list(decision.evidence),
        "collateral_value": decision.collateral_value.format(),
    }


def _digests(hash_ids: tuple[str, ...]) -> list[bytes]:
    from epcis.event_hash import digest_from_hash_id

    return [digest_from_hash_id(h) for h in hash_ids]


def _drawn_on_lot(conn: Conn, line_id: int, lot_uri: str, currency: str) -> Money:
    row = conn.execute(
        "SELECT coalesce(sum(m.amount_minor), 0) FROM line_movements m"
        " JOIN decisions d ON d.id = m.decision_id JOIN applications a ON a.id = d.application_id"
        " WHERE m.line_id = %s AND a.lot_uri = %s AND m.kind = 'drawdown'",
        (line_id, lot_uri),
    ).fetchone()
    return Money(int(row[0]) if row else 0, currency)


def _record(
    conn: Conn, line_id: int, lot_uri: str, requested: Money, guarantor: bool, decision: Decision
) -> tuple[int, int]:
    application = conn.execute(
        "INSERT INTO applications (line_id, lot_uri, requested_minor, guarantor)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (line_id, lot_uri, requested.minor, guarantor),
    ).fetchone()
    assert application is not None
    recorded = conn.execute(
        "INSERT INTO decisions (application_id, kind, approved_minor, reasons, evidence,"
        " collateral_minor) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (
            application[0],
            str(decision.kind),
            decision.approved_amount.minor,
            [str(r) for r in decision.reasons],
            _digests(decision.evidence),
            decision.collateral_value.minor,
        ),
    ).fetchone()
    assert recorded is not None
    return int(application[0]), int(recorded[0])


def repay(conn: Conn, financier: str, line_id: int, amount: str) -> store.Line:
    """A repayment: accepted on active and frozen lines alike (the exit path)."""
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        line = store.get_line(conn, line_id, for_update=True)
        if line is None or line.financier_org_id != bank.id:
            raise FinanceError("unknown_line", f"{financier} has no line {line_id}")
        money = Money.of(amount, line.currency)
        if not money.is_positive() or money.minor > line.drawn_minor:
            raise FinanceError(
                "invalid_amount",
                f"repayment must be positive and at most the drawn {line.drawn_minor}",
            )
        store.move_money(conn, line_id, "repayment", money.minor)
        if money.minor == line.drawn_minor:
            conn.execute(
                "UPDATE margin_calls SET settled_at = now()"
                " WHERE line_id = %s AND settled_at IS NULL",
                (line_id,),
            )
        store.journal(
            conn, financier, "repayment", f"line:{line_id}", {"amount_minor": money.minor}
        )
        updated = store.get_line(conn, line_id)
    assert updated is not None
    return updated


def set_line_status(conn: Conn, financier: str, line_id: int, status: str) -> store.Line:
    bank = _org(conn, financier, "financier")
    with conn.transaction():
        line = store.get_line(conn, line_id, for_update=True)
        if line is None or line.financier_org_id != bank.id:
            raise FinanceError("unknown_line", f"{financier} has no line {line_id}")
        if store.set_line_status(conn, line_id, status):
            store.journal(conn, financier, f"line_{status}", f"line:{line_id}", {})
        updated = store.get_line(conn, line_id)
    assert updated is not None
    return updated


def lot_status(conn: Conn, lot: str, financier: str | None = None) -> dict[str, Any]:
    """Goods status: quantity, place, custody, inspection, pledge, flags, value, evidence."""
    lot_uri = canonical_lot(lot)
    row, product = _lot_owner(conn, lot_uri)
    bank = _org(conn, financier, "financier") if financier else None
    state = valuation.lot_state(conn, lot_uri, bank.id if bank else None)
    assert state is not None
    judged = revalue(
        state,
        valuation.policy(conn, bank.id, product.category) if bank else Policy(),
        Money.zero(product.currency),
        now=datetime.now(UTC),
    )
    live = store.live_pledge(conn, lot_uri)
    return {
        "lot": lot_uri,
        "quantity": row.quantity,
        "location": row.location,
        "custody": row.custody,
        "best_before": row.best_before.isoformat() if row.best_before else None,
        "last_inspection": {
            "disposition": row.last_inspection_disposition,
            "time": row.last_inspection_time.isoformat() if row.last_inspection_time else None,
        },
        "pledge": {"line": live.line_id, "lot_key": "0x" + live.lot_key.hex()} if live else None,
        "risk_flags": sorted(state.risk_flags),
        "collateral_value": judged.value.format(),
        "collateral_value_minor": judged.value.minor,
        "evidence": [{"event_hash": h, "anchored": a} for h, a in state.evidence],
    }
