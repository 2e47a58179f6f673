-- @lint-ignore: prefer-jsonb
CREATE TABLE t (id bigint PRIMARY KEY, a json, b json);
