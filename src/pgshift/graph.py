"""The migration dependency graph: a deterministic apply order, named cycles, and dependents.

Pure functions over ``{version: dependencies}`` so that ordering can be tested from literals,
without files or a database.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping


class CycleError(ValueError):
    """The dependencies loop back on themselves, so no order can satisfy them."""

    def __init__(self, cycle: tuple[str, ...]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


def _known_edges(deps: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """Each node's dependencies that are themselves nodes; the loader reports the others."""
    return {node: {d for d in targets if d in deps} for node, targets in deps.items()}


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Every node after all of its dependencies; among ready nodes the smallest comes first.

    The smallest-first rule makes the order equal to plain version order whenever the
    dependencies allow it, so declaring a dependency never reorders unrelated migrations.
    Raises CycleError naming the members of one cycle, closed (first repeated at the end).
    """
    edges = _known_edges(deps)
    waiting = {node: len(targets) for node, targets in edges.items()}
    dependents: dict[str, list[str]] = {node: [] for node in edges}
    for node, targets in edges.items():
        for target in targets:
            dependents[target].append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for dependent in dependents[node]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(order) < len(edges):
        raise CycleError(_find_cycle(edges, set(edges) - set(order)))
    return order


def _find_cycle(edges: Mapping[str, set[str]], stuck: set[str]) -> tuple[str, ...]:
    """One cycle among the nodes Kahn's algorithm could not place.

    Every stuck node still waits on a stuck dependency, so following dependencies from any of
    them must come back to a node already seen; the loop from there is a cycle. It is rotated
    to start at its smallest member so the message does not depend on where the walk began.
    """
    node = min(stuck)
    path: list[str] = []
    seen: dict[str, int] = {}
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = min(d for d in edges[node] if d in stuck)
    loop = path[seen[node] :]
    start = loop.index(min(loop))
    loop = loop[start:] + loop[:start]
    return (*loop, loop[0])


def dependents_of(deps: Mapping[str, Iterable[str]], version: str) -> set[str]:
    """Every node that depends on ``version`` directly or through others.

    Rolling back ``version`` while any of these stays applied would break them.
    """
    reverse: dict[str, set[str]] = {}
    for node, targets in deps.items():
        for target in targets:
            reverse.setdefault(target, set()).add(node)
    found: set[str] = set()
    todo = [version]
    while todo:
        for dependent in reverse.get(todo.pop(), ()):
            if dependent not in found:
                found.add(dependent)
                todo.append(dependent)
    return found
