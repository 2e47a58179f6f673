"""A schema fingerprint read from the catalogs: every user object with its definition, by name.

`validate --roundtrip` compares fingerprints taken before a migration, after it, after its
rollback and after applying it again.  Catalog queries rather than ``pg_dump --schema-only``:
no process to start, no dump-format noise, and each difference names the object that differs.
Objects of pgshift's own schema, of the system schemas and of extensions are left out.

It reads what a schema means rather than how a major stores it (NOT NULL is a column's
property on every major, whether or not the server also keeps it as a named constraint), and
`portable` folds what servers of different majors print differently, so that `baseline` can
prove a PostgreSQL 15 database on an 18 server and get the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

Fingerprint = dict[str, str]

# Every query takes the schemas to leave out as %(skip)s and returns (key, definition) rows.
# "Not owned by an extension" is checked through pg_depend's 'e' entries.
_USER_NS = """
    n.nspname <> ALL (%(skip)s)
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""


def _not_ext(classid: str, oid: str) -> str:
    return (
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
        f"'{classid}'::regclass AND d.objid = {oid} AND d.deptype = 'e')"
    )


_QUERIES: tuple[str, ...] = (
    # schemas
    f"""SELECT 'schema ' || n.nspname, pg_get_userbyid(n.nspowner)
        FROM pg_namespace n WHERE {_USER_NS} AND n.nspname <> 'public'
        AND {_not_ext("pg_namespace", "n.oid")}""",
    # tables, views, materialized views, sequences, foreign tables, composite types
    f"""SELECT CASE c.relkind WHEN 'r' THEN 'table ' WHEN 'p' THEN 'table ' WHEN 'v' THEN 'view '
               WHEN 'm' THEN 'materialized view ' WHEN 'S' THEN 'sequence '
               WHEN 'f' THEN 'foreign table ' ELSE 'type ' END || n.nspname || '.' || c.relname,
               concat_ws(' ', 'kind=' || c.relkind::text, 'persistence=' || c.relpersistence::text,
                         'options=' || array_to_string(c.reloptions, ','),
                         'partition=' || pg_get_expr(c.relpartbound, c.oid),
                         'partitioned-by=' || CASE WHEN c.relkind = 'p'
                              THEN pg_get_partkeydef(c.oid) END,
                         'rls=' || c.relrowsecurity::text)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND {_USER_NS}
        AND {_not_ext("pg_class", "c.oid")}""",
    # the query of views and materialized views (an entry of its own: see `portable`)
    f"""SELECT CASE c.relkind WHEN 'v' THEN 'view ' ELSE 'materialized view ' END
               || n.nspname || '.' || c.relname || ' definition', pg_get_viewdef(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND {_USER_NS} AND {_not_ext("pg_class", "c.oid")}""",
    # columns (by name: a rollback that re-adds a dropped column puts it last, which is fine).
    # NOT NULL is the column's attnotnull on every major; PostgreSQL 18 also keeps it as a
    # named constraint (contype 'n'), which only adds what 15 cannot express: NOT VALID and
    # NO INHERIT. Its name is how 18 stores it, not what it means, and is left out.
    f"""SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname,
               concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                         CASE WHEN a.attnotnull THEN 'not null' || coalesce((
                              SELECT CASE WHEN nn.convalidated THEN '' ELSE ' (not validated)' END
                                     || CASE WHEN nn.connoinherit THEN ' no inherit' ELSE '' END
                              FROM pg_constraint nn
                              WHERE nn.conrelid = a.attrelid AND nn.contype = 'n'
                              AND nn.conkey[1] = a.attnum LIMIT 1), '') END,
                         'default ' || pg_get_expr(ad.adbin, ad.adrelid),
                         'identity=' || nullif(a.attidentity::text, ''),
                         'generated=' || nullif(a.attgenerated::text, ''),
                         'collate ' || CASE WHEN a.attcollation <> t.typcollation
                              THEN co.collname END)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        WHERE a.attnum > 0 AND NOT a.attisdropped
        AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND {_USER_NS}
        AND {_not_ext("pg_class", "c.oid")}""",
    # indexes
    f"""SELECT 'index ' || n.nspname || '.' || c.relname,
               pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS} AND {_not_ext("pg_class", "i.indrelid")}""",
    # constraints of tables and domains; not-null ones are the column's and the domain's
    # "not null" (PostgreSQL 18 keeps them in pg_constraint too, 15 does not)
    f"""SELECT 'constraint ' || n.nspname || '.'
               || coalesce(c.relname, t.typname) || '.' || k.conname,
               pg_get_constraintdef(k.oid)
               || CASE WHEN k.convalidated THEN '' ELSE ' (not validated)' END
        FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
        LEFT JOIN pg_class c ON c.oid = k.conrelid
        LEFT JOIN pg_type t ON t.oid = k.contypid
        WHERE {_USER_NS} AND k.contype <> 'n' AND {_not_ext("pg_class", "k.conrelid")}
        AND {_not_ext("pg_type", "k.contypid")}""",
    # sequence parameters (never their current value)
    f"""SELECT 'sequence ' || n.nspname || '.' || c.relname || ' parameters',
               concat_ws(' ', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment',
                         s.seqincrement, 'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache,
                         CASE WHEN s.seqcycle THEN 'cycle' END)
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS} AND {_not_ext("pg_class", "c.oid")}""",
    # functions and procedures
    f"""SELECT 'function ' || n.nspname || '.' || p.proname
               || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid)
                    ELSE 'aggregate' END
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_NS} AND {_not_ext("pg_proc", "p.oid")}""",
    # enums, domains, ranges and other stand-alone types
    f"""SELECT 'type ' || n.nspname || '.' || t.typname,
               concat_ws(' ', 'kind=' || t.typtype::text,
                         'base=' || CASE WHEN t.typtype = 'd'
                              THEN format_type(t.typbasetype, t.typtypmod) END,
                         CASE WHEN t.typnotnull THEN 'not null' END,
                         'default=' || t.typdefault,
                         'labels=' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                       FROM pg_enum e WHERE e.enumtypid = t.oid))
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'b' AND t.typelem = 0))
        AND {_USER_NS} AND {_not_ext("pg_type", "t.oid")}""",
    # triggers
    f"""SELECT 'trigger ' || n.nspname || '.' || c.relname || '.' || g.tgname,
               pg_get_triggerdef(g.oid)
        FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT g.tgisinternal AND {_USER_NS}""",
    # row-level security policies
    f"""SELECT 'policy ' || n.nspname || '.' || c.relname || '.' || p.polname,
               concat_ws(' ', p.polcmd::text, p.polpermissive::text,
                         pg_get_expr(p.polqual, p.polrelid),
                         pg_get_expr(p.polwithcheck, p.polrelid))
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER_NS}""",
    # extensions, and their version apart (see `portable`)
    """SELECT 'extension ' || e.extname, 'in ' || n.nspname
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname <> 'plpgsql'""",
    """SELECT 'extension ' || e.extname || ' version', e.extversion
        FROM pg_extension e WHERE e.extname <> 'plpgsql'""",
)

#: Entries whose key ends so hold a view's query, as `pg_get_viewdef` prints it.
_VIEW_QUERY = " definition"
_EXTENSION_VERSION = " version"


def fingerprint(conn: psycopg.Connection[Any], skip_schemas: Sequence[str] = ()) -> Fingerprint:
    """Every user object of the connected database: "kind schema.name" -> its definition."""
    params = {"skip": list(skip_schemas)}
    out: Fingerprint = {}
    for query in _QUERIES:
        for key, value in conn.execute(query.encode(), params).fetchall():
            out[str(key)] = "" if value is None else str(value)
    return out


def portable(printed: Mapping[str, str]) -> Fingerprint:
    """``printed`` in the terms every supported major shares, to compare schemas across majors.

    What a server of another major stores or prints differently for the same schema is brought
    to one form: a view's query is parsed and printed again without the column qualifiers only
    PostgreSQL 15 prints (source/viewdef.py), and an extension's version is left out (`CREATE
    EXTENSION citext` installs the version the server ships: 1.6 with 15, 1.8 with 18); its
    presence and schema still count. Not-null constraints need nothing here: the fingerprint
    reads them the same way on every major.
    """
    from pgshift.source.viewdef import canonical_view

    out: Fingerprint = {}
    for key, value in printed.items():
        kind = key.split(" ", 1)[0]
        if kind == "extension" and key.endswith(_EXTENSION_VERSION) and key.count(" ") == 2:
            continue
        query = kind in ("view", "materialized") and key.endswith(_VIEW_QUERY)
        out[key] = canonical_view(value) if query else value
    return out


def differences(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """Human lines: what is only in ``actual``, only in ``expected``, or defined differently."""
    lines: list[str] = []
    for key in sorted(actual.keys() - expected.keys()):
        lines.append(f"left behind: {key}")
    for key in sorted(expected.keys() - actual.keys()):
        lines.append(f"missing: {key}")
    for key in sorted(expected.keys() & actual.keys()):
        if expected[key] != actual[key]:
            lines.append(f"changed: {key} ({_short(expected[key])} -> {_short(actual[key])})")
    return lines


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
