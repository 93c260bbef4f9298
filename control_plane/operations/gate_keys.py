"""``GateOperations`` methods over signing keys and signed archives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from control_plane.auth import Action
from control_plane.errors import ConflictError, UsageError
from control_plane.keystore import PUBLIC_SUFFIX, check_key_name
from control_plane.operations import archive_signing, keys, signatures
from control_plane.operations.archive_signing import SignResult
from control_plane.operations.gate_core import GateCore
from control_plane.operations.keys import (
    KeyChangeResult,
    KeyGenerateResult,
    KeyListResult,
)


class KeysGate(GateCore):
    """keys generate/list/trust/revoke and sign."""

    def keys_generate(
        self,
        kind: str,
        *,
        name: str | None = None,
        passphrase_file: Path | None = None,
        out: Path | None = None,
        trust: bool = False,
    ) -> KeyGenerateResult:
        """Create a key pair (private key 0600, never overwriting); ``trust`` also adds the
        public key to ``keys/trusted/`` (admin, ledgered).

        Without ``trust`` no token is needed: it only writes a new key pair, by default into
        ``keys/private/`` of the root (git-ignored).
        """
        if out is None and not self.layout.config.is_file():
            raise UsageError(
                f"{self.layout.root} is not a control plane root, so it has no keys/private/",
                hint="pass --out DIR, or --root ROOT",
            )
        if not trust:
            return keys.generate(
                self.layout.root,
                kind,
                name=name,
                passphrase_file=passphrase_file,
                out=out,
                env=self.env,
            ).result
        with self._session(Action.TRUST, f"keys/{name or kind}") as session:
            if name is not None:
                target = signatures.key_store(self.layout.root).trusted_dir / (
                    check_key_name(name) + PUBLIC_SUFFIX
                )
                if target.exists() or target.is_symlink():
                    raise ConflictError(
                        f"{self.layout.relative(target)} already exists", hint="choose another --id"
                    )
            made = keys.generate(
                self.layout.root,
                kind,
                name=name,
                passphrase_file=passphrase_file,
                out=out,
                env=self.env,
            )
            change = keys.trust(session, made.public_key, made.result.name)
            return replace(made.result, trusted=change.key.path, warnings=change.warnings)

    def keys_list(self) -> KeyListResult:
        """Every key of ``keys/``: trusted and revoked, with key id, type and name."""
        with self._session(Action.VERIFY, "keys") as session:
            return keys.list_keys(session)

    def keys_trust(self, public_key: Path, *, name: str | None = None) -> KeyChangeResult:
        """Trust a public key (ed25519 or ECDSA P-256 PEM) as ``keys/trusted/NAME.pub``;
        a revoked key is refused (exit 5)."""
        chosen = name if name is not None else public_key.name.removesuffix(PUBLIC_SUFFIX)
        with self._session(Action.TRUST, f"keys/{chosen}") as session:
            public = keys.read_public_key(public_key)
            return keys.trust(session, public, chosen)

    def keys_revoke(self, reference: str) -> KeyChangeResult:
        """Move a trusted key (by key id, a 12+ digit prefix of it, or name) to ``keys/revoked/``."""
        with self._session(Action.TRUST, reference) as session:
            return keys.revoke(session, reference)

    def sign(
        self, package_id: str, key: Path, *, passphrase_file: Path | None = None
    ) -> SignResult:
        """Sign a registered archive: writes ``packages_store/NAME.tar.gz.sig``."""
        with self._session(Action.PACK, package_id) as session:
            signing_key = signatures.load_signing_key(key, passphrase_file, self.env)
            return archive_signing.sign(session, package_id, signing_key)
