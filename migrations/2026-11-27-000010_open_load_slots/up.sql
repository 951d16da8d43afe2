-- Intake batches run side by side, yet each updated the same counter row per person, so a
-- batch that assigned someone another batch had just assigned waited for that batch's commit
-- (its fsync included). At 16 connections that wait was a quarter of the batch statement.
-- Each person's count is now spread over slots: a transaction adds to a slot it holds alone
-- (an advisory lock until commit), so counting never waits, and a load is the sum of a
-- person's slots. Only the capacity check still needs to see every committed assignment: it
-- takes a lock per capacity-limited person being assigned, so batches wait for each other
-- only when both give work to the same person who has a max_active.
ALTER TABLE open_loads ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE open_loads DROP CONSTRAINT open_loads_pkey;
ALTER TABLE open_loads ADD PRIMARY KEY (human_id, slot);

-- A counter slot no other open transaction is writing to (two-key advisory locks are a key
-- space apart from the one-key assignment lock). Calling it again in the same transaction
-- returns the same slot, as the lock is re-entrant. When all are taken, any slot will do.
CREATE FUNCTION goliath_load_slot() RETURNS smallint AS $$
BEGIN
    FOR s IN 0..7 LOOP
        IF pg_try_advisory_xact_lock(1735355500, s) THEN
            RETURN s;
        END IF;
    END LOOP;
    RETURN (txid_current() % 8)::smallint;
END;
$$ LANGUAGE plpgsql VOLATILE;

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

CREATE OR REPLACE FUNCTION goliath_open_load_row_update() RETURNS trigger AS $$
DECLARE
    my_slot SMALLINT := goliath_load_slot();
BEGIN
    IF OLD.assignee_id IS NOT NULL AND OLD.status IN ('assigned', 'reopened') THEN
        INSERT INTO open_loads (human_id, slot, open_items) VALUES (OLD.assignee_id, my_slot, -1)
        ON CONFLICT (human_id, slot) DO UPDATE SET open_items = open_loads.open_items - 1;
    END IF;
    IF NEW.assignee_id IS NOT NULL AND NEW.status IN ('assigned', 'reopened') THEN
        INSERT INTO open_loads (human_id, slot, open_items) VALUES (NEW.assignee_id, my_slot, 1)
        ON CONFLICT (human_id, slot) DO UPDATE SET open_items = open_loads.open_items + 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
