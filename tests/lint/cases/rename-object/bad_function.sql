ALTER FUNCTION user_score(bigint) RENAME TO account_score;
