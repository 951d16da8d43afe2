-- A change counter for what decisions read besides loads: the roster and learned state. Each
-- intake batch read all of it again; it changes only on an admin edit or an outcome, so the
-- decision engine now keeps it between batches and reads it again when the counter moved.
-- The counter moves at the commit of any change to these tables (a deferred trigger, so the
-- row is locked only while committing); the token tells one database's counter from
-- another's.
CREATE TABLE decision_inputs_version (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    token    TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
    n        BIGINT NOT NULL DEFAULT 0
);
INSERT INTO decision_inputs_version DEFAULT VALUES;

-- Once per transaction: a roster import changes thousands of rows, and each update of the one
-- counter row inside a transaction leaves a version that the next update scans past.
CREATE FUNCTION goliath_decision_inputs_changed() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('goliath.decision_inputs_changed', true), '') <> 'on' THEN
        UPDATE decision_inputs_version SET n = n + 1;
        PERFORM set_config('goliath.decision_inputs_changed', 'on', true);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER humans_changed AFTER INSERT OR UPDATE OR DELETE ON humans
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION goliath_decision_inputs_changed();
CREATE CONSTRAINT TRIGGER skill_stats_changed AFTER INSERT OR UPDATE OR DELETE ON skill_stats
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION goliath_decision_inputs_changed();
CREATE CONSTRAINT TRIGGER person_states_changed AFTER INSERT OR UPDATE OR DELETE ON person_states
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION goliath_decision_inputs_changed();
CREATE TRIGGER humans_truncated AFTER TRUNCATE ON humans
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_decision_inputs_changed();
CREATE TRIGGER skill_stats_truncated AFTER TRUNCATE ON skill_stats
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_decision_inputs_changed();
CREATE TRIGGER person_states_truncated AFTER TRUNCATE ON person_states
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_decision_inputs_changed();
