DROP TRIGGER open_loads_truncated ON open_loads;
DROP TRIGGER open_loads_changed ON open_loads;
DROP FUNCTION goliath_loads_changed();
ALTER TABLE decision_inputs_version DROP COLUMN loads_n;
