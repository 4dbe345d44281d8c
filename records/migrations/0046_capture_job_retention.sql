-- Finished capture jobs are kept TRACEFIN_CAPTURE_JOB_RETENTION_DAYS, then deleted by the
-- capture worker (their events stay: a job is the receipt of a capture, not its evidence).
-- This index finds the expired ones without reading the waiting or the recent ones.
CREATE INDEX capture_jobs_finished ON capture_jobs (finished_at) WHERE finished_at IS NOT NULL;
