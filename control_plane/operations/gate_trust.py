"""``GateOperations`` methods for the signed registry manifest and the revocation list."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from control_plane.auth import Action
from control_plane.operations import manifest_trust, revocation_signing, revoking
from control_plane.operations.gate_core import GateCore
from control_plane.revocations import RevocationKind


class TrustGate(GateCore):
    """registry export/sign/verify, revoke and revocations."""

    def registry_export(
        self,
        out: Path | None = None,
        *,
        expires_in: int | None = None,
        expires: str | None = None,
        version: int | None = None,
        sign_keys: Sequence[Path] = (),
        passphrase_file: Path | None = None,
    ) -> manifest_trust.ManifestExportResult:
        """Write the canonical registry manifest (default ``registries/registry.manifest.v1.json``),
        signed by each of ``sign_keys``; the version defaults to the previous one + 1 (admin)."""
        with self._session(Action.TRUST, "registry-manifest") as session:
            return manifest_trust.export(
                session,
                out,
                expires_in=expires_in,
                expires=expires,
                version=version,
                sign_keys=sign_keys,
                passphrase_file=passphrase_file,
                env=self.env,
            )

    def registry_sign(
        self, manifest: Path, key: Path, *, passphrase_file: Path | None = None
    ) -> manifest_trust.ManifestSignResult:
        """Append a detached signature by ``key`` to ``MANIFEST.sigs`` (offline: the private
        key is the authority; nothing in the root changes)."""
        return manifest_trust.sign(self.layout, manifest, key, passphrase_file, self.env)

    def registry_verify(
        self, manifest: Path, *, threshold: int | None = None
    ) -> manifest_trust.ManifestVerifyResult:
        """Check a manifest offline: a threshold of distinct trusted, unrevoked keys signed
        these exact bytes (``threshold`` may raise ``policy.manifest_threshold``, never lower
        it: ``UsageError``), the schema, the expiry, and its version against the last one this
        root accepted (rollback, fast-forward, other bytes under that version).  Reads the
        trust state without a session and writes nothing.  Raises ``ManifestError`` (exit 5)."""
        return manifest_trust.verify(self.layout, self.config, manifest, threshold)

    def resign_revocations(
        self, key: Path, *, passphrase_file: Path | None = None
    ) -> revocation_signing.RevocationsSignResult:
        """Sign the revocation list as it is (same entries and version) with another trusted
        key, e.g. before retiring the key that signed it (admin).  Only a list that verifies
        now is re-signed."""
        with self._session(Action.TRUST, "revocations") as session:
            return revocation_signing.resign(session, key, passphrase_file, self.env)

    def revoke(
        self,
        kind: RevocationKind,
        value: str,
        *,
        reason: str,
        key: Path,
        passphrase_file: Path | None = None,
    ) -> revoking.RevokeResult:
        """Append a revocation (``ID@VERSION``, ``sha256:HEX`` digest or key id) to the signed
        revocation list, re-signing it with ``key`` (admin)."""
        with self._session(Action.TRUST, f"{kind.value}:{value}") as session:
            return revoking.revoke(
                session,
                kind,
                value,
                reason,
                key_path=key,
                passphrase_file=passphrase_file,
                env=self.env,
            )

    def revocations(self) -> revoking.RevocationsResult:
        """The verified revocation list."""
        with self._session(Action.VERIFY, "revocations") as session:
            return revoking.show(session)
