DROP TRIGGER work_items_intake_capacity ON work_items;
DROP FUNCTION goliath_intake_capacity();
DROP TRIGGER work_items_open_load_insert ON work_items;
DROP FUNCTION goliath_open_load_row_insert();
DROP FUNCTION goliath_check_capacity(TEXT[]);
CREATE TRIGGER work_items_open_load_insert AFTER INSERT ON work_items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION goliath_open_load_delta();
