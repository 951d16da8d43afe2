ALTER TABLE decisions ALTER COLUMN inputs SET STORAGE EXTENDED;
ALTER TABLE decisions ALTER COLUMN ranking SET STORAGE EXTENDED;
ALTER TABLE decisions ALTER COLUMN inputs TYPE jsonb USING inputs::jsonb;
ALTER TABLE decisions ALTER COLUMN ranking TYPE jsonb USING ranking::jsonb;
