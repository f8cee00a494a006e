-- The process that claimed a job run (`host:pid`) and when it last said it was still at it:
-- a start-up closes as abandoned only runs whose process is gone (this host, pid not alive)
-- or whose heartbeat stopped, never the live run of another replica.
ALTER TABLE job_runs ADD COLUMN owner TEXT;
ALTER TABLE job_runs ADD COLUMN heartbeat_at TIMESTAMPTZ;
