-- Intake batches no longer wait for one another: each decides from the loads it read, and
-- another batch may give the same person work before it commits. The insert trigger, which
-- already updates each new assignee's counter, now also checks their capacity once the
-- counter holds every committed assignment (a concurrent batch's upsert of the same row waits
-- for that batch to commit). Over capacity, the batch fails with a serialization failure
-- (40001) and the intake retries it with fresh loads. Only inserts are checked: owners changed
-- by hand or by a reopened issue may go over, as before.
CREATE OR REPLACE FUNCTION goliath_open_load_delta() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO open_loads (human_id, open_items)
        SELECT assignee_id, count(*) FROM new_rows
        WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
        GROUP BY assignee_id
        ORDER BY assignee_id
        ON CONFLICT (human_id) DO UPDATE SET open_items = open_loads.open_items + EXCLUDED.open_items;
        IF EXISTS (
            SELECT 1 FROM open_loads l JOIN humans h ON h.id = l.human_id
             WHERE h.max_active IS NOT NULL AND l.open_items > h.max_active
               AND l.human_id IN (SELECT assignee_id FROM new_rows
                                  WHERE status IN ('assigned', 'reopened'))
        ) THEN
            RAISE EXCEPTION 'new assignments would take someone past max_active'
                USING ERRCODE = '40001',
                      HINT = 'another batch assigned the same person meanwhile; retry with fresh loads';
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE open_loads l SET open_items = l.open_items - d.n
        FROM (SELECT assignee_id, count(*) AS n FROM old_rows
              WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
              GROUP BY assignee_id) d
        WHERE l.human_id = d.assignee_id;
    ELSE
        INSERT INTO open_loads (human_id, open_items)
        SELECT human_id, sum(delta) FROM (
            SELECT assignee_id AS human_id, 1 AS delta FROM new_rows
            WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
            UNION ALL
            SELECT assignee_id, -1 FROM old_rows
            WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
        ) changes
        GROUP BY human_id
        HAVING sum(delta) <> 0
        ORDER BY human_id
        ON CONFLICT (human_id) DO UPDATE SET open_items = open_loads.open_items + EXCLUDED.open_items;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Indexes every intake insert paid for and few reads use: a work item has no Jira key until
-- its issue exists, and jobs are looked up by state only when queued (jobs_ready), running
-- (jobs_running) or dead.
DROP INDEX work_items_jira_key;
CREATE INDEX work_items_jira_key ON work_items (jira_key) WHERE jira_key IS NOT NULL;
DROP INDEX jobs_state;
CREATE INDEX jobs_dead ON jobs (id) WHERE state = 'dead';

-- A PagerDuty work item's "received" history line is now read from its raw payload rather
-- than stored with every incident taken in.
DELETE FROM work_item_events WHERE kind = 'received';
