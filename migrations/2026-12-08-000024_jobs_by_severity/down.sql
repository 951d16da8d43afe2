DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (run_at, id) WHERE state = 'queued';
ALTER TABLE jobs DROP COLUMN priority;
DROP FUNCTION goliath_severity_rank(TEXT);
