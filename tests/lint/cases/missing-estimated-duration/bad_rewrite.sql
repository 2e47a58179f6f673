-- pgshift-ignore: vacuum-full
VACUUM FULL users;
