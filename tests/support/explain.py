"""A connection that records the plan of every statement it runs: to show the store's queries'
plans without copying their SQL."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql


class ExplainingCursor(psycopg.Cursor[Any]):
    """Runs `EXPLAIN` of each statement first, adding its plan to the connection's `plans`."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> ExplainingCursor:
        prefix = "EXPLAIN (COSTS OFF) "
        explain = prefix + query if isinstance(query, str) else sql.SQL(prefix) + query
        factory = self.row_factory
        self.row_factory = psycopg.rows.tuple_row
        try:
            lines = [str(row[0]) for row in super().execute(explain, params).fetchall()]
        finally:
            self.row_factory = factory
        plans: list[str] = getattr(self.connection, "plans", [])
        plans.append("\n".join(lines))
        self.connection.plans = plans  # type: ignore[attr-defined]
        super().execute(query, params, **kwargs)
        return self
