ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_work_item_id_fkey
    FOREIGN KEY (work_item_id) REFERENCES work_items (id);
ALTER TABLE work_item_events ADD CONSTRAINT work_item_events_work_item_id_fkey
    FOREIGN KEY (work_item_id) REFERENCES work_items (id) ON DELETE CASCADE;

DROP TRIGGER work_items_open_load_insert ON work_items;
DROP TRIGGER work_items_open_load_update ON work_items;
DROP TRIGGER work_items_open_load_delete ON work_items;
DROP FUNCTION goliath_open_load_delta();

CREATE FUNCTION goliath_track_open_load() RETURNS trigger AS $$
DECLARE
    was_open BOOLEAN := TG_OP = 'UPDATE' AND OLD.assignee_id IS NOT NULL
                        AND OLD.status IN ('assigned', 'reopened');
    is_open  BOOLEAN := TG_OP IN ('INSERT', 'UPDATE') AND NEW.assignee_id IS NOT NULL
                        AND NEW.status IN ('assigned', 'reopened');
BEGIN
    IF TG_OP = 'DELETE' THEN
        was_open := OLD.assignee_id IS NOT NULL AND OLD.status IN ('assigned', 'reopened');
    END IF;
    IF was_open AND is_open AND OLD.assignee_id = NEW.assignee_id THEN
        RETURN NULL;
    END IF;
    IF was_open THEN
        UPDATE open_loads SET open_items = open_items - 1 WHERE human_id = OLD.assignee_id;
    END IF;
    IF is_open THEN
        INSERT INTO open_loads (human_id, open_items) VALUES (NEW.assignee_id, 1)
        ON CONFLICT (human_id) DO UPDATE SET open_items = open_loads.open_items + 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER work_items_open_load
    AFTER INSERT OR DELETE OR UPDATE OF status, assignee_id ON work_items
    FOR EACH ROW EXECUTE FUNCTION goliath_track_open_load();

ALTER TABLE decisions ALTER COLUMN excluded TYPE jsonb USING excluded::jsonb;
ALTER TABLE decisions ALTER COLUMN inputs SET STORAGE EXTERNAL;
ALTER TABLE decisions ALTER COLUMN ranking SET STORAGE EXTERNAL;
