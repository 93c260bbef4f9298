"""Whether a root may accept a verified registry manifest, given the last one it accepted.

The version checks of TUF's threat model, shared by ``install --manifest`` (which then
records the accepted version) and ``registry verify`` (which only reads): a replayed older
manifest (rollback), an implausible version jump that would lock out later manifests
(fast-forward), and other bytes under the version already accepted (a fork: two different
manifests both signed as version N, or a frozen copy swapped in).  Pure: typed values in,
nothing out or an exception.
"""

from __future__ import annotations

from control_plane.digests import digests_equal
from control_plane.registry_manifest import ManifestError, TrustState


def require_version(version: int, last_accepted: int, max_jump: int, where: str) -> None:
    """Raise on rollback (older than the last accepted) or an implausible fast-forward.

    Raises:
        ManifestError: ``version < last_accepted`` or ``version - last_accepted > max_jump``.
    """
    if version < last_accepted:
        raise ManifestError(
            f"{where}: version {version} is older than the last accepted {last_accepted}; "
            "refusing a rollback"
        )
    if version - last_accepted > max_jump:
        raise ManifestError(
            f"{where}: version {version} jumps more than policy.max_manifest_version_jump "
            f"({max_jump}) past the last accepted {last_accepted}; refusing a fast-forward"
        )


def require_acceptable(
    version: int, sha256: str, state: TrustState, max_jump: int, where: str
) -> None:
    """Raise unless a manifest of ``version`` with bytes hashing to ``sha256`` may follow the
    last accepted one in ``state``: not older, not too far ahead, and, at the same version,
    the very same bytes.

    Raises:
        ManifestError: a rollback, a fast-forward, or a fork of the accepted version.
    """
    require_version(version, state.manifest_version, max_jump, where)
    if (
        version == state.manifest_version
        and state.manifest_sha256 is not None
        and not digests_equal(state.manifest_sha256, sha256)
    ):
        raise ManifestError(
            f"{where}: version {version} was already accepted with other contents; "
            "a new manifest needs a new version"
        )
