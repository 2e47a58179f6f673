CREATE TABLE b (room int, during tstzrange);
ALTER TABLE b ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&);
