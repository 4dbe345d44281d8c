"""Finance state from the database, judged by the pure rules: lot states, revaluations, money."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from epcis.event_hash import hash_id_from_digest
from finance import repayments
from finance.money import Money, Rate
from finance.rules import (
    Inspection,
    LotState,
    Minute,
    Policy,
    back_in_range_since,
    cold_chain_excursion,
    minute_readings,
    receivable_advance,
    revalue,
)
from finance.servicing import RepaymentSource
from finance.store import attribution, credit, goods
from finance.store.credit import Pledge
from finance.store.goods import Product
from finance.store.journal import Journal
from finance.tracking import LoggedEvent
from records.db import Conn

ACTOR = "finance-worker"
# Flags that alert people but say nothing about the goods themselves, so they do not impair them.
# A disputed movement is a claim nobody entitled made (issue 13): it must not cost the borrower.
ALERT_ONLY_FLAGS = frozenset({"double_pledge", "disputed_movement"})
# How far back telemetry is read when looking for a cold-chain excursion.
_TELEMETRY_WINDOW = timedelta(hours=6)


def policy(conn: Conn, financier_org_id: int, category: str) -> Policy:
    """The financier's policy for a category (its '*' default, else the built-in defaults)."""
    row = goods.policy_for(conn, financier_org_id, category)
    if row is None:
        return Policy()
    return Policy(
        advance_rate=Rate.of(row.advance_rate),
        haircuts={category: Rate.of(row.haircut)},
        ltv_cap=Rate.of(row.ltv_cap),
        breach_tolerance=timedelta(seconds=row.breach_tolerance_s),
        inspection_freshness=timedelta(seconds=row.inspection_freshness_s),
        receivable_advance_rate=Rate.of(row.receivable_advance_rate),
        cure_period=timedelta(seconds=row.cure_period_s),
        offer_validity=timedelta(seconds=row.offer_validity_s),
    )


def lot_state(
    conn: Conn, lot_uri: str, financier_org_id: int | None, currency: str | None = None
) -> LotState | None:
    """A lot as the rules see it, from the viewpoint of one financier (supervision, pledge,
    and its own price, in `currency` if named: a line's). Without a financier, the product's
    reference price values it (display only: no lending decision is taken without one)."""
    lot = attribution.get_lot(conn, lot_uri)
    if lot is None:
        return None
    product = goods.get_product(conn, lot.gtin)
    if product is None:
        return None
    unit_price, priced = Money(product.unit_price_minor, product.currency), True
    if financier_org_id is not None:
        price = goods.price_at(conn, financier_org_id, lot.gtin, datetime.now(UTC), currency)
        priced = price is not None
        unit_price = (
            Money(price.unit_price_minor, price.currency)
            if price is not None
            else Money.zero(currency or product.currency)
        )
    inspection = None
    if lot.last_inspection_time is not None and lot.last_inspection_hash is not None:
        inspection = Inspection(
            lot.last_inspection_disposition,
            lot.last_inspection_time,
            hash_id_from_digest(lot.last_inspection_hash),
        )
    pledge = credit.live_pledge(conn, lot_uri)
    pledged_to = None
    quantity = lot.quantity
    if pledge is not None:
        line = credit.get_line(conn, pledge.line_id)
        pledged_to = str(line.financier_org_id) if line is not None else None
        if line is not None and line.financier_org_id == financier_org_id:
            # Its collateral: the units pledged that the lot still holds (partial releases
            # and units split off the lot are not).
            quantity = min(lot.quantity, pledge.quantity)
    flags = credit.open_flags(conn, lot_uri) - ALERT_ONLY_FLAGS
    return LotState(
        gtin=lot.gtin,
        lot=lot.lot,
        category=product.category,
        quantity=quantity,
        unit_price=unit_price,
        priced=priced,
        location=lot.location,
        in_supervised_warehouse=(
            lot.custody == "warehouse"
            and financier_org_id is not None
            and goods.is_supervised(conn, financier_org_id, lot.location)
        ),
        last_inspection=inspection,
        risk_flags=frozenset(flags),
        expiry=lot.best_before,
        recalled=lot.recalled,
        sold=lot.custody == "sold" and lot.quantity == 0,
        pledged_to=pledged_to,
        # The state rests only on the events that count as evidence.
        evidence=tuple(
            (hash_id_from_digest(item.event_hash), item.anchored)
            for item in goods.lot_evidence(conn, lot_uri)
            if item.counts
        ),
    )


def revalue_line(
    conn: Conn,
    journal: Journal,
    line_id: int,
    lot_uri: str | None,
    *,
    reason: str,
    log_index: int | None,
) -> None:
    """Re-value a line's collateral after news about a lot (or money moved on the line) and
    review its margin call: the shortfall is what it has drawn less what its pledged lots now
    secure. One live call per line: opened when there is a shortfall, its amount kept equal to
    the shortfall as it changes, cured when there is none."""
    # Locked first (then its call): one review of a line's margin call at a time, in the same
    # order as repayments and escalation take them.
    line = credit.get_line(conn, line_id, for_update=True)
    if line is None:
        return
    now = datetime.now(UTC)
    drawn = Money(line.drawn_minor, line.currency)
    total_limit = Money.zero(line.currency)
    for pledge in credit.pledges_of_line(conn, line_id):
        state = lot_state(conn, pledge.lot_uri, line.financier_org_id, line.currency)
        if state is None:
            continue
        judged = revalue(
            state,
            policy(conn, line.financier_org_id, state.category),
            Money.zero(line.currency),
            now=now,
        )
        total_limit = total_limit + judged.limit
    shortfall = drawn - total_limit
    detail = {"reason": reason, "drawn_minor": drawn.minor, "limit_minor": total_limit.minor}
    journal.write(conn, ACTOR, "revalued", f"line:{line_id}", detail, (), log_index)
    call = credit.live_margin_call(conn, line_id)
    subject = f"line:{line_id}"
    if shortfall.is_positive() and call is None:
        due = now + policy(conn, line.financier_org_id, "*").cure_period
        opened = credit.open_margin_call(
            conn, line_id, lot_uri, shortfall.minor, line.currency, reason, due
        )
        journal.write(
            conn,
            ACTOR,
            "margin_call",
            subject,
            {
                **detail,
                "call": opened.id,
                "shortfall_minor": shortfall.minor,
                "lot": lot_uri,
                "due": due.isoformat(),
            },
            (),
            log_index,
        )
    elif shortfall.is_positive() and call is not None and call.amount_minor != shortfall.minor:
        credit.set_margin_call_amount(conn, call.id, shortfall.minor)
        journal.write(
            conn,
            ACTOR,
            "margin_call_changed",
            subject,
            {**detail, "call": call.id, "shortfall_minor": shortfall.minor},
            (),
            log_index,
        )
    elif not shortfall.is_positive() and call is not None:
        credit.cure_margin_call(conn, call.id)
        journal.write(
            conn, ACTOR, "margin_call_cured", subject, {**detail, "call": call.id}, (), log_index
        )


def check_margin_calls(conn: Conn, journal: Journal, now: datetime) -> int:
    """Calls past their due time are escalated and their lines frozen; returns how many."""
    escalated = []
    for due in credit.due_margin_calls(conn, now):
        credit.get_line(conn, due.line_id, for_update=True)  # the line first, as elsewhere
        if credit.escalate_margin_call(conn, due.id, now):
            escalated.append(due)
    for call in escalated:
        subject = f"line:{call.line_id}"
        journal.write(
            conn,
            ACTOR,
            "margin_call_escalated",
            subject,
            {"call": call.id, "amount_minor": call.amount_minor, "due": call.due_at.isoformat()},
        )
        if credit.set_line_status(conn, call.line_id, "frozen"):
            journal.write(conn, ACTOR, "line_frozen", subject, {"reason": "margin_call_overdue"})
    return len(escalated)


def route_proceeds(
    conn: Conn,
    journal: Journal,
    pledge: Pledge,
    lot_uri: str,
    sold: int,
    event: LoggedEvent,
    product: Product,
) -> None:
    """Sale of pledged goods: the proceeds are due to the pledgee's line, at the pledgee's
    price in the line's currency when sold (its current one if it had none then: a sale
    learnt of late). Where the pledgee has none at all, nothing is booked (the borrower's own
    reference price is not the bank's to trust): the sale is journaled `proceeds_unpriced`
    for the financier to settle."""
    if sold <= 0:
        return
    # Locked first: the line, then the loans the proceeds repay (the order every payment takes).
    line = credit.get_line(conn, pledge.line_id, for_update=True)
    price = None
    if line is not None:
        for when in (event.event_time, datetime.now(UTC)):
            price = goods.price_at(conn, line.financier_org_id, product.gtin, when, line.currency)
            if price is not None:
                break
    if price is None:
        journal.write(
            conn,
            ACTOR,
            "proceeds_unpriced",
            f"line:{pledge.line_id}",
            {"lot": lot_uri, "items": sold},
            [event.event_hash],
            event.log_index,
        )
        return
    amount = price.unit_price_minor * sold
    movement = credit.move_money(conn, pledge.line_id, "proceeds_due", amount)
    # Collected: the proceeds repay the loans these goods secure, through the same waterfall
    # as any repayment; what is left after they owe nothing stays due to the line.
    today = credit.utc_today(conn)
    dues = repayments.owing(conn, credit.owing_loans(conn, pledge.line_id, lot_uri=lot_uri), today)
    parts, left = repayments.allocate(conn, dues, amount, RepaymentSource.PROCEEDS, movement, today)
    journal.write(
        conn,
        ACTOR,
        "proceeds_due",
        f"line:{pledge.line_id}",
        {
            "lot": lot_uri,
            "items": sold,
            "amount_minor": amount,
            "applied": [asdict(part) for part in parts],
            "unapplied_minor": left,
        },
        [event.event_hash],
        event.log_index,
    )


def receivable_terms(quantity: int, product: Product) -> tuple[Money, Money]:
    """(amount, advance) of a receivable for `quantity` units delivered with a PO."""
    amount = Money(product.unit_price_minor * quantity, product.currency)
    return amount, receivable_advance(amount, Policy())


def check_cold_chain(conn: Conn, journal: Journal, now: datetime) -> int:
    """Flag lots whose site reads out of the product's range too long, and close such a flag
    once the readings have been back in range for the policy's dwell time (its breach
    tolerance); returns how many were raised. Only readings since the lot arrived at the site
    count (an excursion before it came is not its own), and none before a flag's last close.
    The site's readings are read by the minute, from the per-minute aggregate, and one by one
    only in the minutes where they change side (`rules.minute_readings`): the same judgement
    as from every reading, without reading every reading."""
    raised = 0
    for watch in goods.cold_chain_watch(conn):
        pledge = credit.live_pledge(conn, watch.lot_uri)
        line = credit.get_line(conn, pledge.line_id) if pledge is not None else None
        rules_policy = policy(conn, line.financier_org_id, watch.category) if line else Policy()
        since = now - _TELEMETRY_WINDOW
        if watch.held_since is not None:
            since = max(since, watch.held_since)
        low, high = watch.min_temp_c, watch.max_temp_c
        minutes = [
            Minute(row.bucket, row.min_value, row.max_value, row.mean_value, row.first_time)
            for row in goods.temperature_minutes(conn, watch.gln, since)
        ]
        readings, mixed = minute_readings(minutes, low, high, since)
        if mixed:
            readings += [
                (row.time, row.value)
                for row in goods.temperatures_in(conn, watch.gln, mixed, since)
            ]
        line_id = pledge.line_id if pledge is not None else None
        if "cold_chain_breach" in credit.open_flags(conn, watch.lot_uri):
            back = back_in_range_since(readings, low, high)
            if back is None or now - back < rules_policy.breach_tolerance:
                continue
            credit.clear_flag(conn, watch.lot_uri, "cold_chain_breach", "temperature_back_in_range")
            journal.write(
                conn,
                ACTOR,
                "flag_cleared",
                watch.lot_uri,
                {
                    "kind": "cold_chain_breach",
                    "reason": "temperature_back_in_range",
                    "since": back.isoformat(),
                },
            )
            if line_id is not None:
                revalue_line(
                    conn, journal, line_id, watch.lot_uri, reason="flag_cleared", log_index=None
                )
            continue
        cleared = credit.last_cleared(conn, watch.lot_uri, "cold_chain_breach")
        fresh = [reading for reading in readings if cleared is None or reading[0] >= cleared]
        excursion = cold_chain_excursion(fresh, low, high, rules_policy, now)
        if excursion is None:
            continue
        detail = f"temperature outside {low}..{high} °C since {excursion.start.isoformat()}"
        if credit.raise_flag(
            conn, "cold_chain_breach", detail, lot_uri=watch.lot_uri, line_id=line_id
        ):
            raised += 1
            journal.write(conn, ACTOR, "flag_cold_chain_breach", watch.lot_uri, {"detail": detail})
            if line_id is not None:
                revalue_line(
                    conn,
                    journal,
                    line_id,
                    watch.lot_uri,
                    reason="cold_chain_breach",
                    log_index=None,
                )
    return raised


def check_prices(conn: Conn, journal: Journal, now: datetime) -> int:
    """Revalue what each price set to hold from a later time prices, once that time has come
    (a margin call where a line's drawn now exceeds what it secures); returns how many."""
    due = goods.prices_coming_into_force(conn, now)
    for price in due:
        lines = set()
        for pledge in credit.pledges_priced_by(conn, price.financier_org_id, price.gtin):
            revalue_line(
                conn,
                journal,
                pledge.line_id,
                pledge.lot_uri,
                reason="price_in_force",
                log_index=None,
            )
            lines.add(pledge.line_id)
        goods.price_revalued(conn, price, now)
        journal.write(
            conn,
            ACTOR,
            "price_in_force",
            price.gtin,
            {
                "financier_org_id": price.financier_org_id,
                "valid_from": price.valid_from.isoformat(),
                "revalued_lines": sorted(lines),
            },
        )
    return len(due)


def check_expiry(conn: Conn, journal: Journal, now: datetime) -> int:
    """Flag (and re-value) lots in stock whose best-before date has passed; returns how many."""
    raised = 0
    for lot_uri in goods.expired_lots(conn, now.date()):
        pledge = credit.live_pledge(conn, lot_uri)
        line_id = pledge.line_id if pledge is not None else None
        if credit.raise_flag(
            conn, "expired", "best-before date passed", lot_uri=lot_uri, line_id=line_id
        ):
            raised += 1
            journal.write(conn, ACTOR, "flag_expired", lot_uri, {})
            if line_id is not None:
                revalue_line(conn, journal, line_id, lot_uri, reason="expired", log_index=None)
    return raised
