"""``GateOperations`` methods for the lockfile: lock, drift, install --locked."""

from __future__ import annotations

from control_plane.auth import Action
from control_plane.lockfile import LOCK_NAME
from control_plane.operations import locked_install, locking
from control_plane.operations.gate_core import GateCore
from control_plane.operations.locking import DriftResult, LockResult
from control_plane.operations.results import ChangeResult


class LockGate(GateCore):
    """``control_plane.lock``: pin the installed state, report drift, install the pins."""

    def lock(self) -> LockResult:
        """Write ``control_plane.lock`` from the installed state (ledgered; a no-op when unchanged).

        Refuses (exit 4) when the installed state does not match its own records
        (modified files, a registry row or archive that moved on).
        """
        with self._session(Action.UPDATE, LOCK_NAME) as session:
            return locking.write_lock(session)

    def drift(self, *, require_lock: bool = False) -> DriftResult:
        """Every difference between the root and ``control_plane.lock`` (read-only).

        Without a lock the result is clean with a note, or not ok when ``require_lock``.
        """
        with self._session(Action.VERIFY, LOCK_NAME) as session:
            return locking.drift_report(session, require_lock=require_lock)

    def install_locked(self, *, force: bool = False, dry_run: bool = False) -> ChangeResult:
        """Install exactly the packages ``control_plane.lock`` pins and nothing else.

        A pin the registry or store no longer offers is exit 4 even with ``force``;
        other drift is exit 4 unless ``force``.  Already matching: a no-op.
        """
        with self._session(Action.INSTALL, LOCK_NAME) as session:
            return locked_install.install_locked(session, force=force, dry_run=dry_run)
