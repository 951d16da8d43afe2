-- A refusal names its reason as the error's constraint name, so the application recognises it
-- by a field of the error rather than by the text of its message (which a translation or a
-- reworded message would change). The SQLSTATE stays GL001 for anyone reading the logs.
CREATE OR REPLACE FUNCTION goliath_refuse(reason TEXT) RETURNS BOOLEAN AS $$
BEGIN
    RAISE EXCEPTION 'goliath: %', reason USING ERRCODE = 'GL001', CONSTRAINT = reason;
END;
$$ LANGUAGE plpgsql VOLATILE;
