-- Since the intake counts its own loads (000012), goliath_open_load_delta serves only the
-- statement-level delete trigger; its insert branch, with a copy of the capacity check now in
-- goliath_check_capacity, could no longer run.
CREATE OR REPLACE FUNCTION goliath_open_load_delta() RETURNS trigger AS $$
DECLARE
    my_slot SMALLINT := goliath_load_slot();
BEGIN
    INSERT INTO open_loads (human_id, slot, open_items)
    SELECT assignee_id, my_slot, -count(*) FROM old_rows
    WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
    GROUP BY assignee_id
    ORDER BY assignee_id
    ON CONFLICT (human_id, slot) DO UPDATE
        SET open_items = open_loads.open_items + EXCLUDED.open_items;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
