DROP FUNCTION user_score(bigint);
