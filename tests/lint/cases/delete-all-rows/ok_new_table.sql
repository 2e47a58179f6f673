CREATE TABLE staging (id bigint);
DELETE FROM staging;
TRUNCATE staging;
