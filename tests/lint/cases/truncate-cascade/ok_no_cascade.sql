-- pgshift-ignore: delete-all-rows
TRUNCATE staging_users;
