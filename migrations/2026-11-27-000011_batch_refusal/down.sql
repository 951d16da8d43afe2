DROP FUNCTION goliath_refuse(TEXT);
