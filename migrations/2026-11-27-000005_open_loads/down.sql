DROP TRIGGER work_items_open_load ON work_items;
DROP FUNCTION goliath_track_open_load();
DROP TABLE open_loads;
