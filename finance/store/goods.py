"""SQL of the goods financed: products, warehouses, sensors, supervision, policies, lot views."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from datetime import date, datetime
from decimal import Decimal

from psycopg.rows import class_row

from finance.store import KEYS
from records.db import Conn


@dataclass(frozen=True)
class Product:
    gtin: str
    owner_org_id: int
    name: str
    category: str
    unit_price_minor: int
    currency: str
    min_temp_c: Decimal | None
    max_temp_c: Decimal | None
    shelf_life_days: int | None


@dataclass(frozen=True)
class PolicyRow:
    financier_org_id: int
    category: str
    advance_rate: Decimal
    haircut: Decimal
    ltv_cap: Decimal
    breach_tolerance_s: int
    inspection_freshness_s: int
    receivable_advance_rate: Decimal
    cure_period_s: int
    offer_validity_s: int
    # What its loans cost and when they are due (finance/servicing.py LoanTerms).
    annual_rate: Decimal
    day_count: str
    schedule_kind: str
    instalment_count: int
    fee_rate: Decimal
    tenor_days: int
    grace_days: int
    penalty_rate: Decimal
    default_after_days: int


@dataclass(frozen=True)
class LotEvidence:
    """An event applied to a lot: whether a batch of the current deployment holds it, whether
    it counts as evidence (`reason` when not), and who recorded it (its first capture)."""

    event_hash: bytes
    anchored: bool
    counts: bool
    reason: str | None
    recorder_org: str
    recorder_device: str
    recorder_topic: str
    recorder_signed: bool
    recorder_received_at: datetime


@dataclass(frozen=True)
class ColdChainWatch:
    """A lot in stock at a site with bound devices, and its product's temperature range."""

    gln: str
    min_temp_c: Decimal | None
    max_temp_c: Decimal | None
    lot_uri: str
    category: str
    held_since: datetime | None  # since when the lot is at the site (None: not known)


@dataclass(frozen=True)
class TemperatureMinute:
    bucket: datetime
    min_value: float  # telemetry is stored as double precision
    max_value: float
    mean_value: float
    first_time: datetime


@dataclass(frozen=True)
class SiteMinute:
    bucket: datetime
    min_value: float
    max_value: float
    mean_value: float
    readings: int


@dataclass(frozen=True)
class TemperatureReading:
    time: datetime
    value: float


_PRODUCT_COLUMNS = (
    "gtin, owner_org_id, name, category, unit_price_minor, currency, min_temp_c, max_temp_c,"
    " shelf_life_days"
)
_POLICY_COLUMNS = (
    "financier_org_id, category, advance_rate, haircut, ltv_cap, breach_tolerance_s,"
    " inspection_freshness_s, receivable_advance_rate, cure_period_s, offer_validity_s,"
    " annual_rate, day_count, schedule_kind, instalment_count, fee_rate, tenor_days, grace_days,"
    " penalty_rate, default_after_days"
)


# --- products --------------------------------------------------------------------------------


def add_product(conn: Conn, product: Product) -> None:
    conn.execute(
        f"INSERT INTO products ({_PRODUCT_COLUMNS})"  # noqa: S608 - constant column list
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (gtin) DO UPDATE SET name = excluded.name, category = excluded.category,"
        " unit_price_minor = excluded.unit_price_minor, currency = excluded.currency,"
        # An update never nulls what it does not name (the cold-chain range above all).
        " min_temp_c = coalesce(excluded.min_temp_c, products.min_temp_c),"
        " max_temp_c = coalesce(excluded.max_temp_c, products.max_temp_c),"
        " shelf_life_days = coalesce(excluded.shelf_life_days, products.shelf_life_days)",
        (
            product.gtin,
            product.owner_org_id,
            product.name,
            product.category,
            product.unit_price_minor,
            product.currency,
            product.min_temp_c,
            product.max_temp_c,
            product.shelf_life_days,
        ),
    )


@dataclass(frozen=True)
class Price:
    """A financier's unit price for a GTIN, from `valid_from` until its next one."""

    gtin: str
    unit_price_minor: int
    currency: str
    valid_from: datetime


def set_price(
    conn: Conn,
    financier_org_id: int,
    gtin: str,
    unit_price_minor: int,
    currency: str,
    valid_from: datetime,
    revalued_at: datetime | None,
) -> Price:
    """Store a price; `revalued_at` None: it holds from a later time, and the finance worker
    revalues what it prices when that time comes (`prices_coming_into_force`)."""
    with conn.cursor(row_factory=class_row(Price)) as cur:
        price = cur.execute(
            "INSERT INTO financier_prices (financier_org_id, gtin, valid_from, unit_price_minor,"
            " currency, revalued_at) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (financier_org_id, gtin, valid_from) DO UPDATE SET"
            " unit_price_minor = excluded.unit_price_minor, currency = excluded.currency,"
            " revalued_at = excluded.revalued_at, set_at = now()"
            " RETURNING gtin, unit_price_minor, currency, valid_from",
            (financier_org_id, gtin, valid_from, unit_price_minor, currency, revalued_at),
        ).fetchone()
    assert price is not None
    return price


@dataclass(frozen=True)
class PriceInForce:
    """A price set to hold from a time that has now come, not yet revalued."""

    financier_org_id: int
    gtin: str
    valid_from: datetime


def prices_coming_into_force(conn: Conn, now: datetime) -> list[PriceInForce]:
    """Prices whose time has come and whose lots are not revalued yet, locked (one worker
    revalues each; another skips it)."""
    with conn.cursor(row_factory=class_row(PriceInForce)) as cur:
        return cur.execute(
            "SELECT financier_org_id, gtin, valid_from FROM financier_prices"
            " WHERE revalued_at IS NULL AND valid_from <= %s ORDER BY valid_from"
            " FOR UPDATE SKIP LOCKED",
            (now,),
        ).fetchall()


def price_revalued(conn: Conn, price: PriceInForce, at: datetime) -> None:
    conn.execute(
        "UPDATE financier_prices SET revalued_at = %s"
        " WHERE financier_org_id = %s AND gtin = %s AND valid_from = %s",
        (at, price.financier_org_id, price.gtin, price.valid_from),
    )


def price_at(
    conn: Conn, financier_org_id: int, gtin: str, at: datetime, currency: str | None = None
) -> Price | None:
    """The financier's price for `gtin` holding at `at` (in `currency`, if named)."""
    with conn.cursor(row_factory=class_row(Price)) as cur:
        return cur.execute(
            "SELECT gtin, unit_price_minor, currency, valid_from FROM financier_prices"
            " WHERE financier_org_id = %s AND gtin = %s AND valid_from <= %s"
            " AND (%s::text IS NULL OR currency = %s) ORDER BY valid_from DESC LIMIT 1",
            (financier_org_id, gtin, at, currency, currency),
        ).fetchone()


def prices_of(conn: Conn, financier_org_id: int) -> list[Price]:
    """Every price a financier has set, by GTIN and time."""
    with conn.cursor(row_factory=class_row(Price)) as cur:
        return cur.execute(
            "SELECT gtin, unit_price_minor, currency, valid_from FROM financier_prices"
            " WHERE financier_org_id = %s ORDER BY gtin, valid_from",
            (financier_org_id,),
        ).fetchall()


def get_product(conn: Conn, gtin: str) -> Product | None:
    with conn.cursor(row_factory=class_row(Product)) as cur:
        return cur.execute(
            f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE gtin = %s",  # noqa: S608 - constant
            (gtin,),
        ).fetchone()


def products(conn: Conn, gtins: Iterable[str]) -> dict[str, Product]:
    with conn.cursor(row_factory=class_row(Product)) as cur:
        rows = cur.execute(
            "SELECT p.gtin, p.owner_org_id, p.name, p.category, p.unit_price_minor,"  # noqa: S608
            " p.currency, p.min_temp_c, p.max_temp_c, p.shelf_life_days"
            f" FROM {KEYS} JOIN products p ON p.gtin = k.key",
            (list(gtins),),
            prepare=False,
        ).fetchall()
    return {row.gtin: row for row in rows}


# --- warehouses, sensors, supervision --------------------------------------------------------


def add_warehouse(conn: Conn, location: str, operator_org_id: int, name: str) -> None:
    conn.execute(
        "INSERT INTO warehouses (location, operator_org_id, name) VALUES (%s, %s, %s)"
        " ON CONFLICT (location) DO UPDATE SET name = excluded.name",
        (location, operator_org_id, name),
    )


def add_sensor(conn: Conn, org_id: int, device_id: str, location: str) -> None:
    conn.execute(
        "INSERT INTO warehouse_sensors (org_id, device_id, location) VALUES (%s, %s, %s)"
        " ON CONFLICT (org_id, device_id) DO UPDATE SET location = excluded.location",
        (org_id, device_id, location),
    )


def warehouse_exists(conn: Conn, location: str) -> bool:
    row = conn.execute("SELECT 1 FROM warehouses WHERE location = %s", (location,)).fetchone()
    return row is not None


def supervise(conn: Conn, financier_org_id: int, location: str) -> None:
    conn.execute(
        "INSERT INTO supervised_warehouses (financier_org_id, location) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING",
        (financier_org_id, location),
    )


def is_supervised(conn: Conn, financier_org_id: int, location: str | None) -> bool:
    if location is None:
        return False
    return (
        conn.execute(
            "SELECT 1 FROM supervised_warehouses WHERE financier_org_id = %s AND location = %s",
            (financier_org_id, location),
        ).fetchone()
        is not None
    )


# --- policies --------------------------------------------------------------------------------


def set_policy(conn: Conn, policy: PolicyRow) -> None:
    values = astuple(policy)
    updates = ", ".join(f"{name} = excluded.{name}" for name in _POLICY_COLUMNS.split(", ")[2:])
    conn.execute(
        f"INSERT INTO policies ({_POLICY_COLUMNS})"  # noqa: S608 - constant column list
        f" VALUES ({', '.join(['%s'] * len(values))})"
        f" ON CONFLICT (financier_org_id, category) DO UPDATE SET {updates}",
        values,
    )


def policies_of(conn: Conn, financier_org_id: int) -> list[PolicyRow]:
    with conn.cursor(row_factory=class_row(PolicyRow)) as cur:
        return cur.execute(
            f"SELECT {_POLICY_COLUMNS} FROM policies"  # noqa: S608 - constant column list
            " WHERE financier_org_id = %s ORDER BY category",
            (financier_org_id,),
        ).fetchall()


def policy_for(conn: Conn, financier_org_id: int, category: str) -> PolicyRow | None:
    """The financier's policy for the category, else its default ('*'), else None."""
    with conn.cursor(row_factory=class_row(PolicyRow)) as cur:
        return cur.execute(
            f"SELECT {_POLICY_COLUMNS} FROM policies"  # noqa: S608 - constant column list
            " WHERE financier_org_id = %s AND category IN (%s, '*')"
            " ORDER BY category = '*' LIMIT 1",
            (financier_org_id, category),
        ).fetchone()


# --- lots as seen from outside the worker ----------------------------------------------------


def lot_evidence(conn: Conn, lot_uri: str) -> list[LotEvidence]:
    """Every event applied to the lot, in log order: anchoring, evidence status, recorder."""
    with conn.cursor(row_factory=class_row(LotEvidence)) as cur:
        return cur.execute(
            "SELECT le.event_hash, EXISTS ("
            "   SELECT 1 FROM anchor_batches b JOIN chain_deployments d ON d.id = b.deployment_id"
            "   WHERE d.current AND le.log_index >= b.first_index"
            "   AND le.log_index < b.first_index + b.count) AS anchored,"
            " le.counts, le.reason, o.slug AS recorder_org, e.device_id AS recorder_device,"
            " e.topic AS recorder_topic, e.signature IS NOT NULL AS recorder_signed,"
            " e.received_at AS recorder_received_at"
            " FROM lot_evidence le JOIN events e ON e.event_hash = le.event_hash"
            " JOIN orgs o ON o.id = e.org_id"
            " WHERE le.lot_uri = %s ORDER BY le.log_index",
            (lot_uri,),
        ).fetchall()


def lot_visible_to(conn: Conn, org_id: int, role: str, lot_uri: str) -> bool:
    """Object-level access to a lot's goods status.

    Regulators see every lot; the product's owner sees its own lots; a financier sees lots
    pledged to it or lying in a warehouse it supervises (offered to it as collateral).
    """
    if role == "regulator":
        return True
    row = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM lots l JOIN products p ON p.gtin = l.gtin
                       WHERE l.lot_uri = %(lot)s AND p.owner_org_id = %(org)s)
            OR EXISTS (SELECT 1 FROM pledges pl JOIN credit_lines c ON c.id = pl.line_id
                       WHERE pl.lot_uri = %(lot)s AND pl.released_at IS NULL
                       AND c.financier_org_id = %(org)s)
            OR EXISTS (SELECT 1 FROM lots l JOIN supervised_warehouses s ON s.location = l.location
                       WHERE l.lot_uri = %(lot)s AND s.financier_org_id = %(org)s
                       AND %(role)s = 'financier')
        """,
        {"lot": lot_uri, "org": org_id, "role": role},
    ).fetchone()
    return bool(row and row[0])


def cold_chain_watch(conn: Conn) -> list[ColdChainWatch]:
    """Lots in stock at a site with devices bound to it, whose product has a temperature range.

    Lots are placed by the canonical Digital Link of their site's GLN (`gln_uri`).
    """
    with conn.cursor(row_factory=class_row(ColdChainWatch)) as cur:
        return cur.execute(
            "SELECT DISTINCT ds.gln, p.min_temp_c, p.max_temp_c, l.lot_uri, p.category,"
            " l.held_since"
            " FROM device_sites ds"
            " JOIN lots l ON l.location = 'https://id.gs1.org/414/' || ds.gln AND l.quantity > 0"
            " JOIN products p ON p.gtin = l.gtin"
            " WHERE p.min_temp_c IS NOT NULL OR p.max_temp_c IS NOT NULL"
        ).fetchall()


def temperature_minutes(conn: Conn, gln: str, since: datetime) -> list[TemperatureMinute]:
    """The temperature at site `gln` minute by minute, from the minute holding `since` on
    (migration 0035: the per-minute aggregate with TimescaleDB, the raw readings grouped by
    minute without). Telemetry of a site counts only from the devices bound to it
    (`epcis.authority.reading_counts`), whoever else reports."""
    with conn.cursor(row_factory=class_row(TemperatureMinute)) as cur:
        return cur.execute(
            "SELECT bucket, min_value, max_value, mean_value, first_time"
            " FROM site_telemetry_minutes(%s, 'temperature', %s) ORDER BY bucket",
            (gln, since),
        ).fetchall()


def site_minutes(
    conn: Conn, gln: str, metric: str, since: datetime, until: datetime, limit: int
) -> list[SiteMinute]:
    """The latest `limit` minutes of `metric` at site `gln` from the minute holding `since` to
    before `until`, in time order, from the devices bound to the site (as
    `temperature_minutes`: the per-minute aggregate with TimescaleDB)."""
    with conn.cursor(row_factory=class_row(SiteMinute)) as cur:
        latest = cur.execute(
            "SELECT bucket, min_value, max_value, mean_value, readings"
            " FROM site_telemetry_minutes(%s, %s, %s) WHERE bucket < %s"
            " ORDER BY bucket DESC LIMIT %s",
            (gln, metric, since, until, limit),
        ).fetchall()
    return latest[::-1]


def temperatures_in(
    conn: Conn, gln: str, minutes: list[datetime], since: datetime
) -> list[TemperatureReading]:
    """The temperature readings at site `gln` in the minutes starting at `minutes`, from
    `since` on, from the devices bound to the site (as `temperature_minutes`)."""
    with conn.cursor(row_factory=class_row(TemperatureReading)) as cur:
        return cur.execute(
            "SELECT t.time, t.value FROM unnest(%s::timestamptz[]) AS m (start)"
            " JOIN telemetry t ON t.time >= m.start AND t.time < m.start + interval '1 minute'"
            " JOIN device_sites ds ON ds.org_id = t.org_id AND ds.device_id = t.device_id"
            " WHERE ds.gln = %s AND t.metric = 'temperature' AND t.time >= %s",
            (minutes, gln, since),
        ).fetchall()


def expired_lots(conn: Conn, today: date) -> list[str]:
    """Lots in stock whose best-before date is before `today`."""
    rows = conn.execute(
        "SELECT lot_uri FROM lots WHERE best_before < %s AND quantity > 0", (today,)
    ).fetchall()
    return [str(uri) for (uri,) in rows]
