-- A second change counter, for loads changed by anything but the intake's batch statement (an
-- item resolved or handed on, an owner deleted). The intake only ever adds to loads, and each
-- batch statement now returns the totals of the people it assigned; so the intake keeps loads
-- between batches and reads them again only when this counter moved. Each batch statement
-- names the counters it decided with and is refused when either moved, so a batch is never
-- decided on loads older than the last change outside the intake.
ALTER TABLE decision_inputs_version ADD COLUMN loads_n BIGINT NOT NULL DEFAULT 0;

-- The roster counter's function now moves the counter its trigger names (`n` when none),
-- still once per transaction for each.
CREATE OR REPLACE FUNCTION goliath_decision_inputs_changed() RETURNS trigger AS $$
DECLARE
    counter TEXT := coalesce(TG_ARGV[0], 'n');
BEGIN
    IF coalesce(current_setting('goliath.' || counter || '_changed', true), '') <> 'on' THEN
        EXECUTE format('UPDATE decision_inputs_version SET %1$I = %1$I + 1', counter);
        PERFORM set_config('goliath.' || counter || '_changed', 'on', true);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- The batch statement sets goliath.loads_counted for its own transaction; its additions are
-- the ones the intake counts itself.
CREATE CONSTRAINT TRIGGER open_loads_changed AFTER INSERT OR UPDATE OR DELETE ON open_loads
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (coalesce(current_setting('goliath.loads_counted', true), '') <> 'on')
    EXECUTE FUNCTION goliath_decision_inputs_changed('loads_n');
CREATE TRIGGER open_loads_truncated AFTER TRUNCATE ON open_loads
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_decision_inputs_changed('loads_n');
