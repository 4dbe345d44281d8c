-- Log positions the finance worker could not apply (issue 14, robustness): one event that
-- breaks the fold (a value beyond what storage holds, a bug) is set aside here, journaled as
-- `event_not_applied`, and the worker carries on, so that it never stops monitoring for
-- everyone else. The event itself stays in the log and the repository.
CREATE TABLE finance_dead_letters (
    log_index  bigint PRIMARY KEY,
    event_hash bytea NOT NULL,
    error      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
