"""Which lock-table kinds a statement is, and the relations each of its roles names.

Why it is shaped this way: the facts live in one table (source/lock_table.py); this module only
reads a statement's parse tree (pglast's JSON, as the loader and the linter read it) to say
which kinds it is (one per ALTER TABLE subcommand) and which relation plays each role: a name
the statement writes, or one only the catalog knows ("the table of index i", "the table that
constraint c references"), which db/trace.py resolves. Everyone who states a lock (the linter,
`rollback dry-run`, `validate --trace`, docs/locks.md) goes through here. It is pure, and
pglast is imported on first use only, because `import pgshift` must stay light.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgshift.source import lock_table as lt
from pgshift.source.lock_table import FACTS_BY_KIND, STRENGTH, LockFact

Node = Mapping[str, Any]

# How a relation is found: named by the statement, or through the catalog.
NAMED = "named"
TABLE_OF_INDEX = "table of index"
REFERENCED_BY_CONSTRAINT = "referenced by constraint"
REFERENCED_BY_COLUMN = "referenced by column"
REFERENCED_BY_TABLE = "referenced by table"
INDEXES_OF = "indexes of"
USING_DOMAIN = "using domain"


@dataclass(frozen=True)
class Ref:
    """A relation (or a set of them) a statement locks, as it can be found before it runs.

    ``name`` is the object as written, schema first when the statement gave one: the relation
    itself (``NAMED``), or the index, table or domain the catalog lookup ``how`` starts from.
    ``detail`` is the constraint or column name that lookup needs.
    """

    how: str
    name: tuple[str, ...]
    detail: str = ""

    @property
    def dotted(self) -> str:
        return ".".join(self.name)

    def describe(self, role: str) -> str:
        """How a reader is told which relation this is."""
        name = self.dotted
        return {
            NAMED: f"{role} {name}",
            TABLE_OF_INDEX: f"the table of index {name}",
            REFERENCED_BY_CONSTRAINT: f"the table constraint {self.detail} of {name} references",
            REFERENCED_BY_COLUMN: f"the tables {name}.{self.detail}'s foreign keys reference",
            REFERENCED_BY_TABLE: f"the tables {name}'s foreign keys reference",
            INDEXES_OF: f"every index of {name}",
            USING_DOMAIN: f"every table with a column of domain {name}",
        }[self.how]


@dataclass(frozen=True)
class ExpectedLock:
    """The lock table's word on one relation of one statement."""

    role: str
    ref: Ref
    mode: str  # on the newest major ("" for no lock)
    pg15: str | None = None  # on PostgreSQL 15, where it differs
    when: str = ""

    def mode_on(self, major: int | None) -> str:
        if self.pg15 is not None and major is not None and major <= lt.OLDEST_MAJOR:
            return self.pg15
        return self.mode

    def describe(self, major: int | None = None) -> str:
        """``ACCESS EXCLUSIVE on table t``, with PostgreSQL 15's mode when it differs and the
        major is not known to be one where it does not."""
        mode = self.mode_on(major)
        text = f"{mode or 'no lock'} on {self.ref.describe(self.role)}"
        if self.when and self.ref.how not in (NAMED, REFERENCED_BY_TABLE):  # else it says so
            text += f" ({self.when})"
        newer_or_unknown = major is None or lt.OLDEST_MAJOR < major < lt.NEWEST_MAJOR
        if self.pg15 is not None and self.pg15 != self.mode and newer_or_unknown:
            text += f" (PostgreSQL {lt.OLDEST_MAJOR}: {self.pg15 or 'no lock'})"
        return text


@dataclass(frozen=True)
class Classified:
    """One kind of the lock table a statement (or one ALTER TABLE subcommand) is.

    ``kind`` is None when the table does not know it; ``what`` then names the parse node.
    """

    kind: str | None
    refs: Mapping[str, tuple[Ref, ...]] = field(default_factory=dict)
    what: str = ""

    @property
    def fact(self) -> LockFact | None:
        return FACTS_BY_KIND.get(self.kind) if self.kind else None


UNPARSED = "unknown (does not parse)"


def parse(sql: str) -> Node | None:
    """The one statement of ``sql`` as libpg_query's JSON, or None when it is not one."""
    from pglast.parser import parse_sql_json

    try:
        stmts = json.loads(parse_sql_json(sql)).get("stmts") or []
    except Exception:  # the loader already reported it; callers show what they can
        return None
    if len(stmts) != 1:
        return None
    stmt: Node = stmts[0].get("stmt") or {}
    return stmt


def classify(sql: str) -> tuple[Classified, ...] | None:
    """The kinds ``sql`` is, in order; None when it does not parse as one statement."""
    stmt = parse(sql)
    return None if stmt is None else classify_node(stmt)


def classify_node(stmt: Node) -> tuple[Classified, ...]:
    """The kinds a parsed statement (``{"AlterTableStmt": {...}}``) is."""
    ((node_type, node),) = stmt.items()
    handler = _HANDLERS.get(node_type)
    if handler is None:
        return (Classified(None, what=node_type),)
    return tuple(handler(node))


def expected_locks(sql: str) -> tuple[ExpectedLock, ...]:
    """Per relation, the strongest lock the table says ``sql`` takes (both majors kept)."""
    return expected_from(classify(sql) or ())


def expected_from(classified: Iterable[Classified]) -> tuple[ExpectedLock, ...]:
    merged: dict[Ref, ExpectedLock] = {}
    for item in classified:
        fact = item.fact
        if fact is None:
            continue
        for role_lock in fact.locks:
            for ref in item.refs.get(role_lock.role, ()):
                new = ExpectedLock(
                    role_lock.role, ref, role_lock.mode, role_lock.pg15, role_lock.when
                )
                merged[ref] = _stronger(merged.get(ref), new)
    return tuple(merged.values())


def _stronger(old: ExpectedLock | None, new: ExpectedLock) -> ExpectedLock:
    if old is None:
        return new
    newest = max(old.mode, new.mode, key=STRENGTH.__getitem__)
    pg15 = max(old.mode_on(lt.OLDEST_MAJOR), new.mode_on(lt.OLDEST_MAJOR), key=STRENGTH.__getitem__)
    base = old if STRENGTH[old.mode] >= STRENGTH[new.mode] else new
    when = "" if not old.when or not new.when else base.when
    return ExpectedLock(base.role, base.ref, newest, pg15 if pg15 != newest else None, when)


def statement_locks(sql: str, major: int | None = None) -> tuple[str, ...]:
    """What ``sql`` locks, one line per relation, as `rollback dry-run` shows it.

    ``major``: the server's major version when known; else the newest's behaviour, with
    PostgreSQL 15's where it differs.
    """
    classified = classify(sql)
    if classified is None:
        return (UNPARSED,)
    lines = [lock.describe(major) for lock in expected_from(classified)]
    for item in classified:
        fact = item.fact
        if fact is None:
            lines.append(f"not in the lock table ({item.what})")
        elif fact.note and not fact.locks:
            lines.append(fact.note)
    if not lines:
        lines.append("no lock on an existing relation")
    return tuple(dict.fromkeys(lines))


def mode_of(kind: str, role: str = lt.TABLE, major: int | None = None) -> str:
    """The mode the table gives ``kind`` on ``role``: what a lint message says."""
    for role_lock in FACTS_BY_KIND[kind].locks:
        if role_lock.role == role:
            return role_lock.mode_on(major)
    raise KeyError(f"{kind!r} has no role {role!r} in the lock table")


# -- reading the parse tree --------------------------------------------------------------------


def _name(rangevar: Node | None) -> tuple[str, ...]:
    """A RangeVar's name as written: (schema, name) or (name,)."""
    if not rangevar:
        return ("?",)
    rangevar = rangevar.get("RangeVar", rangevar)
    schema = rangevar.get("schemaname")
    name = str(rangevar.get("relname", "?"))
    return (str(schema), name) if schema else (name,)


def _strings(items: Sequence[Node] | None) -> tuple[str, ...]:
    return tuple(str(i["String"]["sval"]) for i in items or () if "String" in i)


def _named(rangevar: Node | None) -> tuple[Ref, ...]:
    return (Ref(NAMED, _name(rangevar)),)


def _one(kind: str, **refs: tuple[Ref, ...]) -> Iterator[Classified]:
    yield Classified(kind, {_ROLE_WORDS.get(role, role): r for role, r in refs.items()})


_ROLE_WORDS = {
    "table": lt.TABLE,
    "referenced": lt.REFERENCED,
    "index": lt.INDEX,
    "index_table": lt.INDEX_TABLE,
    "indexes": lt.INDEXES,
    "parent": lt.PARENT,
    "partition": lt.PARTITION,
    "view": lt.VIEW,
    "matview": lt.MATVIEW,
    "sequence": lt.SEQUENCE,
    "relation": lt.RELATION,
    "domain_tables": lt.DOMAIN_TABLES,
}


def _constraint(cmd: Node) -> Node:
    return (cmd.get("def") or {}).get("Constraint") or {}


def _column_fk_targets(column: Node) -> tuple[Ref, ...]:
    return tuple(
        Ref(NAMED, _name(c["Constraint"].get("pktable")))
        for c in column.get("constraints") or ()
        if c.get("Constraint", {}).get("contype") == "CONSTR_FOREIGN"
    )


#: ALTER TABLE subtypes whose kind needs nothing but the subtype.
_SIMPLE_SUBTYPES = {
    "AT_DropNotNull": "ALTER TABLE ALTER COLUMN DROP NOT NULL",
    "AT_SetNotNull": "ALTER TABLE ALTER COLUMN SET NOT NULL",
    "AT_SetStatistics": "ALTER TABLE ALTER COLUMN SET STATISTICS",
    "AT_SetOptions": "ALTER TABLE ALTER COLUMN SET or RESET (attribute options)",
    "AT_ResetOptions": "ALTER TABLE ALTER COLUMN SET or RESET (attribute options)",
    "AT_SetStorage": "ALTER TABLE ALTER COLUMN SET STORAGE",
    "AT_AddIdentity": "ALTER TABLE ALTER COLUMN ADD GENERATED AS IDENTITY",
    "AT_EnableTrig": "ALTER TABLE ENABLE or DISABLE TRIGGER",
    "AT_EnableAlwaysTrig": "ALTER TABLE ENABLE or DISABLE TRIGGER",
    "AT_EnableReplicaTrig": "ALTER TABLE ENABLE or DISABLE TRIGGER",
    "AT_DisableTrig": "ALTER TABLE ENABLE or DISABLE TRIGGER",
    "AT_EnableTrigAll": "ALTER TABLE ENABLE or DISABLE TRIGGER",
    "AT_DisableTrigAll": "ALTER TABLE ENABLE or DISABLE TRIGGER",
    "AT_EnableTrigUser": "ALTER TABLE ENABLE or DISABLE TRIGGER",
    "AT_DisableTrigUser": "ALTER TABLE ENABLE or DISABLE TRIGGER",
    "AT_EnableRule": "ALTER TABLE ENABLE or DISABLE RULE",
    "AT_EnableAlwaysRule": "ALTER TABLE ENABLE or DISABLE RULE",
    "AT_EnableReplicaRule": "ALTER TABLE ENABLE or DISABLE RULE",
    "AT_DisableRule": "ALTER TABLE ENABLE or DISABLE RULE",
    "AT_EnableRowSecurity": "ALTER TABLE ENABLE, DISABLE or FORCE ROW LEVEL SECURITY",
    "AT_DisableRowSecurity": "ALTER TABLE ENABLE, DISABLE or FORCE ROW LEVEL SECURITY",
    "AT_ForceRowSecurity": "ALTER TABLE ENABLE, DISABLE or FORCE ROW LEVEL SECURITY",
    "AT_NoForceRowSecurity": "ALTER TABLE ENABLE, DISABLE or FORCE ROW LEVEL SECURITY",
    "AT_SetRelOptions": "ALTER TABLE SET or RESET (storage parameters)",
    "AT_ResetRelOptions": "ALTER TABLE SET or RESET (storage parameters)",
    "AT_SetLogged": "ALTER TABLE SET LOGGED or UNLOGGED",
    "AT_SetUnLogged": "ALTER TABLE SET LOGGED or UNLOGGED",
    "AT_SetAccessMethod": "ALTER TABLE SET ACCESS METHOD",
    "AT_SetTableSpace": "ALTER TABLE SET TABLESPACE",
    "AT_ClusterOn": "ALTER TABLE CLUSTER ON or SET WITHOUT CLUSTER",
    "AT_DropCluster": "ALTER TABLE CLUSTER ON or SET WITHOUT CLUSTER",
    "AT_ChangeOwner": "ALTER TABLE OWNER TO",
    "AT_ReplicaIdentity": "ALTER TABLE REPLICA IDENTITY",
}

_CONSTRAINT_KINDS = {
    "CONSTR_CHECK": "ALTER TABLE ADD CONSTRAINT CHECK",
    "CONSTR_UNIQUE": "ALTER TABLE ADD CONSTRAINT UNIQUE or PRIMARY KEY",
    "CONSTR_PRIMARY": "ALTER TABLE ADD CONSTRAINT UNIQUE or PRIMARY KEY",
    "CONSTR_EXCLUSION": "ALTER TABLE ADD CONSTRAINT EXCLUDE",
    "CONSTR_FOREIGN": "ALTER TABLE ADD CONSTRAINT FOREIGN KEY",
}


def _add_constraint(table: tuple[Ref, ...], cmd: Node) -> Iterator[Classified]:
    constraint = _constraint(cmd)
    contype = constraint.get("contype", "")
    kind = _CONSTRAINT_KINDS.get(contype)
    if kind is None:
        yield Classified(None, what=f"ADD CONSTRAINT {contype.removeprefix('CONSTR_')}")
        return
    if contype == "CONSTR_CHECK" and constraint.get("skip_validation"):
        kind += " NOT VALID"
    if contype == "CONSTR_FOREIGN":
        if constraint.get("skip_validation"):
            kind += " NOT VALID"
        yield from _one(kind, table=table, referenced=_named(constraint.get("pktable")))
        return
    if constraint.get("indexname"):
        kind += " USING INDEX"
    yield from _one(kind, table=table)


def _alter_table_cmd(table: tuple[Ref, ...], cmd: Node) -> Iterator[Classified]:
    sub = str(cmd.get("subtype", ""))
    name = table[0].name
    column = str(cmd.get("name") or "")
    if sub in _SIMPLE_SUBTYPES:
        yield from _one(_SIMPLE_SUBTYPES[sub], table=table)
    elif sub == "AT_AddColumn":
        targets = _column_fk_targets((cmd.get("def") or {}).get("ColumnDef") or {})
        if targets:
            yield from _one("ALTER TABLE ADD COLUMN REFERENCES", table=table, referenced=targets)
        else:
            yield from _one("ALTER TABLE ADD COLUMN", table=table)
    elif sub in ("AT_DropColumn", "AT_AlterColumnType"):
        kind = (
            "ALTER TABLE DROP COLUMN" if sub == "AT_DropColumn" else "ALTER TABLE ALTER COLUMN TYPE"
        )
        fk = (Ref(REFERENCED_BY_COLUMN, name, column),)
        yield from _one(kind, table=table, referenced=fk)
    elif sub == "AT_ColumnDefault":
        verb = "SET" if cmd.get("def") else "DROP"
        yield from _one(f"ALTER TABLE ALTER COLUMN {verb} DEFAULT", table=table)
    elif sub == "AT_AddConstraint":
        yield from _add_constraint(table, cmd)
    elif sub in ("AT_ValidateConstraint", "AT_DropConstraint"):
        verb = "VALIDATE" if sub == "AT_ValidateConstraint" else "DROP"
        fk = (Ref(REFERENCED_BY_CONSTRAINT, name, column),)
        yield from _one(f"ALTER TABLE {verb} CONSTRAINT", table=table, referenced=fk)
    elif sub in ("AT_AttachPartition", "AT_DetachPartition"):
        part = (cmd.get("def") or {}).get("PartitionCmd") or {}
        kind = "ATTACH" if sub == "AT_AttachPartition" else "DETACH"
        kind += " PARTITION CONCURRENTLY" if part.get("concurrent") else " PARTITION"
        yield from _one(f"ALTER TABLE {kind}", parent=table, partition=_named(part.get("name")))
    else:
        yield Classified(None, what=f"ALTER TABLE {sub.removeprefix('AT_')}")


def _alter_table(node: Node) -> Iterator[Classified]:
    objtype = node.get("objtype", "OBJECT_TABLE")
    target = _named(node.get("relation"))
    cmds = [c.get("AlterTableCmd", {}) for c in node.get("cmds") or ()]
    if objtype == "OBJECT_INDEX":
        for cmd in cmds:
            if cmd.get("subtype") in ("AT_SetRelOptions", "AT_ResetRelOptions"):
                yield from _one("ALTER INDEX SET (storage parameters)", index=target)
            else:
                yield Classified(None, what=f"ALTER INDEX {cmd.get('subtype', '')}")
        return
    if objtype not in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"):
        yield Classified(None, what=f"ALTER {objtype.removeprefix('OBJECT_')}")
        return
    for cmd in cmds:
        yield from _alter_table_cmd(target, cmd)


_RENAMES = {
    "OBJECT_TABLE": ("ALTER TABLE RENAME", "table"),
    "OBJECT_FOREIGN_TABLE": ("ALTER TABLE RENAME", "table"),
    "OBJECT_COLUMN": ("ALTER TABLE RENAME COLUMN", "table"),
    "OBJECT_TABCONSTRAINT": ("ALTER TABLE RENAME CONSTRAINT", "table"),
    "OBJECT_INDEX": ("ALTER INDEX RENAME", "index"),
    "OBJECT_VIEW": ("ALTER VIEW RENAME", "view"),
    "OBJECT_SEQUENCE": ("ALTER SEQUENCE RENAME", "sequence"),
    "OBJECT_TRIGGER": ("ALTER TRIGGER RENAME", "table"),
    "OBJECT_POLICY": ("ALTER POLICY RENAME", "table"),
    "OBJECT_RULE": ("ALTER RULE RENAME", "table"),
}


def _rename(node: Node) -> Iterator[Classified]:
    rename_type = str(node.get("renameType", ""))
    if rename_type in _RENAMES:
        kind, role = _RENAMES[rename_type]
        yield from _one(kind, **{role: _named(node.get("relation"))})
    elif node.get("relation"):
        yield Classified(None, what=f"RENAME {rename_type.removeprefix('OBJECT_')}")
    else:  # a type, function, schema...: no relation
        yield Classified("RENAME of a type, function or schema")


def _index(node: Node) -> Iterator[Classified]:
    kind = "CREATE INDEX CONCURRENTLY" if node.get("concurrent") else "CREATE INDEX"
    yield from _one(kind, table=_named(node.get("relation")))


def _drop_names(node: Node) -> Iterator[tuple[str, ...]]:
    for item in node.get("objects") or ():
        if "List" in item:
            yield _strings(item["List"].get("items"))
        elif "String" in item:
            yield (str(item["String"]["sval"]),)


_DROPPED_RELATIONS = {
    "OBJECT_TABLE": ("DROP TABLE", "table"),
    "OBJECT_FOREIGN_TABLE": ("DROP TABLE", "table"),
    "OBJECT_VIEW": ("DROP VIEW", "view"),
    "OBJECT_MATVIEW": ("DROP MATERIALIZED VIEW", "matview"),
    "OBJECT_SEQUENCE": ("DROP SEQUENCE", "sequence"),
}
_DROPPED_ON_TABLE = {
    "OBJECT_TRIGGER": "DROP TRIGGER",
    "OBJECT_POLICY": "DROP POLICY",
    "OBJECT_RULE": "DROP RULE",
}
_DROPPED_CATALOG = {
    "OBJECT_FUNCTION": "DROP FUNCTION or PROCEDURE",
    "OBJECT_PROCEDURE": "DROP FUNCTION or PROCEDURE",
    "OBJECT_ROUTINE": "DROP FUNCTION or PROCEDURE",
    "OBJECT_TYPE": "DROP TYPE",
    "OBJECT_DOMAIN": "DROP TYPE",
}


def _drop(node: Node) -> Iterator[Classified]:
    remove = str(node.get("removeType", ""))
    names = list(_drop_names(node))
    if remove == "OBJECT_INDEX":
        concurrent = bool(node.get("concurrent"))
        kind = "DROP INDEX CONCURRENTLY" if concurrent else "DROP INDEX"
        for name in names:
            yield from _one(
                kind, index=(Ref(NAMED, name),), index_table=(Ref(TABLE_OF_INDEX, name),)
            )
    elif remove in _DROPPED_RELATIONS:
        kind, role = _DROPPED_RELATIONS[remove]
        for name in names:
            referenced = (Ref(REFERENCED_BY_TABLE, name),) if role == "table" else ()
            yield from _one(kind, **{role: (Ref(NAMED, name),)}, referenced=referenced)
    elif remove in _DROPPED_ON_TABLE:
        for name in names:
            yield from _one(_DROPPED_ON_TABLE[remove], table=(Ref(NAMED, name[:-1]),))
    elif remove in _DROPPED_CATALOG:
        yield Classified(_DROPPED_CATALOG[remove])
    else:
        yield Classified(None, what=f"DROP {remove.removeprefix('OBJECT_')}")


def _relations(node: Node, key: str = "relations") -> tuple[Ref, ...]:
    return tuple(ref for rv in node.get(key) or () for ref in _named(rv))


def _truncate(node: Node) -> Iterator[Classified]:
    yield from _one("TRUNCATE", table=_relations(node))


def _dml(kind: str) -> Callable[[Node], Iterator[Classified]]:
    def handler(node: Node) -> Iterator[Classified]:
        yield from _one(kind, table=_named(node.get("relation")))

    return handler


def _create_table(node: Node) -> Iterator[Classified]:
    if node.get("partbound"):
        yield from _one("CREATE TABLE PARTITION OF", parent=_relations(node, "inhRelations"))
        return
    targets: list[Ref] = []
    for element in node.get("tableElts") or ():
        if "ColumnDef" in element:
            targets += _column_fk_targets(element["ColumnDef"])
        constraint = element.get("Constraint") or {}
        if constraint.get("contype") == "CONSTR_FOREIGN":
            targets += _named(constraint.get("pktable"))
    yield from _one("CREATE TABLE", referenced=tuple(dict.fromkeys(targets)))


def _create_table_as(node: Node) -> Iterator[Classified]:
    matview = node.get("objtype") == "OBJECT_MATVIEW"
    yield Classified("CREATE MATERIALIZED VIEW" if matview else "CREATE TABLE AS")


def _view(node: Node) -> Iterator[Classified]:
    if node.get("replace"):
        yield from _one("CREATE OR REPLACE VIEW", view=_named(node.get("view")))
    else:
        yield Classified("CREATE VIEW")


def _refresh(node: Node) -> Iterator[Classified]:
    kind = "REFRESH MATERIALIZED VIEW"
    kind += " CONCURRENTLY" if node.get("concurrent") else ""
    yield from _one(kind, matview=_named(node.get("relation")))


def _on_table(kind: str, key: str = "relation") -> Callable[[Node], Iterator[Classified]]:
    def handler(node: Node) -> Iterator[Classified]:
        yield from _one(kind, table=_named(node.get(key)))

    return handler


_COMMENTED_RELATIONS = frozenset(
    {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE", "OBJECT_FOREIGN_TABLE"}
)
_COMMENTED_ON_TABLE = frozenset(
    {"OBJECT_TABCONSTRAINT", "OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE"}
)


def _comment(node: Node) -> Iterator[Classified]:
    objtype = str(node.get("objtype", ""))
    target = node.get("object") or {}
    parts = _strings(target.get("List", {}).get("items")) if "List" in target else ()
    if objtype in _COMMENTED_RELATIONS:
        yield from _one(
            "COMMENT ON TABLE, COLUMN, VIEW, MATERIALIZED VIEW or SEQUENCE",
            relation=(Ref(NAMED, parts),),
        )
    elif objtype == "OBJECT_COLUMN":
        yield from _one(
            "COMMENT ON TABLE, COLUMN, VIEW, MATERIALIZED VIEW or SEQUENCE",
            relation=(Ref(NAMED, parts[:-1]),),
        )
    elif objtype == "OBJECT_INDEX":
        yield from _one("COMMENT ON INDEX", index=(Ref(NAMED, parts),))
    elif objtype in _COMMENTED_ON_TABLE:
        yield from _one(
            "COMMENT ON CONSTRAINT, TRIGGER, POLICY or RULE", table=(Ref(NAMED, parts[:-1]),)
        )
    else:
        yield Classified(None, what=f"COMMENT ON {objtype.removeprefix('OBJECT_')}")


def _vacuum(node: Node) -> Iterator[Classified]:
    options = {
        str(o.get("DefElem", {}).get("defname", "")).lower() for o in node.get("options") or ()
    }
    if not node.get("is_vacuumcmd"):
        kind = "ANALYZE"
    else:
        kind = "VACUUM FULL" if "full" in options else "VACUUM"
    tables = tuple(
        ref
        for rel in node.get("rels") or ()
        for ref in _named(rel.get("VacuumRelation", {}).get("relation"))
    )
    yield from _one(kind, table=tables)


def _reindex(node: Node) -> Iterator[Classified]:
    concurrent = any(
        p.get("DefElem", {}).get("defname") == "concurrently" for p in node.get("params") or ()
    )
    suffix = " CONCURRENTLY" if concurrent else ""
    name = _name(node.get("relation"))
    if node.get("kind") == "REINDEX_OBJECT_INDEX":
        yield from _one(
            "REINDEX INDEX" + suffix,
            index=(Ref(NAMED, name),),
            index_table=(Ref(TABLE_OF_INDEX, name),),
        )
    elif node.get("kind") == "REINDEX_OBJECT_TABLE":
        yield from _one(
            "REINDEX TABLE" + suffix, table=(Ref(NAMED, name),), indexes=(Ref(INDEXES_OF, name),)
        )
    else:
        yield Classified(
            None, what=f"REINDEX {str(node.get('kind', '')).removeprefix('REINDEX_OBJECT_')}"
        )


def _cluster(node: Node) -> Iterator[Classified]:
    if node.get("relation"):
        yield from _one("CLUSTER", table=_named(node.get("relation")))
    else:
        yield Classified(None, what="CLUSTER (every clustered table)")


def _grant(node: Node) -> Iterator[Classified]:
    if node.get("objtype") == "OBJECT_TABLE" and node.get("targtype") == "ACL_TARGET_OBJECT":
        yield from _one("GRANT or REVOKE on a table", table=_relations(node, "objects"))
    else:
        yield Classified(
            None, what=f"GRANT ON {str(node.get('objtype', '')).removeprefix('OBJECT_')}"
        )


def _alter_seq(node: Node) -> Iterator[Classified]:
    yield from _one("ALTER SEQUENCE", sequence=_named(node.get("sequence")))


def _alter_enum(node: Node) -> Iterator[Classified]:
    yield Classified("ALTER TYPE RENAME VALUE" if node.get("oldVal") else "ALTER TYPE ADD VALUE")


def _alter_domain(node: Node) -> Iterator[Classified]:
    if node.get("subtype") == "C":
        domain = (Ref(USING_DOMAIN, _strings(node.get("typeName"))),)
        yield from _one("ALTER DOMAIN ADD CONSTRAINT", domain_tables=domain)
    else:
        yield Classified(None, what=f"ALTER DOMAIN ({node.get('subtype')})")


def _set_schema(node: Node) -> Iterator[Classified]:
    if node.get("objectType") in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"):
        yield from _one("ALTER TABLE SET SCHEMA", table=_named(node.get("relation")))
    else:
        yield Classified(None, what=f"SET SCHEMA of {node.get('objectType', '')}")


def _fixed(kind: str) -> Callable[[Node], Iterator[Classified]]:
    def handler(_: Node) -> Iterator[Classified]:
        yield Classified(kind)

    return handler


_HANDLERS: dict[str, Callable[[Node], Iterator[Classified]]] = {
    "AlterTableStmt": _alter_table,
    "RenameStmt": _rename,
    "AlterObjectSchemaStmt": _set_schema,
    "IndexStmt": _index,
    "DropStmt": _drop,
    "TruncateStmt": _truncate,
    "InsertStmt": _dml("INSERT"),
    "UpdateStmt": _dml("UPDATE"),
    "DeleteStmt": _dml("DELETE"),
    "SelectStmt": _fixed("SELECT"),
    "CreateStmt": _create_table,
    "CreateTableAsStmt": _create_table_as,
    "ViewStmt": _view,
    "RefreshMatViewStmt": _refresh,
    "CreateTrigStmt": _on_table("CREATE TRIGGER"),
    "CreatePolicyStmt": _on_table("CREATE POLICY", "table"),
    "AlterPolicyStmt": _on_table("ALTER POLICY", "table"),
    "RuleStmt": _on_table("CREATE RULE"),
    "CommentStmt": _comment,
    "VacuumStmt": _vacuum,
    "ReindexStmt": _reindex,
    "ClusterStmt": _cluster,
    "CreateStatsStmt": lambda node: _one("CREATE STATISTICS", table=_relations(node, "relations")),
    "GrantStmt": _grant,
    "CreateSeqStmt": _fixed("CREATE SEQUENCE"),
    "AlterSeqStmt": _alter_seq,
    "AlterEnumStmt": _alter_enum,
    "AlterDomainStmt": _alter_domain,
    "CreateFunctionStmt": _fixed("CREATE FUNCTION or PROCEDURE"),
    "CreateEnumStmt": _fixed("CREATE TYPE"),
    "CompositeTypeStmt": _fixed("CREATE TYPE"),
    "CreateDomainStmt": _fixed("CREATE TYPE"),
    "CreateSchemaStmt": _fixed("CREATE SCHEMA"),
}


# -- comparing with what a server held -----------------------------------------------------------


def sql_mode(pg_locks_mode: str) -> str:
    """``AccessExclusiveLock`` -> ``ACCESS EXCLUSIVE``, as the manual and the lint rules say it."""
    name = pg_locks_mode.removesuffix("Lock")
    words = "".join(f" {ch}" if ch.isupper() else ch for ch in name).split()
    return " ".join(words).upper()


def strongest(modes: Iterable[str]) -> str:
    """The strongest of some modes (``NONE`` for none)."""
    return max(modes, key=STRENGTH.__getitem__, default=lt.NONE)


def compare(
    expected: Sequence[ExpectedLock],
    resolved: Mapping[Ref, Sequence[str]],
    held: Mapping[str, str],
    owners: Mapping[str, str | None],
    major: int | None,
    *,
    complete: bool = True,
) -> list[str]:
    """Where the server's locks and the lock table disagree, one sentence each.

    ``resolved``: the relations each Ref named before the statement ran; ``held``: the
    strongest mode the statement's backend held per relation that existed before it;
    ``owners``: the table each index or owned sequence belongs to. Not disagreements: a weak
    lock (below SHARE UPDATE EXCLUSIVE: reads, writes, foreign-key checks) on a relation the
    table does not name, and a lock on an index or sequence of a relation it names with a mode
    at least as strong (it comes with it). ``complete``: False when the table does not know
    every part of the statement, so that a lock it does not name is no disagreement.
    """
    want: dict[str, tuple[str, ExpectedLock]] = {}
    for lock in expected:
        mode = lock.mode_on(major)
        for relation in resolved.get(lock.ref, ()):
            old = want.get(relation)
            if old is None or STRENGTH[mode] > STRENGTH[old[0]]:
                want[relation] = (mode, lock)
    out: list[str] = []
    for relation, (mode, lock) in want.items():
        seen = held.get(relation, lt.NONE)
        if seen != mode:
            out.append(
                f"the lock table says {mode or 'no lock'} on {relation}"
                f" ({lock.ref.describe(lock.role)}); the server held {seen or 'no lock'}"
            )
    for relation, seen in held.items() if complete else ():
        if relation in want or STRENGTH[seen] < STRENGTH[lt.SHARE_UPDATE_EXCLUSIVE]:
            continue
        owner = owners.get(relation)
        if owner is not None and STRENGTH[want.get(owner, ("", None))[0]] >= STRENGTH[seen]:
            continue
        out.append(f"the server also held {seen} on {relation}, which the lock table does not name")
    return out


__all__ = [
    "Classified",
    "ExpectedLock",
    "Ref",
    "classify",
    "classify_node",
    "compare",
    "expected_locks",
    "markdown",
    "mode_of",
    "sql_mode",
    "statement_locks",
    "strongest",
]


# -- the docs page -------------------------------------------------------------------------------


def _role_text(role_lock: lt.RoleLock) -> str:
    text = f"{role_lock.mode or 'no lock'} on the {role_lock.role}"
    if role_lock.when:
        text += f" ({role_lock.when})"
    if role_lock.pg15 is not None and role_lock.pg15 != role_lock.mode:
        text += f" (PostgreSQL {lt.OLDEST_MAJOR}: {role_lock.pg15 or 'no lock'})"
    return text


def markdown() -> str:
    """docs/locks.md: the lock table as a page (a test keeps the page equal to this)."""
    rows = []
    for fact in lt.LOCK_FACTS:
        locks = "; ".join(_role_text(r) for r in fact.locks) or "no lock on an existing relation"
        if fact.note:
            locks += f". {fact.note[0].upper()}{fact.note[1:]}"
        alone = "" if fact.transactional else " (outside a transaction)"
        examples = "<br>".join(f"`{e}`" for e in fact.examples)
        rows.append(f"| {fact.kind}{alone} | {locks} | {examples} |")
    return (
        "# Locks\n\n"
        "The strongest lock each kind of statement takes on each relation it touches, as\n"
        "`pgshift rollback dry-run`, `pgshift validate --trace` and the lint messages state it.\n"
        "Every example below runs in pgshift's test suite on PostgreSQL"
        f" {lt.OLDEST_MAJOR} and {lt.NEWEST_MAJOR}, and\n"
        "the lock its own backend holds on each relation (`pg_locks`) must be the one this\n"
        "table says; a statement PostgreSQL runs only outside a transaction is sampled from a\n"
        "second session while it waits for a third. The modes are PostgreSQL"
        f" {lt.NEWEST_MAJOR}'s;\n"
        f"where PostgreSQL {lt.OLDEST_MAJOR} differs, the row says so. With a database"
        " configured, `rollback dry-run`\n"
        "states the modes of that server's version.\n\n"
        "Not listed, because every statement takes them or they come with a stronger one: ACCESS\n"
        "SHARE on the tables a statement only reads, ROW SHARE on the tables its foreign-key\n"
        "checks read, and the locks on a relation's own indexes, TOAST table and sequences\n"
        "that are no stronger than the relation's. A statement that is in no row here is\n"
        'shown as "not in the lock table". The examples name the tables of the suite\'s\n'
        "fixture: t (with the index t_a_idx, the trigger t_tr, the policy t_pol and the rule\n"
        "t_rule), p, c (whose foreign keys reference p), the partitioned table m with its\n"
        "partition m1, the table m2, the view v, the materialized view mv and the sequence s.\n\n"
        "Which lock blocks what: ACCESS EXCLUSIVE blocks every read and write; EXCLUSIVE\n"
        "lets only reads through; SHARE ROW EXCLUSIVE and SHARE block writes; SHARE UPDATE\n"
        "EXCLUSIVE blocks other schema changes, VACUUM and ANALYZE, not reads or writes; the\n"
        "weaker modes block only ACCESS EXCLUSIVE (and, for ROW EXCLUSIVE, SHARE and stronger).\n"
        "Even a short ACCESS EXCLUSIVE lock waits behind every running query of the table, and\n"
        "every later query waits behind it: pgshift bounds that wait with `lock_timeout`.\n\n"
        "| statement | locks | examples |\n"
        "|---|---|---|\n" + "\n".join(rows) + "\n"
    )
