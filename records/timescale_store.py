"""TimescaleDB's telemetry policies (compression, retention, aggregate refresh) from settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from records.db import Conn


@dataclass(frozen=True)
class TelemetryPolicies:
    """How long telemetry stays uncompressed, and is kept at all (None: for ever)."""

    compress_after: timedelta
    retain_for: timedelta | None


def timescaledb_in_use(conn: Conn) -> bool:
    """Whether the migrations ran with TimescaleDB (installed in this database)."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None


def set_telemetry_policies(conn: Conn, policies: TelemetryPolicies) -> bool:
    """Replace the telemetry hypertable's policies by these; False (and nothing done) on plain
    PostgreSQL, where telemetry is neither compressed nor dropped.

    The continuous aggregate is refreshed over the retention window only: a refresh over
    dropped raw data would empty the buckets made from it."""
    if not timescaledb_in_use(conn):
        return False
    with conn.transaction():
        conn.execute("SELECT remove_compression_policy('telemetry', if_exists => true)")
        conn.execute(
            "SELECT add_compression_policy('telemetry', compress_after => %s::interval)",
            (policies.compress_after,),
        )
        conn.execute("SELECT remove_retention_policy('telemetry', if_exists => true)")
        if policies.retain_for is not None:
            conn.execute(
                "SELECT add_retention_policy('telemetry', drop_after => %s::interval)",
                (policies.retain_for,),
            )
        conn.execute(
            "SELECT remove_continuous_aggregate_policy('telemetry_minutes', if_exists => true)"
        )
        conn.execute(
            "SELECT add_continuous_aggregate_policy('telemetry_minutes',"
            " start_offset => %s::interval, end_offset => interval '1 minute',"
            " schedule_interval => interval '1 minute')",
            (policies.retain_for,),
        )
    return True
