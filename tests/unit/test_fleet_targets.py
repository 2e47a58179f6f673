"""Targets files, shards and waves, from literals (fleet_targets is pure)."""

from __future__ import annotations

import json

import pytest

from pgshift.db.lock import lock_key
from pgshift.db.target import engine_of
from pgshift.errors import InputError
from pgshift.fleet_targets import (
    TargetSpec,
    in_shard,
    parse_shard,
    parse_targets,
    shard_of,
    targets_from_rows,
    tenant_history_schema,
    waves,
)

GOOD = """
[[target]]
name = "eu-1"
url = "postgresql://app@db1/app"
labels = ["canary", "eu"]

[[target]]
name = "acme"
url = "postgresql://app@db2/saas"
schema = "acme"
"""


def test_a_targets_file_gives_one_spec_per_table() -> None:
    specs = parse_targets(GOOD, "fleet.toml")
    assert specs == (
        TargetSpec("eu-1", "postgresql://app@db1/app", None, ("canary", "eu")),
        TargetSpec("acme", "postgresql://app@db2/saas", "acme", ()),
    )
    assert specs[0].canary and not specs[1].canary
    assert specs[0].history_schema() == "pgshift"
    assert specs[1].history_schema() == "acme_pgshift"


def _problems(text: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        parse_targets(text, "fleet.toml")
    assert caught.value.exit_code == 2
    return [str(p) for p in caught.value.problems]


def test_mistakes_name_the_file_line_and_key() -> None:
    text = '[[target]]\nname = "a"\n\n[[target]]\nname = "b"\nurl = 5\nport = 1\n'
    assert _problems(text) == [
        "fleet.toml:1: key 'url' is required: a PostgreSQL URL",
        "fleet.toml:7: unknown key 'port' in [[target]]",
        "fleet.toml:6: key 'url' is required: a PostgreSQL URL",
    ]


def test_bad_toml_names_its_line() -> None:
    (problem,) = _problems('[[target]]\nname = "a"\nurl = \n')
    assert problem.startswith("fleet.toml:3: not valid TOML")


def test_duplicates_and_bad_values_are_refused() -> None:
    text = (
        '[[target]]\nname = "a"\nurl = "u"\n'
        '[[target]]\nname = "a"\nurl = "u"\nschema = ""\n'
        '[[target]]\nname = "b c"\nurl = "u"\nlabels = "canary"\n'
        '[[target]]\nname = "d"\nurl = "u"\n'
    )
    assert _problems(text) == [
        "fleet.toml:7: key 'schema': '' is not a schema name pgshift uses: 1 to 63 letters,"
        " digits, '_' or '-', starting with a letter or '_', and not 'pg_...' (PostgreSQL"
        " reserves those)",
        "fleet.toml:9: key 'name' is required: letters, digits, '_', '.', '-' (at most 100)",
        "fleet.toml:11: key 'labels' must be a list of strings",
        "fleet.toml:12: target 'd' names the same database and schema as an earlier one",
    ]
    assert _problems("") == ["fleet.toml:1: no [[target]] tables: the fleet is empty"]
    assert _problems('other = 1\n[[target]]\nname = "a"\nurl = "u"\n') == [
        "fleet.toml:1: unknown key 'other' (use [[target]] tables)"
    ]


@pytest.mark.parametrize(
    "schema", ["t1; DROP TABLE x", "pg_tenant", "1abc", "a" * 64, "tenant b", 'x"y']
)
def test_a_schema_name_pgshift_cannot_use_is_refused_naming_it(schema: str) -> None:
    """Issue 17 finding 16: `t1; DROP TABLE x` ended in exit 70 InvalidName on PostgreSQL 15."""
    text = f'[[target]]\nname = "t1"\nurl = "u"\nschema = {json.dumps(schema)}\n'
    with pytest.raises(InputError) as refused:
        parse_targets(text, "fleet.toml")
    assert refused.value.exit_code == 2
    assert refused.value.message.startswith("1 problem in the targets file:")
    assert f"fleet.toml:4: key 'schema': {schema!r} is not a schema name" in refused.value.message
    rows = [("t1", "u", schema)]
    with pytest.raises(InputError, match="in the targets query's rows"):
        targets_from_rows(rows, "--targets-query")


@pytest.mark.parametrize("schema", ["acme", "Acme_Corp", "_t", "tenant-7", "a" * 63])
def test_usual_schema_names_are_accepted(schema: str) -> None:
    text = f'[[target]]\nname = "t1"\nurl = "u"\nschema = "{schema}"\n'
    assert parse_targets(text, "fleet.toml")[0].schema == schema


def test_query_rows_are_targets_too() -> None:
    rows = [("a", "u1", None, ["canary"]), ("b", "u1", "b", "x, y"), ("c", "u2")]
    assert targets_from_rows(rows, "--targets-query") == (
        TargetSpec("a", "u1", None, ("canary",)),
        TargetSpec("b", "u1", "b", ("x", "y")),
        TargetSpec("c", "u2", None, ()),
    )
    with pytest.raises(InputError) as caught:
        targets_from_rows([("a", "u"), ("a", "v"), ("x",)], "--targets-query")
    assert [str(p) for p in caught.value.problems] == [
        "--targets-query:3: a row needs at least name and url columns",
        "--targets-query:2: target name 'a' is used twice",
    ]


def test_tenant_history_schemas_fit_postgresql_and_stay_distinct() -> None:
    assert tenant_history_schema("pgshift", "acme") == "acme_pgshift"
    long_a, long_b = "t" * 60 + "a", "t" * 60 + "b"
    a, b = tenant_history_schema("pgshift", long_a), tenant_history_schema("pgshift", long_b)
    assert a != b and len(a.encode()) <= 63 and len(b.encode()) <= 63
    assert a.endswith("_pgshift")
    # The default target keeps today's lock key; each tenant gets its own.
    assert lock_key("pgshift") == lock_key(TargetSpec("x", "u").history_schema())
    assert lock_key("acme_pgshift") != lock_key("pgshift")


def test_shards_split_deterministically_and_completely() -> None:
    specs = [TargetSpec(f"t{i}", "u", f"t{i}") for i in range(100)]
    parts = [in_shard(specs, i, 4) for i in range(4)]
    assert sorted(s.name for part in parts for s in part) == sorted(s.name for s in specs)
    assert all(10 < len(part) < 40 for part in parts)
    assert shard_of("t7", 4) == shard_of("t7", 4)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_the_canary_wave_comes_from_labels_or_a_count() -> None:
    a, b, c = TargetSpec("a", "u"), TargetSpec("b", "u", "b", ("canary",)), TargetSpec("c", "v")
    assert waves([a, b, c]) == ((b,), (a, c))
    assert waves([a, b, c], canary=2) == ((b, a), (c,))
    assert waves([a, c]) == ((), (a, c))


def test_engines_are_told_apart_by_what_they_report() -> None:
    assert engine_of("PostgreSQL 15.4 on x86_64") == "postgresql"
    assert engine_of("PostgreSQL 15.4", frozenset({"citus"})) == "citus"
    assert engine_of("CockroachDB CCL v23.1.0 (x86_64)") == "cockroachdb"
    assert engine_of("PostgreSQL 11.2-YB-2.20.0.0-b0 on x86_64") == "yugabytedb"
    assert engine_of("PostgreSQL 16 (Aurora DSQL)") == "aurora-dsql"
