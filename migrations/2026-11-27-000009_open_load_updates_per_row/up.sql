-- The statement-level update trigger ran for every UPDATE of work_items, including the
-- executor's setting of each new item's Jira key, and copied the old and new rows (raw
-- payload included) into transition tables to find nothing to count: a trigger with
-- transition tables cannot be limited to some columns or given a WHEN condition. Updates
-- change owners one row at a time (the learner, an override, a re-decision, all under the
-- assignment lock), so a row trigger that fires only when the status or the owner changes
-- does the same work, and nothing at all for other updates. Inserts keep their statement
-- trigger (one counter update per intake batch).
DROP TRIGGER work_items_open_load_update ON work_items;

CREATE FUNCTION goliath_open_load_row_update() RETURNS trigger AS $$
BEGIN
    IF OLD.assignee_id IS NOT NULL AND OLD.status IN ('assigned', 'reopened') THEN
        UPDATE open_loads SET open_items = open_items - 1 WHERE human_id = OLD.assignee_id;
    END IF;
    IF NEW.assignee_id IS NOT NULL AND NEW.status IN ('assigned', 'reopened') THEN
        INSERT INTO open_loads (human_id, open_items) VALUES (NEW.assignee_id, 1)
        ON CONFLICT (human_id) DO UPDATE SET open_items = open_loads.open_items + 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER work_items_open_load_update
    AFTER UPDATE OF status, assignee_id ON work_items
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.assignee_id IS DISTINCT FROM NEW.assignee_id)
    EXECUTE FUNCTION goliath_open_load_row_update();
