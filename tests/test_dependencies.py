"""The dependency graph: install order, missing packages, cycles, unsatisfied ranges."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.dependencies import dependency_findings, install_order
from control_plane.errors import UsageError
from control_plane.registry import OutputType, PackageRow, SourceType, parse_dependencies
from control_plane.versions import parse_version


def package(package_id: str, version: str = "1.0.0", depends: str = "") -> PackageRow:
    return PackageRow(
        id=package_id,
        name=package_id.lower(),
        version=parse_version(version),
        source=f"packages_store/{package_id.lower()}.tar.gz",
        source_type=SourceType.TAR,
        digest="sha256:" + "0" * 64,
        output_type=OutputType.EXTENSION,
        output_path="",
        dependencies=parse_dependencies(depends),
    )


def registry(*rows: PackageRow) -> dict[str, PackageRow]:
    return {row.id: row for row in rows}


@pytest.mark.parametrize(
    ("rows", "targets", "expected"),
    [
        ([package("A")], ["A"], ["A"]),
        ([package("A", depends="B"), package("B")], ["A"], ["B", "A"]),
        (
            [package("APP", depends="ZLIB;BASE"), package("ZLIB", depends="BASE"), package("BASE")],
            ["APP"],
            ["BASE", "ZLIB", "APP"],
        ),
        (
            # Diamond: ties among ready packages are broken by id.
            [
                package("TOP", depends="R;L"),
                package("L", depends="D"),
                package("R", depends="D"),
                package("D"),
            ],
            ["TOP"],
            ["D", "L", "R", "TOP"],
        ),
        ([package("A"), package("B"), package("C", depends="B")], ["C", "A"], ["A", "B", "C"]),
        (
            [package("A", depends="B"), package("B"), package("UNRELATED", depends="NOWHERE")],
            ["A"],
            ["B", "A"],
        ),
        ([package("A", depends="B>=1.2,<2"), package("B", "1.9.9")], ["A"], ["B", "A"]),
        ([package("A"), package("A2", depends="A")], ["A2", "A2"], ["A", "A2"]),
    ],
    ids=[
        "single",
        "one-dependency",
        "chain",
        "diamond",
        "several-targets",
        "ignores-unrelated",
        "range-met",
        "repeat",
    ],
)
def test_install_order(rows: list[PackageRow], targets: list[str], expected: list[str]) -> None:
    assert install_order(targets, registry(*rows)) == expected


@pytest.mark.parametrize(
    ("rows", "targets", "message"),
    [
        ([package("A")], ["NOPE"], "unknown package NOPE"),
        (
            [package("PKG-A", depends="PKG-X")],
            ["PKG-A"],
            "PKG-A depends on PKG-X, which is not registered",
        ),
        (
            [package("A", depends="B"), package("B", depends="C")],
            ["A"],
            "B depends on C, which is not registered",
        ),
        (
            [package("A", depends="B>=2"), package("B", "1.5.0")],
            ["A"],
            r"A requires B>=2\.0\.0, but B is registered at version 1\.5\.0",
        ),
        ([package("A", depends="A")], ["A"], "dependency cycle: A -> A"),
        (
            [package("A", depends="B"), package("B", depends="A")],
            ["A"],
            "dependency cycle: A -> B -> A",
        ),
        (
            [
                package("T", depends="C"),
                package("C", depends="D"),
                package("D", depends="E"),
                package("E", depends="C"),
            ],
            ["T"],
            "dependency cycle: C -> D -> E -> C",
        ),
    ],
    ids=[
        "unknown-target",
        "missing",
        "missing-transitive",
        "unsatisfied",
        "self-cycle",
        "two-cycle",
        "cycle-below-target",
    ],
)
def test_install_order_refusals(rows: list[PackageRow], targets: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        install_order(targets, registry(*rows))


def test_findings_clean_registry() -> None:
    assert dependency_findings(registry(package("A", depends="B>=1"), package("B"))) == []


def test_findings_report_every_problem_once() -> None:
    packages = registry(
        package("A", depends="MISSING;B>=3"),
        package("B", "2.0.0", depends="C"),
        package("C", depends="B"),
        package("D", depends="E"),
        package("E", depends="F"),
        package("F", depends="D;GONE"),
        package("SELF", depends="SELF"),
    )
    found = [
        (finding.subject, finding.rule, finding.message)
        for finding in dependency_findings(packages)
    ]
    assert found == [
        ("A", "dependency-missing", "A depends on MISSING, which is not registered"),
        (
            "A",
            "dependency-unsatisfied",
            "A requires B>=3.0.0, but B is registered at version 2.0.0",
        ),
        ("F", "dependency-missing", "F depends on GONE, which is not registered"),
        ("B", "dependency-cycle", "dependency cycle: B -> C -> B"),
        ("D", "dependency-cycle", "dependency cycle: D -> E -> F -> D"),
        ("SELF", "dependency-cycle", "dependency cycle: SELF -> SELF"),
    ]


def test_cycle_group_with_several_cycles_is_one_finding() -> None:
    packages = registry(
        package("A", depends="B;C"), package("B", depends="A"), package("C", depends="A")
    )
    findings = dependency_findings(packages)
    assert [finding.rule for finding in findings] == ["dependency-cycle"]
    assert findings[0].message == "dependency cycle: A -> B -> A (the cycle group also holds C)"


def test_long_chain_does_not_exhaust_the_stack() -> None:
    size = 5000
    rows = [package(f"P{index}", depends=f"P{index + 1}") for index in range(size)] + [
        package(f"P{size}")
    ]
    packages = registry(*rows)
    assert install_order(["P0"], packages)[:2] == [f"P{size}", f"P{size - 1}"]
    assert dependency_findings(packages) == []
    looped = {**packages, f"P{size}": package(f"P{size}", depends="P0")}
    assert [finding.rule for finding in dependency_findings(looped)] == ["dependency-cycle"]
    with pytest.raises(
        UsageError, match=r"dependency cycle: P0 -> P1 -> .* -> \.\.\. 4991 more -> P0$"
    ):
        install_order(["P0"], looped)


def _has_cycle(edges: dict[str, set[str]]) -> bool:
    """Reference check: some node reaches itself."""
    for start, needs in edges.items():
        seen: set[str] = set()
        frontier = set(needs)
        while frontier:
            node = frontier.pop()
            if node == start:
                return True
            if node not in seen:
                seen.add(node)
                frontier |= edges[node]
    return False


_NAMES = ["A", "B", "C", "D", "E", "F"]
graphs = st.fixed_dictionaries(
    {name: st.sets(st.sampled_from(_NAMES), max_size=3) for name in _NAMES}
)


@given(graphs)
def test_order_and_cycles_match_reference(edges: dict[str, set[str]]) -> None:
    packages = registry(
        *(package(name, depends=";".join(sorted(deps))) for name, deps in edges.items())
    )
    cyclic = _has_cycle(edges)
    findings = dependency_findings(packages)
    assert bool(findings) == cyclic
    assert {finding.rule for finding in findings} <= {"dependency-cycle"}
    if cyclic:
        with pytest.raises(UsageError, match="dependency cycle"):
            install_order(_NAMES, packages)
        return
    order = install_order(_NAMES, packages)
    assert sorted(order) == _NAMES
    position = {name: index for index, name in enumerate(order)}
    for name, deps in edges.items():
        assert all(position[dep] < position[name] for dep in deps)
    # Among every valid order, ties are broken by id: no adjacent swap is both legal and smaller.
    for left, right in itertools.pairwise(order):
        if left not in edges[right] and right < left:
            pytest.fail(f"{right} could have come before {left}")
