-- A second change counter, for loads changed by anything but the intake's batch statement (an
-- item resolved or handed on, an owner deleted). The intake only ever adds to loads, and each
-- batch statement now returns the totals of the people it assigned; so the intake keeps loads
-- between batches and reads them again only when this counter moved. Each batch statement
-- names the counters it decided with and is refused when either moved, so a batch is never
-- decided on loads older than the last change outside the intake.
ALTER TABLE decision_inputs_version ADD COLUMN loads_n BIGINT NOT NULL DEFAULT 0;

-- Once per transaction, as for the roster counter.
CREATE FUNCTION goliath_loads_changed() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('goliath.loads_changed', true), '') <> 'on' THEN
        UPDATE decision_inputs_version SET loads_n = loads_n + 1;
        PERFORM set_config('goliath.loads_changed', 'on', true);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- The batch statement sets goliath.loads_counted for its own transaction; its additions are
-- the ones the intake counts itself.
CREATE CONSTRAINT TRIGGER open_loads_changed AFTER INSERT OR UPDATE OR DELETE ON open_loads
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (coalesce(current_setting('goliath.loads_counted', true), '') <> 'on')
    EXECUTE FUNCTION goliath_loads_changed();
CREATE TRIGGER open_loads_truncated AFTER TRUNCATE ON open_loads
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_loads_changed();
