"""The marker a migration's message opens with, and what `status` reads back from it."""

from __future__ import annotations

from pgshift.db.activity import marker, steps_in

V1, V2, V3 = "20250101000001", "20250101000002", "20250101000003"


def test_a_lone_migration_s_marker_names_it() -> None:
    text = marker("apply", "pgshift", V1).decode() + "BEGIN;\nCREATE TABLE t (id int)"
    assert steps_in([text], "pgshift") == {V1: "apply"}


def test_a_batch_s_marker_names_every_migration_it_carries() -> None:
    text = marker("revert", "pgshift", V1, [V2, V3]).decode() + "BEGIN"
    assert steps_in([text], "pgshift") == {V1: "revert", V2: "revert", V3: "revert"}


def test_a_marker_cut_short_by_the_server_keeps_only_whole_versions() -> None:
    """pg_stat_activity keeps the first track_activity_query_size bytes of a query."""
    full = marker("apply", "pgshift", V1, [V2, V3]).decode()
    cut = full[: full.index(V3) + 6]
    assert steps_in([cut], "pgshift") == {V1: "apply", V2: "apply"}


def test_another_schema_s_batch_is_not_this_one_s() -> None:
    text = marker("apply", "tenant_a", V1, [V2]).decode() + "BEGIN"
    assert steps_in([text], "pgshift") == {}
    assert steps_in([text, None], "tenant_a") == {V1: "apply", V2: "apply"}
