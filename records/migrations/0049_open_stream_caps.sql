-- Each open stream records the cap (TRACEFIN_API_MAX_STREAMS_PER_ORG) of the API process that
-- opened it. An opening is refused once the org holds as many streams as the smallest of its
-- own process's cap and the caps its open streams recorded, so API processes configured
-- differently enforce the strictest cap among them, not each its own. NULL: a stream opened by
-- a process of an earlier version, whose cap is unknown (it counts, but sets no cap).
ALTER TABLE open_streams ADD COLUMN cap integer CHECK (cap > 0);
