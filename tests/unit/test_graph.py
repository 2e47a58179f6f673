"""Tests of the dependency graph from literals: order, tie-breaks, cycles and dependents."""

from __future__ import annotations

import pytest

from pgshift.graph import CycleError, dependents_of, topological_order

A, B, C, D, E = (f"2025010{i}000000" for i in range(1, 6))


def test_no_dependencies_is_version_order() -> None:
    assert topological_order({C: [], A: [], B: []}) == [A, B, C]


def test_dependency_on_a_newer_version_moves_only_what_it_must() -> None:
    assert topological_order({A: [D], B: [], C: [], D: []}) == [B, C, D, A]


def test_smallest_ready_version_first() -> None:
    deps = {A: [], B: [A], C: [], D: [B, C], E: [A]}
    assert topological_order(deps) == [A, B, C, D, E]


def test_diamond() -> None:
    assert topological_order({D: [B, C], B: [A], C: [A], A: []}) == [A, B, C, D]


def test_unknown_and_repeated_dependencies_are_ignored() -> None:
    assert topological_order({B: ["19990101000000", A, A], A: []}) == [A, B]


def test_accepts_any_iterables() -> None:
    assert topological_order({B: iter([A]), A: ()}) == [A, B]


def test_empty() -> None:
    assert topological_order({}) == []


def test_two_node_cycle() -> None:
    with pytest.raises(CycleError) as err:
        topological_order({A: [B], B: [A], C: []})
    assert err.value.cycle == (A, B, A)
    assert str(err.value) == f"dependency cycle: {A} -> {B} -> {A}"


def test_self_dependency() -> None:
    with pytest.raises(CycleError) as err:
        topological_order({A: [A]})
    assert err.value.cycle == (A, A)


def test_cycle_reached_from_outside_names_only_its_members() -> None:
    # A waits on the cycle B -> D -> C -> B but is not part of it.
    with pytest.raises(CycleError) as err:
        topological_order({A: [B], B: [D], C: [B], D: [C], E: []})
    assert err.value.cycle == (B, D, C, B)


def test_cycle_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="dependency cycle"):
        topological_order({A: [B], B: [C], C: [A]})


def test_dependents_of_is_transitive() -> None:
    deps = {A: [], B: [A], C: [B], D: [], E: [C, D]}
    assert dependents_of(deps, A) == {B, C, E}
    assert dependents_of(deps, D) == {E}
    assert dependents_of(deps, E) == set()
    assert dependents_of(deps, "19990101000000") == set()
