"""Admission of the rows an install or update is about to write: tiers, deprecation, downgrades.

``admit`` runs after the install order is known and before anything is staged,
so a refusal leaves the root exactly as it was.  The rules are in
``control_plane.trust_policy``; this module turns its refusals into errors
with exit codes and its notices into the result's warnings.
"""

from __future__ import annotations

from collections.abc import Sequence

from control_plane.errors import ConflictError, ControlPlaneError, RejectedContentError
from control_plane.operations.session import Session
from control_plane.registry import PackageRow
from control_plane.trust_policy import Allowances, Refusal, RefusalKind, judge


def _error(refusal: Refusal, more: int) -> ControlPlaneError:
    suffix = f" (and {more} more refusal{'s' if more != 1 else ''})" if more else ""
    kind = ConflictError if refusal.kind is RefusalKind.DOWNGRADE else RejectedContentError
    return kind(refusal.message + suffix, hint=refusal.hint)


def admit(session: Session, rows: Sequence[PackageRow], allow: Allowances) -> None:
    """Refuse the first row the trust policy forbids; otherwise add every notice to the warnings.

    Tier and deprecation refusals are rejected content (exit 5) and are reported
    before a downgrade (a conflict, exit 4) because no flag of a maintainer lifts them.

    Raises:
        RejectedContentError: an untrusted row, or an experimental or deprecated row
            without its allowance.
        ConflictError: a downgrade without ``allow.downgrade``.
    """
    refusals = [refusal for row in rows for refusal in judge(row, allow).refusals]
    if refusals:
        refusals.sort(key=lambda refusal: refusal.kind is RefusalKind.DOWNGRADE)
        raise _error(refusals[0], len(refusals) - 1)
    for row in rows:
        session.warnings.extend(judge(row, allow).notices)
