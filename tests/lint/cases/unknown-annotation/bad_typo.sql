-- @zero-downtme: true
SELECT 1;
