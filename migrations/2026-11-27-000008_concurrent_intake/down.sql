CREATE OR REPLACE FUNCTION goliath_open_load_delta() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO open_loads (human_id, open_items)
        SELECT assignee_id, count(*) FROM new_rows
        WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
        GROUP BY assignee_id
        ORDER BY assignee_id
        ON CONFLICT (human_id) DO UPDATE SET open_items = open_loads.open_items + EXCLUDED.open_items;
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

DROP INDEX work_items_jira_key;
CREATE INDEX work_items_jira_key ON work_items (jira_key);
DROP INDEX jobs_dead;
CREATE INDEX jobs_state ON jobs (state);

INSERT INTO work_item_events (work_item_id, kind, detail, occurred_at)
SELECT id, 'received',
       jsonb_build_object('source', 'pagerduty',
                          'event_type', raw_payload #> '{event,event_type}',
                          'event_id', raw_payload #> '{event,id}',
                          'incident_id', pagerduty_incident_id,
                          'incident_url', raw_payload #> '{event,data,html_url}'),
       COALESCE((raw_payload #>> '{event,occurred_at}')::timestamptz, received_at)
  FROM work_items WHERE pagerduty_incident_id IS NOT NULL;
