-- Writes that happen once per incident, made cheaper for batches.

-- The decision audit (inputs, ranking, exclusions) is several KB of JSON per incident, read
-- only to explain or replay a decision. Kept as JSON text, compressed with lz4 where the
-- server has it (a fraction of pglz's cost), so it mostly stays in the row instead of being
-- cut into TOAST chunks.
ALTER TABLE decisions ALTER COLUMN excluded TYPE json USING excluded::json;
ALTER TABLE decisions ALTER COLUMN inputs SET STORAGE EXTENDED;
ALTER TABLE decisions ALTER COLUMN ranking SET STORAGE EXTENDED;
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000
       AND EXISTS (SELECT 1 FROM pg_settings
                   WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE decisions ALTER COLUMN inputs SET COMPRESSION lz4, '
             || 'ALTER COLUMN ranking SET COMPRESSION lz4, '
             || 'ALTER COLUMN excluded SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE work_items ALTER COLUMN raw_payload SET COMPRESSION lz4';
    END IF;
END
$$;

-- Open loads kept per statement instead of per row: a batch of new work items updates each
-- assignee's counter once. The net change per person is the rows that became open minus the
-- rows that stopped being open, which is what the per-row trigger added up to.
DROP TRIGGER work_items_open_load ON work_items;
DROP FUNCTION goliath_track_open_load();

CREATE FUNCTION goliath_open_load_delta() RETURNS trigger AS $$
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

CREATE TRIGGER work_items_open_load_insert
    AFTER INSERT ON work_items REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_open_load_delta();
CREATE TRIGGER work_items_open_load_update
    AFTER UPDATE ON work_items REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_open_load_delta();
CREATE TRIGGER work_items_open_load_delete
    AFTER DELETE ON work_items REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_open_load_delta();

-- Deliveries and history lines are append-only logs written only in the statement that
-- writes their work item, and work items are never deleted; their foreign keys checked each
-- row against work_items (a fifth of the intake's database time) and guarded nothing the
-- write path does not already guarantee. Decisions keep theirs.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_work_item_id_fkey;
ALTER TABLE work_item_events DROP CONSTRAINT work_item_events_work_item_id_fkey;
