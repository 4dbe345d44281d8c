-- The error declarations (migration 0041) the finance worker has reacted to: each is applied
-- (its lots folded again without the declared event, journaled) in the transaction that adds
-- its row here, so a restart neither misses one nor applies one twice.
CREATE TABLE declarations_applied (
    declaration_id  bigint PRIMARY KEY REFERENCES error_declarations (id),
    applied_at      timestamptz NOT NULL DEFAULT now()
);
