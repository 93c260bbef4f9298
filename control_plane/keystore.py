"""The root's key store: which public keys it trusts, and which it has revoked.

```
keys/trusted/NAME.pub   a trusted public key (PEM SubjectPublicKeyInfo), committed
keys/revoked/NAME.pub   a key this root revoked: kept, so a signature by it is named
                        "revoked" rather than "unknown"; never trusted again
keys/private/           where `cpctl keys generate` puts private keys (git-ignored)
```

A key's identity is its key id (``sha256:HEX`` of its DER public key), never
its file name: renaming a file changes nothing, and one key under two names
is an error rather than two votes towards a signature threshold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from control_plane.errors import UsageError
from control_plane.layout import shown_path
from control_plane.signing import KeyType, PublicKey, find_signer, key_id, key_type, load_public_key

KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PUBLIC_SUFFIX = ".pub"
MAX_KEY_FILE_BYTES = 16 * 1024


@dataclass(frozen=True)
class StoredKey:
    """One public key of the store."""

    key_id: str
    name: str
    key_type: KeyType
    public_key: PublicKey
    path: Path
    revoked: bool


def check_key_name(name: str) -> str:
    """Return ``name`` when it is a usable key file name.

    Raises:
        UsageError: empty, too long, or with characters other than letters, digits, ``._-``.
    """
    if not KEY_NAME.fullmatch(name):
        raise UsageError(
            f"invalid key name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _read_dir(directory: Path, *, revoked: bool, root: Path) -> list[StoredKey]:
    if not directory.is_dir():
        return []
    keys = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix != PUBLIC_SUFFIX:
            continue
        where = shown_path(root, path)
        if path.is_symlink() or not path.is_file():
            raise UsageError(f"{where}: a key must be a regular file, not a link or directory")
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise UsageError(f"{where}: too large for a public key")
        public = load_public_key(path.read_bytes(), where)
        keys.append(
            StoredKey(
                key_id=key_id(public),
                name=path.stem,
                key_type=key_type(public),
                public_key=public,
                path=path,
                revoked=revoked,
            )
        )
    return keys


@dataclass(frozen=True)
class KeyStore:
    """The ``keys/`` directory of a root.  Reading it validates every key file."""

    directory: Path

    @property
    def trusted_dir(self) -> Path:
        return self.directory / "trusted"

    @property
    def revoked_dir(self) -> Path:
        return self.directory / "revoked"

    @property
    def private_dir(self) -> Path:
        return self.directory / "private"

    def load(self) -> tuple[StoredKey, ...]:
        """Every key, trusted and revoked, sorted by name.

        Raises:
            UsageError: an unreadable or unsupported key file, or one key stored twice.
        """
        root = self.directory.parent
        keys = _read_dir(self.trusted_dir, revoked=False, root=root)
        keys += _read_dir(self.revoked_dir, revoked=True, root=root)
        seen: dict[str, StoredKey] = {}
        for key in keys:
            other = seen.get(key.key_id)
            if other is not None and other.revoked == key.revoked:
                raise UsageError(
                    f"key {key.key_id} is stored twice ({other.path.name} and {key.path.name}); "
                    "remove one"
                )
            seen[key.key_id] = key
        # A key both trusted and revoked counts as revoked: revocation wins, fail closed.
        revoked = {key.key_id for key in keys if key.revoked}
        return tuple(
            sorted(
                (key for key in keys if key.revoked or key.key_id not in revoked),
                key=lambda key: (key.name, key.revoked),
            )
        )

    def find(self, reference: str) -> StoredKey:
        """A stored key by key id (``sha256:HEX``, or a unique prefix of 12+ hex digits) or name.

        Raises:
            UsageError: no such key, or an ambiguous reference.
        """
        keys = self.load()
        matches = [key for key in keys if reference in (key.key_id, key.name)]
        bare = reference.removeprefix("sha256:")
        if not matches and len(bare) >= 12:
            matches = [key for key in keys if key.key_id.removeprefix("sha256:").startswith(bare)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UsageError(f"no key {reference} in keys/", hint="cpctl keys list")
        raise UsageError(f"key reference {reference} is ambiguous: give the full key id")


def active_keys(keys: Iterable[StoredKey]) -> list[tuple[str, PublicKey]]:
    """(key id, key) of every trusted, unrevoked key."""
    return [(key.key_id, key.public_key) for key in keys if not key.revoked]


def identify_signer(
    keys: Sequence[StoredKey], sha256_digest: bytes, signature: bytes
) -> StoredKey | None:
    """The stored key (trusted or revoked) whose signature this is, else None."""
    kid = find_signer(sha256_digest, signature, ((key.key_id, key.public_key) for key in keys))
    return next((key for key in keys if key.key_id == kid), None)
