CREATE OR REPLACE FUNCTION goliath_open_load_delta() RETURNS trigger AS $$
DECLARE
    my_slot SMALLINT := goliath_load_slot();
    person TEXT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO open_loads (human_id, slot, open_items)
        SELECT assignee_id, my_slot, count(*) FROM new_rows
        WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
        GROUP BY assignee_id
        ORDER BY assignee_id
        ON CONFLICT (human_id, slot) DO UPDATE
            SET open_items = open_loads.open_items + EXCLUDED.open_items;
        -- Capacity: wait for the other transactions assigning the same limited people (in id
        -- order, so two never wait on each other), then count with a fresh snapshot, which
        -- sees what they committed.
        FOR person IN
            SELECT h.id FROM humans h
             WHERE h.max_active IS NOT NULL
               AND h.id IN (SELECT assignee_id FROM new_rows
                             WHERE status IN ('assigned', 'reopened'))
             ORDER BY h.id
        LOOP
            PERFORM pg_advisory_xact_lock(1735355501, hashtext(person));
        END LOOP;
        IF FOUND AND EXISTS (
            SELECT 1 FROM open_loads l JOIN humans h ON h.id = l.human_id
             WHERE h.max_active IS NOT NULL
               AND l.human_id IN (SELECT assignee_id FROM new_rows
                                  WHERE status IN ('assigned', 'reopened'))
             GROUP BY h.id, h.max_active
            HAVING sum(l.open_items) > h.max_active
        ) THEN
            RAISE EXCEPTION 'new assignments would take someone past max_active'
                USING ERRCODE = '40001',
                      HINT = 'another batch assigned the same person meanwhile; retry with fresh loads';
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO open_loads (human_id, slot, open_items)
        SELECT assignee_id, my_slot, -count(*) FROM old_rows
        WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
        GROUP BY assignee_id
        ORDER BY assignee_id
        ON CONFLICT (human_id, slot) DO UPDATE
            SET open_items = open_loads.open_items + EXCLUDED.open_items;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
