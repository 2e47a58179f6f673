CREATE TABLE users (id bigint PRIMARY KEY, name text CHECK (length(name) <= 100), code varchar);
