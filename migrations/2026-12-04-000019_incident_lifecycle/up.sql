-- A work item follows its incident after the trigger: PagerDuty's own status and assignees,
-- and the time of the latest PagerDuty event applied to it. PagerDuty orders events per
-- incident and delivers at least once, so an event older than `pagerduty_event_at` is recorded
-- in the history but never rolls the item back.
ALTER TABLE work_items
    ADD COLUMN pagerduty_status TEXT NOT NULL DEFAULT 'triggered',
    ADD COLUMN pagerduty_assignees TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN pagerduty_event_at TIMESTAMPTZ,
    -- When the owner's time to act runs out (set when an owner is given the item, cleared when
    -- they act or the item closes); the worker escalates items past it, each deadline once.
    ADD COLUMN escalate_at TIMESTAMPTZ,
    -- `shadow`: Goliath recommends and learns but assigns nobody; people route it themselves,
    -- and `taken_by` is the first person who took it (in Jira or PagerDuty), to compare with
    -- the recommendation.
    ADD COLUMN routing_mode TEXT NOT NULL DEFAULT 'assign',
    ADD COLUMN taken_by TEXT;
CREATE INDEX work_items_escalate_at ON work_items (escalate_at) WHERE escalate_at IS NOT NULL;

-- Service names match case-insensitively: they are kept in lower case from now on.
UPDATE humans SET services = ARRAY(
    SELECT DISTINCT lower(btrim(s)) FROM unnest(services) AS s ORDER BY 1)
 WHERE services::text <> lower(services::text);
UPDATE work_items SET service = lower(service) WHERE service <> lower(service);

-- An item nobody could take waits visibly as `unassigned` (it was `undecided`) and is decided
-- again as soon as someone becomes eligible.
UPDATE work_items SET status = 'unassigned' WHERE status = 'undecided';
