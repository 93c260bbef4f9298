"""Refusals that suggest the next command: shared wording for the common cases."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from control_plane.errors import UsageError

# Ids share their "PKG-" prefix, so only a close match is worth suggesting.
_CLOSE_ENOUGH = 0.8


def unknown_package(package_id: str, known: Iterable[str]) -> UsageError:
    """The error for an id with no registry row: the closest registered id, else how to add one."""
    by_folded = {candidate.casefold(): candidate for candidate in sorted(known)}
    close = difflib.get_close_matches(
        package_id.casefold(), list(by_folded), n=1, cutoff=_CLOSE_ENOUGH
    )
    hint = (
        f"did you mean {by_folded[close[0]]}?"
        if close
        else "register it first: cpctl pack --src PATH --id ID, "
        "or cpctl create --archive ARCHIVE --id ID"
    )
    return UsageError(f"unknown package {package_id}: no row in packages_registry.csv", hint=hint)
