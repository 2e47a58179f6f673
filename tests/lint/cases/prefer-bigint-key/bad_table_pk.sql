CREATE TABLE tags (id int4, name text, PRIMARY KEY (id));
