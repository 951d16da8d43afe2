DROP TRIGGER open_loads_truncated ON open_loads;
DROP TRIGGER open_loads_changed ON open_loads;
CREATE OR REPLACE FUNCTION goliath_decision_inputs_changed() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('goliath.decision_inputs_changed', true), '') <> 'on' THEN
        UPDATE decision_inputs_version SET n = n + 1;
        PERFORM set_config('goliath.decision_inputs_changed', 'on', true);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
ALTER TABLE decision_inputs_version DROP COLUMN loads_n;
