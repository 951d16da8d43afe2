CREATE TEMPORARY TABLE open_load_sums AS
    SELECT human_id, sum(open_items)::integer AS open_items FROM open_loads GROUP BY human_id;
DELETE FROM open_loads;
ALTER TABLE open_loads DROP CONSTRAINT open_loads_pkey;
ALTER TABLE open_loads DROP COLUMN slot;
ALTER TABLE open_loads ADD PRIMARY KEY (human_id);
INSERT INTO open_loads (human_id, open_items) SELECT human_id, open_items FROM open_load_sums;
DROP TABLE open_load_sums;

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

CREATE OR REPLACE FUNCTION goliath_open_load_row_update() RETURNS trigger AS $$
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

DROP FUNCTION goliath_load_slot();
