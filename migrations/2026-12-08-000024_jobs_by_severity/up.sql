-- Jobs are served by their work item's severity, then age: under a backlog, a sev1's Jira
-- issue is created before every sev3 that arrived earlier. `priority` is the severity's rank
-- (1 = sev1); a job without a work item ranks with sev4.
CREATE FUNCTION goliath_severity_rank(severity TEXT) RETURNS SMALLINT AS $$
    SELECT CASE severity WHEN 'sev1' THEN 1 WHEN 'sev2' THEN 2 WHEN 'sev3' THEN 3 ELSE 4 END::smallint
$$ LANGUAGE sql IMMUTABLE;

ALTER TABLE jobs ADD COLUMN priority SMALLINT NOT NULL DEFAULT 4;
UPDATE jobs j SET priority = goliath_severity_rank(w.severity)
  FROM work_items w
 WHERE j.state IN ('queued', 'running') AND w.id = j.payload->>'work_item_id';

DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (priority, run_at, id) WHERE state = 'queued';
