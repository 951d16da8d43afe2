-- An item in a waiting status (JIRA_WAITING_STATUSES: waiting on the customer, a vendor...)
-- does not count in its owner's open load: the owner is free to take other work meanwhile.
-- The Jira intake sets `waiting` from the issue's latest status change.
ALTER TABLE work_items ADD COLUMN waiting BOOLEAN NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION goliath_open_load_row_update() RETURNS trigger AS $$
DECLARE
    my_slot SMALLINT := goliath_load_slot();
BEGIN
    IF OLD.assignee_id IS NOT NULL AND OLD.status IN ('assigned', 'reopened') AND NOT OLD.waiting THEN
        INSERT INTO open_loads (human_id, slot, open_items) VALUES (OLD.assignee_id, my_slot, -1)
        ON CONFLICT (human_id, slot) DO UPDATE SET open_items = open_loads.open_items - 1;
    END IF;
    IF NEW.assignee_id IS NOT NULL AND NEW.status IN ('assigned', 'reopened') AND NOT NEW.waiting THEN
        INSERT INTO open_loads (human_id, slot, open_items) VALUES (NEW.assignee_id, my_slot, 1)
        ON CONFLICT (human_id, slot) DO UPDATE SET open_items = open_loads.open_items + 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER work_items_open_load_update ON work_items;
CREATE TRIGGER work_items_open_load_update
    AFTER UPDATE OF status, assignee_id, waiting ON work_items
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
          OR OLD.waiting IS DISTINCT FROM NEW.waiting)
    EXECUTE FUNCTION goliath_open_load_row_update();

DROP TRIGGER work_items_open_load_insert ON work_items;
CREATE TRIGGER work_items_open_load_insert AFTER INSERT ON work_items FOR EACH ROW
    WHEN (NEW.assignee_id IS NOT NULL AND NEW.status IN ('assigned', 'reopened') AND NOT NEW.waiting
          AND coalesce(current_setting('goliath.loads_counted', true), '') <> 'on')
    EXECUTE FUNCTION goliath_open_load_row_insert();

CREATE OR REPLACE FUNCTION goliath_open_load_delta() RETURNS trigger AS $$
DECLARE
    my_slot SMALLINT := goliath_load_slot();
BEGIN
    INSERT INTO open_loads (human_id, slot, open_items)
    SELECT assignee_id, my_slot, -count(*) FROM old_rows
    WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened') AND NOT waiting
    GROUP BY assignee_id
    ORDER BY assignee_id
    ON CONFLICT (human_id, slot) DO UPDATE
        SET open_items = open_loads.open_items + EXCLUDED.open_items;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
