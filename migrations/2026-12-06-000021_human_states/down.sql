ALTER TRIGGER human_states_truncated ON human_states RENAME TO person_states_truncated;
ALTER TRIGGER human_states_changed ON human_states RENAME TO person_states_changed;
ALTER INDEX human_states_pkey RENAME TO person_states_pkey;
ALTER TABLE human_states RENAME TO person_states;
