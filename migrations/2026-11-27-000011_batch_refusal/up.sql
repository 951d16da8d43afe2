-- Lets a statement fail on a condition it computed, so that, run on its own, it writes all
-- or nothing without an explicit transaction (the intake's batch statement uses it when an
-- incident in a batch turned out to have a work item already).
CREATE FUNCTION goliath_refuse(reason TEXT) RETURNS BOOLEAN AS $$
BEGIN
    RAISE EXCEPTION 'goliath: %', reason USING ERRCODE = 'GL001';
END;
$$ LANGUAGE plpgsql VOLATILE;
