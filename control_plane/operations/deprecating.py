"""deprecate: mark a registered package deprecated (naming its replacement), or undo that."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from control_plane.errors import UsageError
from control_plane.operations.results import Result
from control_plane.operations.session import Session
from control_plane.registry import normalise_id, validate_package_id


@dataclass(frozen=True)
class DeprecateResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.deprecate/1"
    id: str
    deprecated: bool
    replacement: str | None
    changed: bool

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deprecated": self.deprecated,
            "replacement": self.replacement,
            "changed": self.changed,
        }


def deprecate(
    session: Session, package_id: str, *, replacement: str | None, undo: bool
) -> DeprecateResult:
    """See ``GateOperations.deprecate``."""
    validate_package_id(package_id)
    if undo and replacement:
        raise UsageError("--undo takes no --replacement (undoing clears it)")
    packages = session.packages()
    row = packages.get(package_id)
    if row is None:
        raise UsageError(f"unknown package {package_id}: no row in packages_registry.csv")
    if replacement:
        validate_package_id(replacement)
        if normalise_id(replacement) == normalise_id(package_id):
            raise UsageError(f"{package_id} cannot replace itself")
        successor = packages.get(replacement)
        if successor is None:
            raise UsageError(
                f"unknown replacement {replacement}: no row in packages_registry.csv",
                hint="register the replacement first (cpctl pack or cpctl create)",
            )
        if successor.deprecated:
            raise UsageError(
                f"replacement {replacement} is itself deprecated",
                hint=f"name what replaces {replacement} instead",
            )
    wanted = replace(row, deprecated=not undo, replacement="" if undo else (replacement or ""))
    if wanted == row:
        return DeprecateResult(
            id=package_id,
            deprecated=row.deprecated,
            replacement=row.replacement or None,
            changed=False,
            warnings=tuple(session.warnings),
        )
    packages[package_id] = wanted
    txn = session.begin()
    try:
        session.stage_registries(txn, packages=packages)
        record = session.record(
            package_id,
            details={
                "deprecated": wanted.deprecated,
                "replacement": wanted.replacement or None,
                "previous": {
                    "deprecated": row.deprecated,
                    "replacement": row.replacement or None,
                },
            },
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return DeprecateResult(
        id=package_id,
        deprecated=wanted.deprecated,
        replacement=wanted.replacement or None,
        changed=True,
        warnings=tuple(session.warnings),
    )
