"""The dependency graph of registered packages: install order, cycles, unmet requirements.

Pure functions over a mapping ``id -> package`` where a package is anything
with a ``version`` and a tuple of ``dependencies`` (``PackageRow`` is one).
Every walk is iterative, so a long dependency chain cannot exhaust the stack,
and every result is deterministic: ties are broken by id.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Protocol

from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.versions import Dependency, Version

_SHOWN_CYCLE = 10


class DependentPackage(Protocol):
    """What the graph needs from a package row."""

    @property
    def version(self) -> Version: ...

    @property
    def dependencies(self) -> tuple[Dependency, ...]: ...


def _problem(
    package_id: str, dependency: Dependency, packages: Mapping[str, DependentPackage]
) -> Finding | None:
    """The missing or unsatisfied finding for one edge, or ``None`` when the edge is fine."""
    target = packages.get(dependency.package_id)
    if target is None:
        return Finding(
            package_id,
            "dependency-missing",
            f"{package_id} depends on {dependency.package_id}, which is not registered",
        )
    if not dependency.constraint.allows(target.version):
        return Finding(
            package_id,
            "dependency-unsatisfied",
            f"{package_id} requires {dependency}, but {dependency.package_id} is registered"
            f" at version {target.version}",
        )
    return None


def _edges(package: DependentPackage, members: set[str] | Mapping[str, object]) -> list[str]:
    """The sorted, distinct dependency ids of ``package`` that lie inside ``members``."""
    return sorted({dep.package_id for dep in package.dependencies if dep.package_id in members})


def _cycle_path(
    start: str, members: set[str], packages: Mapping[str, DependentPackage]
) -> list[str]:
    """One cycle inside ``members`` (each member must have an edge within it), smallest id first."""
    position: dict[str, int] = {}
    walk: list[str] = []
    node = start
    while node not in position:
        position[node] = len(walk)
        walk.append(node)
        node = _edges(packages[node], members)[0]
    cycle = walk[position[node] :]
    pivot = cycle.index(min(cycle))
    cycle = cycle[pivot:] + cycle[:pivot]
    return [*cycle, cycle[0]]


def _cycle_text(path: list[str]) -> str:
    """``A -> B -> A``; a very long cycle is shortened so the message stays one readable line."""
    if len(path) > _SHOWN_CYCLE + 2:
        hidden = len(path) - _SHOWN_CYCLE - 1
        path = [*path[:_SHOWN_CYCLE], f"... {hidden} more", path[-1]]
    return "dependency cycle: " + " -> ".join(path)


def _strong_components(packages: Mapping[str, DependentPackage]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively; edges to unknown ids are ignored."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in sorted(packages):
        if root in index:
            continue
        work: list[tuple[str, list[str], int]] = [(root, _edges(packages[root], packages), 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors, next_edge = work[-1]
            if next_edge < len(successors):
                work[-1] = (node, successors, next_edge + 1)
                child = successors[next_edge]
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, _edges(packages[child], packages), 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _cyclic(component: set[str], packages: Mapping[str, DependentPackage]) -> bool:
    if len(component) > 1:
        return True
    (only,) = component
    return any(dep.package_id == only for dep in packages[only].dependencies)


def dependency_findings(packages: Mapping[str, DependentPackage]) -> list[Finding]:
    """Every missing dependency, unsatisfied version range and dependency cycle.

    Rules: ``dependency-missing``, ``dependency-unsatisfied`` (subject: the
    dependent package) and ``dependency-cycle`` (one finding per group of
    mutually dependent packages, subject: its smallest id, message: one cycle
    path such as ``A -> B -> A``).  Never raises.
    """
    findings: list[Finding] = []
    for package_id in sorted(packages):
        for dependency in packages[package_id].dependencies:
            problem = _problem(package_id, dependency, packages)
            if problem is not None:
                findings.append(problem)
    cycles: list[Finding] = []
    for component in _strong_components(packages):
        if not _cyclic(component, packages):
            continue
        path = _cycle_path(min(component), component, packages)
        message = _cycle_text(path)
        others = sorted(component - set(path))
        if others:
            shown = ", ".join(others[:_SHOWN_CYCLE]) + (
                ", ..." if len(others) > _SHOWN_CYCLE else ""
            )
            message += f" (the cycle group also holds {shown})"
        cycles.append(Finding(path[0], "dependency-cycle", message))
    findings.extend(sorted(cycles))
    return findings


def install_order(target_ids: Sequence[str], packages: Mapping[str, DependentPackage]) -> list[str]:
    """The targets and everything they need, dependencies first (ties broken by id).

    Raises:
        UsageError: a target is not registered, a dependency is missing
            (``PKG-A depends on PKG-X, which is not registered``), a registered
            version does not satisfy a constraint, or the packages form a cycle
            (``dependency cycle: A -> B -> A``).
    """
    closure: set[str] = set()
    pending = sorted(set(target_ids), reverse=True)
    for target in pending:
        if target not in packages:
            raise UsageError(f"unknown package {target}: it is not registered")
    while pending:
        package_id = pending.pop()
        if package_id in closure:
            continue
        closure.add(package_id)
        for dependency in packages[package_id].dependencies:
            problem = _problem(package_id, dependency, packages)
            if problem is not None:
                raise UsageError(problem.message)
            pending.append(dependency.package_id)
    waiting = {package_id: set(_edges(packages[package_id], closure)) for package_id in closure}
    dependants: dict[str, list[str]] = {package_id: [] for package_id in closure}
    for package_id, needs in waiting.items():
        for need in needs:
            dependants[need].append(package_id)
    ready = [package_id for package_id, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        package_id = heapq.heappop(ready)
        order.append(package_id)
        for dependant in dependants[package_id]:
            waiting[dependant].discard(package_id)
            if not waiting[dependant]:
                heapq.heappush(ready, dependant)
    if len(order) < len(closure):
        stuck = {package_id for package_id, needs in waiting.items() if needs}
        path = _cycle_path(min(stuck), stuck, packages)
        raise UsageError(_cycle_text(path))
    return order
