-- One word for a person Goliath routes to: `humans`, `human_id`, and now `human_states`.
ALTER TABLE person_states RENAME TO human_states;
ALTER INDEX person_states_pkey RENAME TO human_states_pkey;
ALTER TRIGGER person_states_changed ON human_states RENAME TO human_states_changed;
ALTER TRIGGER person_states_truncated ON human_states RENAME TO human_states_truncated;
