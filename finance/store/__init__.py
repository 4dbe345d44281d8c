"""Finance persistence, one module per concern: attribution, goods, credit, journal, audit.

- `attribution`: following the event log (cursor, log reads), lot memberships, lot evidence and
  identifiers no lot has claimed yet, and the lots' rows as the worker folds them.
- `goods`: products, warehouses and their sensors, supervision, policies, lots as read back.
- `credit`: credit lines, pledges, money movements, applications and decisions, risk flags,
  margin calls, receivables.
- `journal`: the sealed, append-only finance journal.
- `audit`: the reads finance's audit compares with the chain and with the journal.

All SQL of the finance domain lives in these modules; rows come back as dataclasses.
"""

from __future__ import annotations

# The keys a chunk looks up, as a relation to join, planned afresh on every call (prepare=False).
# As `col = ANY(%s)` in a prepared statement, the generic plan made while lot_members was small
# (a sequential scan; nothing re-plans it where autovacuum is off) tested every row against the
# whole array: seconds per call at 100 000 members. Planned with the real keys and table size,
# each key is an index probe.
KEYS = "(SELECT DISTINCT unnest(%s::text[]) AS key) AS k"
