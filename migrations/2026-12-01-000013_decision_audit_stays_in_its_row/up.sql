-- A decision row is about 2 KB once its audit is compressed: right at the size above which
-- PostgreSQL moves the largest column out to the TOAST table (another heap row and index
-- entry per incident, written in the intake's batch). With loads in the inputs, about a
-- quarter of the rows went out. MAIN storage still compresses every column, but keeps the row
-- whole unless it would not fit in a page.
ALTER TABLE decisions
    ALTER COLUMN work_item_id SET STORAGE MAIN,
    ALTER COLUMN primary_human_id SET STORAGE MAIN,
    ALTER COLUMN backup_ids SET STORAGE MAIN,
    ALTER COLUMN explanation SET STORAGE MAIN,
    ALTER COLUMN undecided_reason SET STORAGE MAIN,
    ALTER COLUMN ranking SET STORAGE MAIN,
    ALTER COLUMN excluded SET STORAGE MAIN,
    ALTER COLUMN inputs SET STORAGE MAIN,
    ALTER COLUMN model_version SET STORAGE MAIN;
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000
       AND EXISTS (SELECT 1 FROM pg_settings
                   WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE decisions ALTER COLUMN explanation SET COMPRESSION lz4';
    END IF;
END
$$;
