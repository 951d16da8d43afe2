DROP TRIGGER work_items_open_load_update ON work_items;
DROP FUNCTION goliath_open_load_row_update();
CREATE TRIGGER work_items_open_load_update
    AFTER UPDATE ON work_items REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION goliath_open_load_delta();
