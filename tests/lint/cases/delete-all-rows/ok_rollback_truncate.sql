TRUNCATE countries;
