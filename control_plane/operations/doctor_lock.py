"""``cpctl doctor`` probe for ``control_plane.lock``: present, readable, and no drift.

Kept apart from ``doctor.py`` (one subject per file); the probe has the same
shape as the others and joins ``doctor.PROBES``.
"""

from __future__ import annotations

from control_plane.lockfile import LOCK_NAME, compute_drift
from control_plane.operations import locking
from control_plane.operations.results import DoctorCheck
from control_plane.operations.session import Session

_SHOWN = 3


def probe_lock(session: Session, _subjects: object) -> DoctorCheck:
    """ok without a lock (it is optional) or with a clean one; fail on drift.

    Raises:
        UsageError: an unreadable or invalid lock (``diagnose`` makes it this probe's failure).
    """
    lock = locking.read_lock(session)
    if lock is None:
        return DoctorCheck(
            "lock", "ok", f"no {LOCK_NAME} (optional; cpctl lock pins the installed state)"
        )
    packages = session.packages()
    drift = compute_drift(lock, locking.observe(session, lock, packages))
    if drift:
        shown = "; ".join(str(item) for item in drift[:_SHOWN])
        more = f"; and {len(drift) - _SHOWN} more" if len(drift) > _SHOWN else ""
        return DoctorCheck(
            "lock",
            "fail",
            f"the root has drifted from {LOCK_NAME}: {shown}{more}",
            "cpctl drift lists every finding; restore what changed (cpctl install --locked for "
            "missing packages), or re-pin an intended change (cpctl hash-update, then cpctl lock)",
        )
    return DoctorCheck("lock", "ok", f"{LOCK_NAME} pins {len(lock.packages)} package(s); no drift")
