-- An organisation's name as people read it ("Ningbo Haixian Foods Co."), shown on the consumer
-- page as the producer instead of its slug. Optional: a page falls back to the slug.
ALTER TABLE orgs ADD COLUMN name text CHECK (length(name) BETWEEN 1 AND 200);
