"""The statements of the three phases of an expand-contract migration, printed from parse
trees: the setup transaction and what follows it, contract's one transaction and its
validations, and the undo (rewrite/expand.py says why each is shaped so)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pglast import ast, enums

from pgshift.model import TableFacts
from pgshift.rewrite.expand_model import Change, Expansion, PhaseStep, artifact
from pgshift.rewrite.expand_pairs import ColumnPair, TableChanges
from pgshift.rewrite.template import (
    column_ref,
    deparse,
    fill,
    is_node,
    parse_expression,
    parse_type,
    referenced_columns,
    renamed_columns,
    statement_tree,
)

CONSTR = enums.ConstrType


class Phases:
    """Collects the statements of the three phases, table by table."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.setup: list[PhaseStep] = []  # one transaction: columns, trigger, NOT VALID constraints
        self.later: list[PhaseStep] = []  # backfills, concurrent builds, validations
        self.contract: list[PhaseStep] = []
        self.renames: list[PhaseStep] = []  # contract's renames, after the old objects are gone
        self.contract_later: list[PhaseStep] = []  # validations, each its own transaction
        self.undo: list[PhaseStep] = []
        self.summary: list[str] = []
        self.removes: list[str] = []

    def result(self, tables: tuple[str, ...]) -> Expansion:
        return Expansion(
            version=self.version,
            tables=tables,
            expand=tuple(self.setup + self.later),
            contract=tuple(self.contract + self.renames + self.contract_later),
            undo=tuple(reversed(self.undo)),
            summary=tuple(self.summary),
            removes=tuple(self.removes),
        )

    def _setup(self, sql: str, line: int) -> None:
        self.setup.append(PhaseStep(sql, 0, line))

    def _later(self, sql: str, line: int, **kw: Any) -> None:
        self.later.append(PhaseStep(sql, len(self.later) + 1, line, **kw))

    def _contract(self, sql: str, line: int) -> None:
        self.contract.append(PhaseStep(sql, 0, line))

    def _rename(self, sql: str, line: int) -> None:
        self.renames.append(PhaseStep(sql, 0, line))

    def _undo(self, sql: str, line: int, **kw: Any) -> None:
        self.undo.append(PhaseStep(sql, 0, line, **kw))

    def run_as_written(self, change: Change) -> None:
        statement = statement_tree(change.definition)
        concurrent = is_node(statement, ast.IndexStmt) and statement.concurrent
        if concurrent:
            schema = statement.relation.schemaname or "public"
            self._later(
                change.definition,
                change.line,
                transactional=False,
                concurrent_index=(schema, statement.idxname),
            )
            self._undo(change.undo, change.line)
        else:
            self._setup(change.definition, change.line)
            if change.undo:
                self._undo(change.undo, change.line)
        self.summary.append(f"line {change.line}: runs as written")

    def table(self, table: TableChanges) -> None:
        facts = table.facts
        names = {"__s": facts.schema, "__t": facts.name}
        if table.renamed_to is not None:
            self._rename_table(table, names)
            return
        for change in table.added:
            self._add_column(table, change, names)
        if table.pairs:
            self._pairs(table, names)
        for column, line in table.not_null:
            self._not_null(table, column, line, names)
        for column, line in table.dropped:
            self._drop_column(table, column, line, names)
        for change in table.constraints:
            self._constraint(table, change, names)

    # -- a table renamed: a view of the old name serves the old code -------------------------

    def _rename_table(self, table: TableChanges, names: dict[str, Any]) -> None:
        new = table.renamed_to or ""
        line = 1
        self._setup(fill("ALTER TABLE __s.__t RENAME TO __n", **names, __n=new), line)
        self._setup(fill("CREATE VIEW __s.__t AS SELECT * FROM __s.__n", **names, __n=new), line)
        for grantee, privilege in table.facts.grants:
            sql = _grant(privilege, names, grantee)
            self._setup(sql, line)
        self._contract(fill("DROP VIEW __s.__t", **names), line)
        self._undo(fill("ALTER TABLE IF EXISTS __s.__n RENAME TO __t", **names, __n=new), line)
        self._undo(fill("DROP VIEW IF EXISTS __s.__t", **names), line)
        shown = f"{table.facts.schema}.{table.facts.name}"
        self.summary.append(
            f"{shown} renamed to {new}; a view {shown} serves the old code until contract"
        )
        self.removes.append(f"view {shown}")

    # -- columns served in two shapes ------------------------------------------------------------

    def _pairs(self, table: TableChanges, names: dict[str, Any]) -> None:
        facts, version = table.facts, self.version
        function = artifact(facts.name, "sync", version)
        trigger = "zz_" + artifact(facts.name, "sync", version)
        line = table.pairs[0].line
        for pair in table.pairs:
            type_node = parse_type(pair.type_sql)
            sql = fill(
                "ALTER TABLE __s.__t ADD COLUMN __c __ty", **names, __c=pair.shadow, __ty=type_node
            )
            self._setup(sql, pair.line)
        self._setup(_sync_function(facts.schema, function, table.pairs), line)
        watched = _watched(table.pairs)
        self._setup(
            fill(
                "CREATE TRIGGER __tr BEFORE INSERT OR UPDATE OF __cols ON __s.__t FOR EACH ROW"
                " EXECUTE FUNCTION __s.__f()",
                **names,
                __tr=trigger,
                __f=function,
                __cols=watched,
            ),
            line,
        )
        self._backfill(table, names, line)
        for pair in table.pairs:
            self._carry_column(table, pair, names)
        for pair in table.pairs:
            self._release_references(table, pair)
        self._contract(fill("DROP TRIGGER __tr ON __s.__t", **names, __tr=trigger), line)
        self._contract(fill("DROP FUNCTION __s.__f()", **names, __f=function), line)
        for pair in table.pairs:
            self._swap(table, pair, names)
        for pair in table.pairs:
            self._restore_references(table, pair)
        for pair in table.pairs:
            self._undo(
                fill("ALTER TABLE __s.__t DROP COLUMN IF EXISTS __c", **names, __c=pair.shadow),
                pair.line,
            )
        self._undo(fill("DROP FUNCTION IF EXISTS __s.__f()", **names, __f=function), line)
        self._undo(fill("DROP TRIGGER IF EXISTS __tr ON __s.__t", **names, __tr=trigger), line)
        self.removes.append(f"trigger {trigger} and function {facts.schema}.{function}")

    def _backfill(self, table: TableChanges, names: dict[str, Any], line: int) -> None:
        sets = []
        differs = []
        for pair in table.pairs:
            up = pair.up if pair.up is not None else column_ref(pair.old.name)
            sets.append(ast.ResTarget(name=pair.shadow, val=up))
            differs.append(_distinct(column_ref(pair.shadow), up))
        stmt = statement_tree(fill("UPDATE __s.__t SET __x = 1", **names, __x="x"))
        stmt.targetList = tuple(sets)
        stmt.whereClause = (
            differs[0]
            if len(differs) == 1
            else ast.BoolExpr(boolop=enums.BoolExprType.OR_EXPR, args=tuple(differs))
        )
        self._later(deparse(stmt), line, backfill=True)
        # The copy left a dead version of every row: vacuumed now (no lock that blocks reads
        # or writes), the index builds scan half as much and the application's writes do not
        # pay for them (bench/bench_expand.py measured 1.6-1.8x on a set-based UPDATE).
        self._later(fill("VACUUM (ANALYZE) __s.__t", **names), line, transactional=False)

    def _carry_column(self, table: TableChanges, pair: ColumnPair, names: dict[str, Any]) -> None:
        """What the new column needs to stand in for the old one: its indexes (built
        concurrently), NOT NULL (as a validated CHECK until contract), CHECK and FOREIGN KEY
        constraints (NOT VALID, then validated), its comment."""
        facts, old, version = table.facts, pair.old, self.version
        if pair.not_null:
            check = artifact(pair.new, "nn", version)
            self._not_valid_check(names, check, pair.shadow, pair.line)
        for index in facts.indexes:
            if old.name in index.columns:
                self._carry_index(facts, index, pair, names)
        for constraint in facts.constraints:
            if old.name in constraint.columns:
                self._carry_constraint(constraint, pair, names)
        for grantee, privilege in old.grants:  # column privileges follow the column
            self._setup(_grant(privilege, names, grantee, pair.shadow), pair.line)
        if old.comment is not None:
            comment = statement_tree(
                fill("COMMENT ON COLUMN __s.__t.__c IS 'x'", **names, __c=pair.shadow)
            )
            comment.comment = old.comment
            self._setup(deparse(comment), pair.line)
        summary = (
            f"{facts.schema}.{facts.name}.{old.name} renamed to {pair.new}"
            if pair.writable and pair.new != old.name
            else f"{facts.schema}.{facts.name}.{old.name} changes type"
        )
        if pair.up is not None and not pair.writable:
            summary += f" to {pair.type_sql}, in a shadow column {pair.shadow} until contract"
        elif pair.type_sql != old.type:
            summary += f" (type {pair.type_sql})"
        self.summary.append(summary + "; a trigger keeps both shapes equal")
        self.removes.append(f"column {facts.schema}.{facts.name}.{old.name}")

    def _not_valid_check(self, names: dict[str, Any], check: str, column: str, line: int) -> None:
        self._setup(
            fill(
                "ALTER TABLE __s.__t ADD CONSTRAINT __k CHECK (__c IS NOT NULL) NOT VALID",
                **names,
                __k=check,
                __c=column,
            ),
            line,
        )
        self._later(fill("ALTER TABLE __s.__t VALIDATE CONSTRAINT __k", **names, __k=check), line)

    def _carry_index(
        self, facts: TableFacts, index: Any, pair: ColumnPair, names: dict[str, Any]
    ) -> None:
        stmt = statement_tree(index.definition)
        built = artifact(index.name, "ix", self.version)
        stmt.idxname = built
        stmt.concurrent = True
        renamed = {pair.old.name: column_ref(pair.shadow)}
        stmt.indexParams = tuple(_index_param(p, pair, renamed) for p in stmt.indexParams)
        if stmt.whereClause is not None:
            stmt.whereClause = renamed_columns(stmt.whereClause, renamed)
        self._later(
            deparse(stmt), pair.line, transactional=False, concurrent_index=(facts.schema, built)
        )
        self._undo(fill("DROP INDEX IF EXISTS __s.__i", __s=facts.schema, __i=built), pair.line)
        final = index.name
        self._rename(
            fill("ALTER INDEX __s.__i RENAME TO __n", __s=facts.schema, __i=built, __n=final),
            pair.line,
        )
        if index.constraint is not None:
            kind = "PRIMARY KEY" if index.primary else "UNIQUE"
            self._rename(
                fill(
                    f"ALTER TABLE __s.__t ADD CONSTRAINT __k {kind} USING INDEX __i",
                    **names,
                    __k=index.constraint,
                    __i=final,
                ),
                pair.line,
            )

    def _carry_constraint(self, constraint: Any, pair: ColumnPair, names: dict[str, Any]) -> None:
        node = statement_tree(
            fill("ALTER TABLE __s.__t ADD CONSTRAINT __k CHECK (true)", **names, __k="k")
        )
        definition = statement_tree(f"ALTER TABLE t ADD {constraint.definition}").cmds[0].def_
        built = artifact(constraint.name, "ck", self.version)
        definition.conname = built
        definition.skip_validation = True
        definition.initially_valid = False
        if definition.raw_expr is not None:
            definition.raw_expr = renamed_columns(
                definition.raw_expr, {pair.old.name: column_ref(pair.shadow)}
            )
        if definition.fk_attrs:
            definition.fk_attrs = tuple(
                ast.String(sval=pair.shadow if a.sval == pair.old.name else a.sval)
                for a in definition.fk_attrs
            )
        node.cmds[0].def_ = definition
        self._setup(deparse(node), pair.line)
        self._later(
            fill("ALTER TABLE __s.__t VALIDATE CONSTRAINT __k", **names, __k=built), pair.line
        )
        self._rename(
            fill(
                "ALTER TABLE __s.__t RENAME CONSTRAINT __k TO __n",
                **names,
                __k=built,
                __n=constraint.name,
            ),
            pair.line,
        )

    def _remember_identity(self, pair: ColumnPair) -> None:
        """The next number the old identity would give, kept in a setting local to the
        contract's transaction: its sequence goes with the old column, and the new column's
        identity starts there (the transaction holds the table: no row takes one between)."""
        stmt = statement_tree(
            "SELECT set_config('pgshift.identity', (CASE WHEN s.is_called THEN s.last_value + 1"
            " ELSE s.last_value END)::text, true) FROM x s"
        )
        source = _range_var(pair.old.sequence or "")
        source.alias = stmt.fromClause[0].alias
        stmt.fromClause = (source,)
        self._contract(deparse(stmt), pair.line)

    def _restore_identity(
        self, table: TableChanges, pair: ColumnPair, names: dict[str, Any]
    ) -> None:
        """The new column (NOT NULL by now) becomes the identity, ALWAYS or BY DEFAULT as the
        old one was, and goes on from the number _remember_identity kept."""
        kind = "ALWAYS" if pair.old.identity == "a" else "BY DEFAULT"
        sql = fill(
            f"ALTER TABLE __s.__t ALTER COLUMN __c ADD GENERATED {kind} AS IDENTITY",
            **names,
            __c=pair.new,
        )
        self._contract(sql, pair.line)
        stmt = statement_tree(
            "SELECT setval(pg_get_serial_sequence('t', 'c'),"
            " current_setting('pgshift.identity')::bigint, false)"
        )
        call = stmt.targetList[0].val.args[0]
        table_name = f"{_quoted(table.facts.schema)}.{_quoted(table.facts.name)}"
        call.args = (_string(table_name), _string(pair.new))
        self._contract(deparse(stmt), pair.line)

    def _release_references(self, table: TableChanges, pair: ColumnPair) -> None:
        """Foreign keys of other tables that point at the old column go before it does, in
        the contract's transaction (they would keep it, and its key index, from going)."""
        for reference in table.facts.referenced:
            if pair.old.name in reference.columns:
                stmt = statement_tree("ALTER TABLE x DROP CONSTRAINT __k".replace("__k", "k"))
                stmt.relation = _range_var(reference.table)
                stmt.cmds[0].name = reference.name
                self._contract(deparse(stmt), pair.line)

    def _restore_references(self, table: TableChanges, pair: ColumnPair) -> None:
        """The same foreign keys, on the new column, added NOT VALID in the contract's
        transaction once the new key exists, then validated each in a transaction of its own
        (SHARE UPDATE EXCLUSIVE: writes go on meanwhile)."""
        for reference in table.facts.referenced:
            if pair.old.name not in reference.columns:
                continue
            stmt = statement_tree("ALTER TABLE x ADD CONSTRAINT k CHECK (true)")
            stmt.relation = _range_var(reference.table)
            definition = statement_tree(f"ALTER TABLE t ADD {reference.definition}").cmds[0].def_
            definition.conname = reference.name
            definition.skip_validation = True
            definition.initially_valid = False
            definition.pk_attrs = tuple(
                ast.String(sval=pair.new if a.sval == pair.old.name else a.sval)
                for a in definition.pk_attrs or ()
            )
            stmt.cmds[0].def_ = definition
            self._rename(deparse(stmt), pair.line)
            validate = statement_tree("ALTER TABLE x VALIDATE CONSTRAINT k")
            validate.relation = _range_var(reference.table)
            validate.cmds[0].name = reference.name
            self.contract_later.append(
                PhaseStep(deparse(validate), len(self.contract_later) + 1, pair.line)
            )

    def _swap(self, table: TableChanges, pair: ColumnPair, names: dict[str, Any]) -> None:
        """The contract of one pair, in the one short transaction: the old column goes (with
        its indexes and constraints), the shadow takes the final name and what the old column
        had (default, NOT NULL, its identity or owned sequence, which goes on counting)."""
        old, line = pair.old, pair.line
        serial = old.sequence is not None and not old.identity
        if old.identity:
            self._remember_identity(pair)
        if serial:
            self._contract(
                deparse(statement_tree(f"ALTER SEQUENCE {old.sequence} OWNED BY NONE")), line
            )
        self._contract(fill("ALTER TABLE __s.__t DROP COLUMN __c", **names, __c=old.name), line)
        if pair.shadow != pair.new:
            sql = fill(
                "ALTER TABLE __s.__t RENAME COLUMN __c TO __n",
                **names,
                __c=pair.shadow,
                __n=pair.new,
            )
            self._contract(sql, line)
        if old.default is not None and not old.identity:
            sql = fill(
                "ALTER TABLE __s.__t ALTER COLUMN __c SET DEFAULT __d",
                **names,
                __c=pair.new,
                __d="d",
            )
            stmt = statement_tree(sql)
            stmt.cmds[0].def_ = parse_expression(old.default)
            self._contract(deparse(stmt), line)
        if serial:
            sequence = statement_tree(f"ALTER SEQUENCE {old.sequence} OWNED BY x.y.z")
            sequence.options[0].arg = (
                ast.String(sval=table.facts.schema),
                ast.String(sval=table.facts.name),
                ast.String(sval=pair.new),
            )
            self._contract(deparse(sequence), line)
            if pair.type_sql in _SEQUENCE_TYPES and pair.type_sql != old.type:
                widened = statement_tree(f"ALTER SEQUENCE {old.sequence} AS bigint")
                widened.options[0].arg = parse_type(pair.type_sql)
                self._contract(deparse(widened), line)
        if pair.not_null:
            check = artifact(pair.new, "nn", self.version)
            self._contract(
                fill("ALTER TABLE __s.__t ALTER COLUMN __c SET NOT NULL", **names, __c=pair.new),
                line,
            )
            self._contract(
                fill("ALTER TABLE __s.__t DROP CONSTRAINT __k", **names, __k=check), line
            )
        if old.identity:
            self._restore_identity(table, pair, names)

    # -- changes that need no second column -------------------------------------------------

    def _checked_not_null(self, names: dict[str, Any], column: str, line: int) -> str:
        """NOT NULL the safe way: a CHECK added NOT VALID and validated in expand, then
        contract's SET NOT NULL (no scan: the check proves it) and the check dropped. Returns
        the check's name."""
        check = artifact(column, "nn", self.version)
        self._not_valid_check(names, check, column, line)
        sql = fill("ALTER TABLE __s.__t ALTER COLUMN __c SET NOT NULL", **names, __c=column)
        self._contract(sql, line)
        self._contract(fill("ALTER TABLE __s.__t DROP CONSTRAINT __k", **names, __k=check), line)
        return check

    def _not_null(self, table: TableChanges, column: str, line: int, names: dict[str, Any]) -> None:
        check = self._checked_not_null(names, column, line)
        self._undo(
            fill("ALTER TABLE __s.__t DROP CONSTRAINT IF EXISTS __k", **names, __k=check), line
        )
        self.summary.append(
            f"{table.facts.schema}.{table.facts.name}.{column} checked NOT NULL now (a validated"
            " CHECK); contract makes it NOT NULL without a scan"
        )

    def _drop_column(
        self, table: TableChanges, column: str, line: int, names: dict[str, Any]
    ) -> None:
        facts = table.facts.column(column)
        if facts is not None and facts.not_null and facts.default is None:
            # The new code's INSERTs do not name the column: it must accept NULL meanwhile.
            self._setup(
                fill("ALTER TABLE __s.__t ALTER COLUMN __c DROP NOT NULL", **names, __c=column),
                line,
            )
            self._undo(
                fill("ALTER TABLE __s.__t ALTER COLUMN __c SET NOT NULL", **names, __c=column), line
            )
        self._contract(fill("ALTER TABLE __s.__t DROP COLUMN __c", **names, __c=column), line)
        shown = f"{table.facts.schema}.{table.facts.name}.{column}"
        self.summary.append(f"{shown} stays for the old code until contract drops it")
        self.removes.append(f"column {shown}")

    def _add_column(self, table: TableChanges, change: Change, names: dict[str, Any]) -> None:
        type_node = parse_type(change.type_sql)
        line, column = change.line, change.column
        add = statement_tree(
            fill("ALTER TABLE __s.__t ADD COLUMN __c __ty", **names, __c=column, __ty=type_node)
        )
        undo = fill("ALTER TABLE __s.__t DROP COLUMN IF EXISTS __c", **names, __c=column)
        if change.default is None:  # no default, or a constant one: instant, as written
            constraints: list[Any] = []
            if change.definition:
                constraints.append(
                    ast.Constraint(
                        contype=CONSTR.CONSTR_DEFAULT, raw_expr=parse_expression(change.definition)
                    )
                )
            if change.not_null:
                constraints.append(ast.Constraint(contype=CONSTR.CONSTR_NOTNULL))
            add.cmds[0].def_.constraints = tuple(constraints) or None
            self._setup(deparse(add), line)
            self._undo(undo, line)
            self.summary.append(f"line {line}: ADD COLUMN {column} runs as written (instant)")
            return
        self._setup(deparse(add), line)
        self._undo(undo, line)
        default = statement_tree(
            fill(
                "ALTER TABLE __s.__t ALTER COLUMN __c SET DEFAULT __d", **names, __c=column, __d="d"
            )
        )
        value = parse_expression(change.default)
        default.cmds[0].def_ = value
        self._setup(deparse(default), line)
        backfill = statement_tree(
            fill("UPDATE __s.__t SET __c = __d WHERE __c IS NULL", **names, __c=column, __d="d")
        )
        backfill.targetList[0].val = value
        self._later(deparse(backfill), line, backfill=True)
        if change.not_null:
            self._checked_not_null(names, column, line)
        self.summary.append(
            f"line {line}: {column} added with its default for new rows; existing rows filled"
            " in batches"
        )

    def _constraint(self, table: TableChanges, change: Change, names: dict[str, Any]) -> None:
        definition = statement_tree(f"ALTER TABLE t ADD {change.definition}").cmds[0].def_
        line, name = change.line, change.constraint
        undo = fill("ALTER TABLE __s.__t DROP CONSTRAINT IF EXISTS __k", **names, __k=name)
        if definition.contype == CONSTR.CONSTR_UNIQUE:
            index = artifact(name, "uq", self.version)
            columns = tuple(k.sval for k in definition.keys)
            stmt = statement_tree(
                fill(
                    "CREATE UNIQUE INDEX CONCURRENTLY __i ON __s.__t (__x)",
                    **names,
                    __i=index,
                    __x="x",
                )
            )
            stmt.indexParams = tuple(
                ast.IndexElem(
                    name=c,
                    ordering=enums.SortByDir.SORTBY_DEFAULT,
                    nulls_ordering=enums.SortByNulls.SORTBY_NULLS_DEFAULT,
                )
                for c in columns
            )
            stmt.nulls_not_distinct = definition.nulls_not_distinct
            self._later(
                deparse(stmt),
                line,
                transactional=False,
                concurrent_index=(table.facts.schema, index),
            )
            self._later(
                fill(
                    "ALTER TABLE __s.__t ADD CONSTRAINT __k UNIQUE USING INDEX __i",
                    **names,
                    __k=name,
                    __i=index,
                ),
                line,
            )
            self._undo(
                fill("DROP INDEX IF EXISTS __s.__i", __s=table.facts.schema, __i=index), line
            )
            self._undo(undo, line)
            self.summary.append(f"line {line}: UNIQUE {name} built concurrently, then attached")
            return
        definition.skip_validation = True
        definition.initially_valid = False
        stmt = statement_tree(fill("ALTER TABLE __s.__t ADD CONSTRAINT k CHECK (true)", **names))
        stmt.cmds[0].def_ = definition
        self._setup(deparse(stmt), line)
        self._later(fill("ALTER TABLE __s.__t VALIDATE CONSTRAINT __k", **names, __k=name), line)
        self._undo(undo, line)
        self.summary.append(f"line {line}: {name} added NOT VALID, then validated on its own")


#: What GRANT may name, as aclexplode() spells it: a catalog value outside them is refused
#: rather than printed into a statement.
_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}
)


def _grant(privilege: str, names: Mapping[str, Any], grantee: str, column: str = "") -> str:
    """GRANT ``privilege`` on the table (on ``column`` of it, when given) to ``grantee``
    (a role, or PUBLIC), printed from its tree."""
    if privilege not in _PRIVILEGES:
        raise ValueError(f"unknown privilege {privilege!r}")
    on = f"{privilege} (__c) ON TABLE __s.__t" if column else f"{privilege} ON TABLE __s.__t"
    if grantee == "PUBLIC":
        return fill(f"GRANT {on} TO PUBLIC", **names, **({"__c": column} if column else {}))
    return fill(f"GRANT {on} TO __g", **names, __g=grantee, **({"__c": column} if column else {}))


#: Types a sequence may be declared AS: a widened key's sequence is widened with it.
_SEQUENCE_TYPES = frozenset({"smallint", "integer", "bigint"})


def _range_var(name: str) -> Any:
    """The RangeVar of a relation name as the server prints it (regclass text: quoted and
    qualified as needed), read by the parser."""
    return statement_tree(f"SELECT FROM {name}").fromClause[0]


def _quoted(name: str) -> str:
    """``name`` as an SQL identifier, printed by the deparser."""
    return deparse(column_ref(name))


def _string(value: str) -> Any:
    return ast.A_Const(val=ast.String(sval=value), isnull=False)


def _index_param(param: Any, pair: ColumnPair, renamed: Mapping[str, Any]) -> Any:
    if param.name == pair.old.name:
        param.name = pair.shadow
    if param.expr is not None:
        param.expr = renamed_columns(param.expr, renamed)
    return param


def _distinct(left: Any, right: Any) -> Any:
    return ast.A_Expr(
        kind=enums.A_Expr_Kind.AEXPR_DISTINCT, name=(ast.String(sval="="),), lexpr=left, rexpr=right
    )


def _watched(pairs: Sequence[ColumnPair]) -> tuple[str, ...]:
    """The columns whose change fires the trigger: each pair's two, and what ``up`` reads."""
    found: list[str] = []
    for pair in pairs:
        for name in (
            pair.old.name,
            pair.shadow,
            *referenced_columns(pair.up or column_ref(pair.old.name)),
        ):
            if name not in found:
                found.append(name)
    return tuple(found)


def _sync_function(schema: str, name: str, pairs: Sequence[ColumnPair]) -> str:
    """CREATE FUNCTION of the trigger that keeps every pair of the table equal (the module's
    docstring gives its rule). The body's expressions are printed from trees; only the
    PL/pgSQL around them is fixed text."""
    lines = ["BEGIN"]
    for pair in pairs:
        old = deparse(column_ref("new", pair.old.name))
        new = deparse(column_ref("new", pair.shadow))
        before = deparse(column_ref("old", pair.shadow))
        up_node = pair.up if pair.up is not None else column_ref(pair.old.name)
        up = deparse(_over_new(up_node))
        if not pair.writable:
            lines.append(f"  {new} := {up};")
            continue
        down_node = pair.down if pair.down is not None else column_ref(pair.new)
        down = deparse(renamed_columns(down_node, {pair.new: column_ref("new", pair.shadow)}))
        lines += [
            "  IF TG_OP = 'INSERT' THEN",
            f"    IF {new} IS NULL THEN {new} := {up}; ELSE {old} := {down}; END IF;",
            f"  ELSIF {new} IS DISTINCT FROM {before} THEN",
            f"    {old} := {down};",
            "  ELSE",
            f"    {new} := {up};",
            "  END IF;",
        ]
    lines += ["  RETURN NEW;", "END"]
    stmt = statement_tree(
        fill(
            "CREATE FUNCTION __s.__f() RETURNS trigger LANGUAGE plpgsql AS 'x'",
            __s=schema,
            __f=name,
        )
    )
    for option in stmt.options:
        if option.defname == "as":
            option.arg = (ast.String(sval="\n".join(lines) + "\n"),)
    return deparse(stmt)


def _over_new(node: Any) -> Any:
    """``node`` with its unqualified column references read from the trigger's NEW row."""
    return renamed_columns(
        node, {name: column_ref("new", name) for name in referenced_columns(node)}
    )
