-- @estimated-duration: 10 minutes
-- pgshift-ignore: vacuum-full
VACUUM FULL users;
