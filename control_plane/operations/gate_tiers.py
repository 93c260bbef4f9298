"""``GateOperations`` methods for trust tiers: deprecation, and the admin check of overrides."""

from __future__ import annotations

from collections.abc import Sequence

from control_plane.auth import Action
from control_plane.errors import DeniedError
from control_plane.operations import deprecating
from control_plane.operations.deprecating import DeprecateResult
from control_plane.operations.gate_core import GateCore
from control_plane.operations.session import authorise, record_denial


class TiersGate(GateCore):
    """``deprecate`` (admin), and ``_authorise_override`` for the ``--allow-*`` and ``--tier`` flags."""

    def deprecate(
        self, package_id: str, *, replacement: str | None = None, undo: bool = False
    ) -> DeprecateResult:
        """Mark a registered package deprecated (naming its replacement), or undo that."""
        with self._session(Action.DEPRECATE, package_id) as session:
            return deprecating.deprecate(session, package_id, replacement=replacement, undo=undo)

    def _authorise_override(self, target: str, flags: Sequence[str]) -> None:
        """When any of ``flags`` is given, the caller must be allowed ``Action.OVERRIDE``.

        Checked before the command's own session, so a maintainer's refusal is
        exit 3 with the denial ledgered and nothing else written.

        Raises:
            DeniedError: the token's roles do not allow overrides.
        """
        if not flags or not self.layout.config.is_file():
            return  # nothing to check, or not a root: the session says so
        try:
            authorise(self.provider, self.token, Action.OVERRIDE)
        except DeniedError as error:
            shown = ", ".join(flags)
            error.reason = f"{error.reason} ({shown})"
            error.hint = f"{shown} needs the admin role"
            timeout = self.config.limits.lock_timeout_seconds
            record_denial(self.layout, self.ledger, timeout, error, target)
            raise
