UPDATE work_items SET status = 'undecided' WHERE status = 'unassigned';
ALTER TABLE work_items
    DROP COLUMN pagerduty_status,
    DROP COLUMN pagerduty_assignees,
    DROP COLUMN pagerduty_event_at,
    DROP COLUMN escalate_at,
    DROP COLUMN routing_mode,
    DROP COLUMN taken_by;
