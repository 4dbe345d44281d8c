-- An HMAC of each finance journal entry under a key the database never holds (TRACEFIN_JOURNAL_KEY):
-- a decision edited together with its journal entry is then caught by the audit.
-- Entries written before this migration have no seal; the audit reports them as unsealed.
ALTER TABLE finance_journal ADD COLUMN seal bytea;
