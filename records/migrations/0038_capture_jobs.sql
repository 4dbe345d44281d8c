-- Capture jobs of the EPCIS 2.0 REST binding (issue 16 item 1): POST /epcis/capture keeps the
-- document here and answers 202 at once; `tracefin capture-worker` works the job. A job is a
-- row, not a task in the API's memory, so it survives a restart of the API; the worker stores
-- a job's events and marks the job finished in one transaction, so a worker killed mid-job
-- leaves it to be worked again, never half stored.
CREATE TABLE capture_jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The public id: random, so it tells nothing of how many jobs others have.
    capture_id      uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    org_id          bigint NOT NULL REFERENCES orgs (id),
    -- The API key's prefix that captured (as attestations.api_user): the proof of origin.
    api_user        text,
    error_behaviour text NOT NULL CHECK (error_behaviour IN ('rollback', 'proceed')),
    -- The body as received; the API refuses bodies over the capture file-size limit first.
    payload         bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    success         boolean,
    -- Per event, in document order: {index, eventID (the hash ID), status: accepted|duplicate}.
    results         jsonb NOT NULL DEFAULT '[]',
    -- RFC 9457 problems, each with the reject `code` and the event's `index` (-1: the job).
    errors          jsonb NOT NULL DEFAULT '[]',
    CHECK ((finished_at IS NULL) = (success IS NULL))
);

-- Each time a worker set about a job, committed (from a connection of its own) before the
-- work, whose transaction holds the job: a job that kills its worker every time is seen to, and
-- given up after a few tries instead of retried for ever.
CREATE TABLE capture_job_attempts (
    job_id      bigint NOT NULL REFERENCES capture_jobs (id),
    started_at  timestamptz NOT NULL
);
CREATE INDEX capture_job_attempts_job ON capture_job_attempts (job_id);

-- The waiting jobs, oldest first, are what the workers claim.
CREATE INDEX capture_jobs_waiting ON capture_jobs (id) WHERE finished_at IS NULL;
-- An org's own jobs, newest first (GET /epcis/capture).
CREATE INDEX capture_jobs_by_org ON capture_jobs (org_id, id);

-- Wake the workers (LISTEN tracefin_capture_jobs) when a job is queued; they also poll.
CREATE FUNCTION tracefin_capture_job_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tracefin_capture_jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER capture_jobs_queued
    AFTER INSERT ON capture_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_capture_job_queued();
