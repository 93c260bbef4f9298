"""One exception root, five families, each carrying its process exit code.

Every refusal the product makes is a ``ControlPlaneError``; the command line
catches the root once and prints ``str(error)`` as one line.  Anything else
escaping to the top is a bug.  Messages never contain tokens or secrets.
"""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Root of every expected failure; ``exit_code`` is the process exit code."""

    exit_code: int = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class CheckFailedError(ControlPlaneError):
    """A check ran and found problems (integrity, validation, ledger): exit 1."""

    exit_code = 1


class UsageError(ControlPlaneError):
    """Bad flag, bad config, unreadable or malformed input file: exit 2."""

    exit_code = 2


class DeniedError(ControlPlaneError):
    """Missing or invalid credentials, or the role lacks the action: exit 3."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        actor: str | None = None,
        action: str | None = None,
        reason: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.actor = actor
        self.action = action
        self.reason = reason if reason is not None else message


class ConflictError(ControlPlaneError):
    """Would overwrite, drift, already installed, lock timeout: exit 4."""

    exit_code = 4


class LockTimeoutError(ConflictError):
    """Another command holds the root lock for longer than the timeout."""


class RejectedContentError(ControlPlaneError):
    """Digest or signature mismatch, unsafe archive, policy refusal: exit 5."""

    exit_code = 5


class UnsafeArchiveError(RejectedContentError):
    """An archive member (or the archive as a whole) breaks a safety rule."""


class DigestMismatchError(RejectedContentError):
    """Bytes on disk do not hash to the digest a registry or sidecar records."""
