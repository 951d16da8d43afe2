DROP TABLE person_states;
ALTER TABLE work_items DROP COLUMN context;
