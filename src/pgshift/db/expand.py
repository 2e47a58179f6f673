"""The catalog facts expand and contract derive their steps from, read in one query per table.

Objects an expansion creates carry rewrite.expand.MARK in their names and are left out, so a
plan made again after a kill mid-expand derives the very steps the first plan did (the
resumed run checks the statements already done against them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from pgshift.model import ColumnFacts, Reference, TableConstraint, TableFacts, TableIndex
from pgshift.rewrite.backfill import Relation
from pgshift.rewrite.expand import MARK

_FACTS_SQL = """
WITH t AS (SELECT c.oid, n.nspname, c.relname, c.relacl, c.relkind
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.oid = to_regclass(%(name)s) AND c.relkind IN ('r', 'p'))
SELECT t.nspname, t.relname, t.relkind = 'p',
  (SELECT coalesce(json_agg(json_build_object(
      'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
      'default', pg_get_expr(d.adbin, d.adrelid), 'identity', a.attidentity::text,
      'generated', a.attgenerated <> '', 'comment', col_description(t.oid, a.attnum),
      'sequence', pg_get_serial_sequence(t.oid::regclass::text, a.attname),
      'grants', (SELECT coalesce(json_agg(json_build_array(
                   CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                   g.privilege_type)), '[]') FROM aclexplode(a.attacl) g))
    ORDER BY a.attnum), '[]')
   FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
     AND strpos(a.attname, %(mark)s) = 0),
  (SELECT coalesce(json_agg(a.attname ORDER BY k.i), '[]')
   FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, i)
   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
   WHERE x.indrelid = t.oid AND x.indisprimary),
  (SELECT coalesce(json_agg(json_build_object(
      'name', i.relname, 'definition', pg_get_indexdef(x.indexrelid),
      'columns', (SELECT coalesce(json_agg(a.attname), '[]') FROM pg_attribute a
                  WHERE a.attrelid = t.oid AND a.attnum > 0
                    AND (a.attnum = ANY (x.indkey) OR EXISTS (
                      SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                        AND d.objid = x.indexrelid AND d.refobjid = t.oid
                        AND d.refobjsubid = a.attnum))),
      'constraint', con.conname, 'primary', x.indisprimary) ORDER BY i.relname), '[]')
   FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
   LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.contype IN ('p', 'u')
   WHERE x.indrelid = t.oid AND strpos(i.relname, %(mark)s) = 0),
  (SELECT coalesce(json_agg(json_build_object(
      'name', con.conname, 'kind', con.contype, 'definition', pg_get_constraintdef(con.oid),
      'columns', (SELECT coalesce(json_agg(a.attname), '[]') FROM pg_attribute a
                  WHERE a.attrelid = t.oid AND a.attnum = ANY (con.conkey))) ORDER BY con.conname),
      '[]')
   FROM pg_constraint con
   WHERE con.conrelid = t.oid AND con.contype IN ('c', 'f') AND strpos(con.conname, %(mark)s) = 0),
  (SELECT coalesce(json_agg(json_build_array(
      con.conname, con.conrelid::regclass::text,
      (SELECT coalesce(json_agg(a.attname), '[]') FROM pg_attribute a
       WHERE a.attrelid = t.oid AND a.attnum = ANY (con.confkey)),
      pg_get_constraintdef(con.oid))), '[]')
   FROM pg_constraint con WHERE con.confrelid = t.oid AND con.contype = 'f'),
  (SELECT coalesce(json_agg(json_build_array(v.view, v.columns)), '[]') FROM (
     SELECT r.ev_class::regclass::text AS view,
            coalesce(json_agg(DISTINCT a.attname) FILTER (WHERE a.attname IS NOT NULL), '[]')
              AS columns
     FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
     LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
     WHERE d.refobjid = t.oid AND r.ev_class <> t.oid
     GROUP BY r.ev_class) v),
  (SELECT coalesce(json_agg(json_build_array(
      CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
      g.privilege_type)), '[]')
   FROM aclexplode(t.relacl) g
   WHERE g.grantee <> (SELECT relowner FROM pg_class WHERE oid = t.oid)),
  (SELECT coalesce(json_agg(tgname), '[]') FROM pg_trigger
   WHERE tgrelid = t.oid AND strpos(tgname, %(mark)s) > 0)
FROM t
"""


def table_facts(conn: psycopg.Connection[Any], table: Relation) -> TableFacts | None:
    """What the catalog says of ``table`` (None: there is no such table)."""
    from psycopg import sql

    parts = [table.schema, table.name] if table.schema else [table.name]
    name = sql.Identifier(*parts).as_string(conn)
    row = conn.execute(_FACTS_SQL, {"name": name, "mark": f"_{MARK}_"}).fetchone()
    if row is None:
        return None
    schema, relname, partitioned, columns, key, indexes, constraints = row[:7]
    referenced, views, grants, marked = row[7:]
    return TableFacts(
        schema=schema,
        name=relname,
        columns=tuple(_column(c) for c in columns),
        key=tuple(key),
        indexes=tuple(
            TableIndex(
                i["name"], i["definition"], tuple(i["columns"]), i["constraint"], i["primary"]
            )
            for i in indexes
        ),
        constraints=tuple(
            TableConstraint(c["name"], c["kind"], c["definition"], tuple(c["columns"]))
            for c in constraints
        ),
        referenced=tuple(Reference(r[0], r[1], tuple(r[2]), r[3]) for r in referenced),
        views=tuple((v[0], tuple(v[1])) for v in views),
        grants=tuple((g[0], g[1]) for g in grants),
        triggers=tuple(marked),
        partitioned=bool(partitioned),
    )


def _column(c: dict[str, Any]) -> ColumnFacts:
    return ColumnFacts(
        name=c["name"],
        type=c["type"],
        not_null=bool(c["not_null"]),
        default=c["default"],
        identity=str(c["identity"] or ""),
        generated=bool(c["generated"]),
        comment=c["comment"],
        sequence=c["sequence"],
        grants=tuple((str(g[0]), str(g[1])) for g in c.get("grants") or ()),
    )


def facts_of(
    conn: psycopg.Connection[Any], tables: Sequence[Relation]
) -> dict[Relation, TableFacts]:
    """The facts of every table of ``tables`` that exists, keyed as the migration names it."""
    found = {}
    for table in tables:
        facts = table_facts(conn, table)
        if facts is not None:
            found[table] = facts
    return found
