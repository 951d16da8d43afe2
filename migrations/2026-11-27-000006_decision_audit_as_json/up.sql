-- A decision's stored inputs and ranking are written on every routing and read only to
-- explain or replay it: keep them as plain JSON text, uncompressed, which costs far less to
-- write than parsed, compressed JSONB.
ALTER TABLE decisions ALTER COLUMN inputs TYPE json USING inputs::json;
ALTER TABLE decisions ALTER COLUMN ranking TYPE json USING ranking::json;
ALTER TABLE decisions ALTER COLUMN inputs SET STORAGE EXTERNAL;
ALTER TABLE decisions ALTER COLUMN ranking SET STORAGE EXTERNAL;
