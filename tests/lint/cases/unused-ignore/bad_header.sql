-- @lint-ignore: drop-table
SELECT 1;
