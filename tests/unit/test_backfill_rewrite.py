"""The backfill rewrite from literals: the deparsed batch statements, and every refusal's reason."""

from __future__ import annotations

import pytest

from pgshift.rewrite.backfill import (
    DELETE,
    INSERT,
    UPDATE,
    BackfillShape,
    NotABackfill,
    Relation,
    batch_statements,
    shape_of,
)


def test_update_over_a_single_key() -> None:
    batches = batch_statements("UPDATE items SET n = n + 1", ["id"])
    assert batches.first == "UPDATE items SET n = n + 1 WHERE items.id <= $1"
    assert batches.following == "UPDATE items SET n = n + 1 WHERE items.id > $1 AND items.id <= $2"
    assert batches.key == ("id",)


def test_composite_key_compares_rows_and_numbers_its_parameters() -> None:
    batches = batch_statements("UPDATE items SET n = 0", ["tenant", "Item No"])
    assert batches.first == (
        'UPDATE items SET n = 0 WHERE (items.tenant, items."Item No") <= ($1, $2)'
    )
    assert batches.following == (
        'UPDATE items SET n = 0 WHERE (items.tenant, items."Item No") > ($1, $2)'
        ' AND (items.tenant, items."Item No") <= ($3, $4)'
    )


def test_an_alias_qualifies_the_key_and_an_or_keeps_its_parentheses() -> None:
    sql = "update public.items as i set n = n + 1 where i.n < 10 or i.n is null"
    assert batch_statements(sql, ["id"]).following == (
        "UPDATE public.items AS i SET n = n + 1 WHERE (i.n < 10 OR i.n IS NULL)"
        " AND i.id > $1 AND i.id <= $2"
    )


def test_update_from_batches_the_updated_table() -> None:
    sql = "UPDATE items SET price = p.price FROM prices p WHERE p.id = items.id"
    assert batch_statements(sql, ["id"]).first == (
        "UPDATE items SET price = p.price FROM prices AS p WHERE p.id = items.id AND items.id <= $1"
    )


def test_delete_with_using() -> None:
    sql = "DELETE FROM events e USING users u WHERE e.user_id = u.id AND u.gone"
    assert batch_statements(sql, ["id"]).following == (
        "DELETE FROM events AS e USING users AS u WHERE e.user_id = u.id AND u.gone"
        " AND e.id > $1 AND e.id <= $2"
    )


def test_insert_select_batches_its_source_through_its_joins() -> None:
    sql = (
        "INSERT INTO archive (id, body) SELECT m.id, m.body FROM messages m"
        " LEFT JOIN users u ON u.id = m.user_id ON CONFLICT DO NOTHING"
    )
    assert shape_of(sql) == BackfillShape(
        INSERT, Relation(None, "archive"), Relation(None, "messages"), "m"
    )
    assert batch_statements(sql, ["id"]).first == (
        "INSERT INTO archive (id, body) SELECT m.id, m.body FROM messages AS m"
        " LEFT JOIN users AS u ON u.id = m.user_id WHERE m.id <= $1 ON CONFLICT DO NOTHING"
    )


def test_shapes() -> None:
    assert shape_of("UPDATE s.t SET a = 1, b = 2") == BackfillShape(
        UPDATE, Relation("s", "t"), Relation("s", "t"), "t", ("a", "b")
    )
    assert shape_of("DELETE FROM t x") == BackfillShape(
        DELETE, Relation(None, "t"), Relation(None, "t"), "x"
    )


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("CREATE TABLE x (a int)", "this is CREATE"),
        ("ALTER TABLE x ADD COLUMN a int", "this is ALTER TABLE"),
        ("SELECT 1", "this is SELECT"),
        ("UPDATE t SET a = 1; UPDATE t SET b = 1", "exactly one data statement; this has 2"),
        ("UPDATE t SET a = 1 RETURNING id", "has RETURNING"),
        ("DELETE FROM t RETURNING *", "has RETURNING"),
        ("WITH d AS (DELETE FROM t RETURNING *) INSERT INTO u SELECT * FROM d", "WITH clause"),
        ("WITH x AS (SELECT 1) UPDATE t SET a = 1", "WITH clause"),
        ("INSERT INTO t VALUES (1)", "INSERT ... VALUES"),
        ("INSERT INTO t SELECT * FROM t", "reads the table it writes"),
        ("INSERT INTO t SELECT a FROM s UNION SELECT a FROM u", "combines queries"),
        ("INSERT INTO t SELECT DISTINCT a FROM s", "DISTINCT"),
        ("INSERT INTO t SELECT a, count(*) FROM s GROUP BY a", "GROUP BY"),
        ("INSERT INTO t SELECT a FROM s LIMIT 5", "LIMIT"),
        ("INSERT INTO t SELECT 1", "no FROM"),
        ("INSERT INTO t SELECT * FROM s FULL JOIN u USING (a)", "RIGHT or FULL join"),
        ("INSERT INTO t SELECT * FROM (SELECT 1) x", "subquery or a function"),
        ("UPDATE t SET a = 1 WHERE CURRENT OF c", "CURRENT OF"),
        ("UPDATE t SET a = ", "does not parse"),
    ],
)
def test_refusals_say_why(sql: str, reason: str) -> None:
    with pytest.raises(NotABackfill, match=reason.replace("(", r"\(").replace(".", r"\.")):
        shape_of(sql)


def test_setting_a_key_column_is_refused_once_the_key_is_known() -> None:
    assert shape_of("UPDATE t SET id = id + 1").assigned == ("id",)
    with pytest.raises(NotABackfill, match="sets the key column id"):
        batch_statements("UPDATE t SET id = id + 1", ["tenant", "id"])
    assert batch_statements("UPDATE t SET id = id + 1", ["uuid"]).key == ("uuid",)


def test_the_rewrite_parses_back_to_the_same_tree() -> None:
    """What is printed is what pglast parses again: the rewrite is a tree, not spliced text."""
    from pglast import parse_sql
    from pglast.stream import RawStream

    sql = "UPDATE t SET note = 'it''s -- not a comment' WHERE note <> '$1'"
    batches = batch_statements(sql, ["id"])
    tree = parse_sql(batches.following)[0].stmt
    assert tree is not None
    again = RawStream()(tree)
    assert again == batches.following
    assert "'it''s -- not a comment'" in batches.following
    assert "note <> '$1' AND t.id > $1 AND t.id <= $2" in batches.following
