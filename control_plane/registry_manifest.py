"""The signed registry manifest v1 (TUF-like): its bytes, its signatures, its checks.

``registry.manifest.v1.json`` is canonical JSON (sorted keys, no whitespace,
UTF-8, one trailing newline) naming, for each package id, the version,
archive name, sha256, tier, dependencies and signer key id; plus a schema
name, a monotonically increasing ``version`` and an ``expires`` time.
``MANIFEST.sigs`` beside it is a JSON list of ``{"keyid", "sig"}``: one
detached signature (``signing.sign_digest`` over the manifest's SHA-256) per
signer, so several signers can append to it.

What the checks resist (after TUF): an edit after signing and a replaced
signature file (signatures over the exact bytes), forged quorum (a threshold
of *distinct trusted keys*, where the key comes from the verifier's trust
store, never from the ``keyid`` field, and ECDSA's malleable signature bytes
count once per key), a frozen manifest (``expires``), a replayed older
manifest (rollback), an implausible version jump that would lock out later
manifests (fast-forward) and mix-and-match (archive sha256 against the entry);
the version checks (and a forked version) live in ``manifest_acceptance``.  Pure:
bytes and typed values in, typed values out or an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from control_plane.digests import digests_equal, is_hex64
from control_plane.errors import RejectedContentError, UsageError
from control_plane.jsoncanon import canonical_json, load_closed_document, strict_loads
from control_plane.signing import PublicKey, find_signer

SCHEMA = "control-plane.registry-manifest/1"
STATE_SCHEMA = "control-plane.trust-state/1"
MANIFEST_NAME = "registry.manifest.v1.json"
SIGS_SUFFIX = ".sigs"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_SIGS_BYTES = 256 * 1024
MAX_SIGNATURES = 64
_KEY_ID = re.compile(r"sha256:[0-9a-f]{64}")
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_PACKAGE_KEYS = frozenset({"archive", "dependencies", "sha256", "signer", "tier", "version"})
_TOP_KEYS = frozenset({"expires", "packages", "schema", "version"})


class ManifestError(RejectedContentError):
    """A registry manifest (or its signatures) is refused: exit 5."""


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with second precision, ``Z`` suffix."""
    return moment.astimezone(UTC).strftime(_TIME)


def parse_time(text: str, where: str) -> datetime:
    """Parse exactly ``YYYY-MM-DDTHH:MM:SSZ``.

    Raises:
        UsageError: any other form.
    """
    try:
        return datetime.strptime(text, _TIME).replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(
            f"{where}: {text!r} is not an RFC 3339 UTC time like 2030-01-31T00:00:00Z"
        ) from None


def is_key_id(text: str) -> bool:
    """True for ``sha256:`` and 64 lower-case hex digits."""
    return _KEY_ID.fullmatch(text) is not None


@dataclass(frozen=True)
class ManifestPackage:
    """One package entry; ``sha256`` is bare hex, ``signer`` a key id or None."""

    id: str
    version: str
    archive: str
    sha256: str
    tier: str
    dependencies: tuple[str, ...]
    signer: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "archive": self.archive,
            "sha256": self.sha256,
            "tier": self.tier,
            "dependencies": list(self.dependencies),
            "signer": self.signer,
        }


@dataclass(frozen=True)
class RegistryManifest:
    """A parsed manifest; ``packages`` maps id to entry."""

    version: int
    expires: datetime
    packages: Mapping[str, ManifestPackage]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": self.version,
            "expires": format_time(self.expires),
            "packages": {pid: entry.to_json() for pid, entry in sorted(self.packages.items())},
        }

    def to_bytes(self) -> bytes:
        """The one canonical encoding: what is hashed and signed."""
        return canonical_json(self.to_json()) + b"\n"

    def entry(self, package_id: str, where: str) -> ManifestPackage:
        """The entry of ``package_id``.

        Raises:
            ManifestError: the manifest does not list it.
        """
        found = self.packages.get(package_id)
        if found is None:
            raise ManifestError(f"{where} (version {self.version}) does not list {package_id}")
        return found


def _field(document: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ManifestError(f"{where}: {key!r} must be a {kind.__name__}")
    return value


def _package(package_id: str, raw: Any, where: str) -> ManifestPackage:
    here = f"{where}: package {package_id}"
    if not isinstance(raw, dict) or set(raw) != _PACKAGE_KEYS:
        raise ManifestError(f"{here} must have exactly the keys {', '.join(sorted(_PACKAGE_KEYS))}")
    dependencies = _field(raw, "dependencies", list, here)
    if not all(isinstance(item, str) for item in dependencies):
        raise ManifestError(f"{here}: dependencies must be strings")
    sha256 = _field(raw, "sha256", str, here)
    if not is_hex64(sha256):
        raise ManifestError(f"{here}: sha256 must be 64 lower-case hex digits")
    signer = raw["signer"]
    if signer is not None and not (isinstance(signer, str) and is_key_id(signer)):
        raise ManifestError(f"{here}: signer must be null or a sha256:HEX key id")
    return ManifestPackage(
        id=package_id,
        version=_field(raw, "version", str, here),
        archive=_field(raw, "archive", str, here),
        sha256=sha256,
        tier=_field(raw, "tier", str, here),
        dependencies=tuple(dependencies),
        signer=signer,
    )


def parse_manifest(data: bytes, where: str) -> RegistryManifest:
    """Parse and check a manifest's schema; it must be in its canonical form.

    Raises:
        ManifestError: too large, not JSON, another schema, a missing or extra key,
            a wrong type, or bytes that are not the canonical encoding.
    """
    document = load_closed_document(
        data, where, schema=SCHEMA, keys=_TOP_KEYS, limit=MAX_MANIFEST_BYTES, error=ManifestError
    )
    version = _field(document, "version", int, where)
    if version < 1:
        raise ManifestError(f"{where}: version must be at least 1")
    try:
        expires = parse_time(_field(document, "expires", str, where), f"{where}: expires")
    except UsageError as exc:
        raise ManifestError(str(exc)) from None
    packages = _field(document, "packages", dict, where)
    manifest = RegistryManifest(
        version=version,
        expires=expires,
        packages={pid: _package(pid, raw, where) for pid, raw in packages.items()},
    )
    if manifest.to_bytes() != data:
        raise ManifestError(f"{where}: not in canonical form (re-export it; never hand-edit)")
    return manifest


# -- signatures ----------------------------------------------------------------------


@dataclass(frozen=True)
class DetachedSignature:
    """One entry of ``MANIFEST.sigs``: the claimed key id (a hint only) and the raw signature."""

    keyid: str
    sig: bytes

    def to_json(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": base64.b64encode(self.sig).decode("ascii")}


def parse_signatures(data: bytes, where: str) -> tuple[DetachedSignature, ...]:
    """Parse a ``.sigs`` file.

    Raises:
        ManifestError: too large, not a JSON list of ``{keyid, sig}``, or a bad field.
    """
    if len(data) > MAX_SIGS_BYTES:
        raise ManifestError(f"{where}: larger than {MAX_SIGS_BYTES} bytes")
    try:
        document = strict_loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where}: not a JSON document ({exc})") from None
    if not isinstance(document, list) or len(document) > MAX_SIGNATURES:
        raise ManifestError(f"{where}: must be a JSON list of at most {MAX_SIGNATURES} signatures")
    signatures = []
    for index, item in enumerate(document):
        if not isinstance(item, dict) or set(item) != {"keyid", "sig"}:
            raise ManifestError(f"{where}[{index}]: must be an object with keyid and sig")
        keyid, text = item["keyid"], item["sig"]
        if not (isinstance(keyid, str) and is_key_id(keyid)) or not isinstance(text, str):
            raise ManifestError(f"{where}[{index}]: keyid must be sha256:HEX and sig base64")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ManifestError(f"{where}[{index}]: sig is not base64") from None
        if not raw:
            raise ManifestError(f"{where}[{index}]: empty signature")
        signatures.append(DetachedSignature(keyid, raw))
    return tuple(signatures)


def dump_signatures(signatures: Iterable[DetachedSignature]) -> bytes:
    """The ``.sigs`` file's bytes (canonical JSON list, newline)."""
    return canonical_json([item.to_json() for item in signatures]) + b"\n"


def add_signature(
    existing: Sequence[DetachedSignature], new: DetachedSignature
) -> tuple[DetachedSignature, ...]:
    """``existing`` with ``new`` appended; a signer signing again replaces its entry."""
    return (*(item for item in existing if item.keyid != new.keyid), new)


def trusted_signers(
    data: bytes, signatures: Sequence[DetachedSignature], keys: Sequence[tuple[str, PublicKey]]
) -> tuple[str, ...]:
    """The distinct key ids among ``keys`` that signed ``data``, sorted.

    Each signature is tried against every key (the ``keyid`` field is never
    believed), and the result is a set of keys: two signatures by one key,
    including a malleated ECDSA signature, count once.
    """
    digest = hashlib.sha256(data).digest()
    found = set()
    for item in signatures:
        kid = find_signer(digest, item.sig, keys)
        if kid is not None:
            found.add(kid)
    return tuple(sorted(found))


def require_threshold(
    signers: Sequence[str], threshold: int, where: str, source: str = "policy.manifest_threshold"
) -> None:
    """Raise unless at least ``threshold`` (set by ``source``) distinct trusted keys signed.

    Raises:
        ManifestError: too few.
    """
    if len(set(signers)) < threshold:
        raise ManifestError(
            f"{where}: signed by {len(set(signers))} distinct trusted key(s); "
            f"{source} requires {threshold}"
        )


def require_fresh(manifest: RegistryManifest, now: datetime, where: str) -> None:
    """Raise when the manifest has expired (a frozen manifest).

    Raises:
        ManifestError: ``now`` is at or after ``expires``.
    """
    if now >= manifest.expires:
        raise ManifestError(
            f"{where}: expired at {format_time(manifest.expires)}; refusing a frozen manifest",
        )


def require_entry_matches(entry: ManifestPackage, *, version: str, sha256: str, where: str) -> None:
    """Raise unless the entry names exactly this archive sha256 and version (mix-and-match).

    Raises:
        ManifestError: another sha256 or another version.
    """
    if not digests_equal(entry.sha256, sha256):
        raise ManifestError(
            f"{where}: {entry.id} archive sha256 {sha256[:12]}... is not the manifest's "
            f"{entry.sha256[:12]}...; refusing a mix-and-match install"
        )
    if entry.version != version:
        raise ManifestError(
            f"{where}: {entry.id} is registered at {version} but the manifest lists {entry.version}"
        )


# -- accepted state -------------------------------------------------------------------


@dataclass(frozen=True)
class TrustState:
    """``registries/trust_state.json``: the newest manifest accepted and exported, and the
    revocation list version last written (so neither can be rolled back silently)."""

    manifest_version: int = 0
    manifest_sha256: str | None = None
    exported_version: int = 0
    revocations_version: int = 0

    def to_bytes(self) -> bytes:
        return (
            canonical_json(
                {
                    "schema": STATE_SCHEMA,
                    "manifest_version": self.manifest_version,
                    "manifest_sha256": self.manifest_sha256,
                    "exported_version": self.exported_version,
                    "revocations_version": self.revocations_version,
                }
            )
            + b"\n"
        )

    def accepting(self, version: int, sha256: str) -> TrustState:
        return replace(self, manifest_version=version, manifest_sha256=sha256)


def parse_state(data: bytes, where: str) -> TrustState:
    """Parse ``trust_state.json``.

    Raises:
        UsageError: malformed (exit 2: the root's own file is broken, fix or restore it).
    """
    try:
        document = strict_loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: not a JSON document ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != STATE_SCHEMA:
        raise UsageError(f"{where}: not a {STATE_SCHEMA} document")
    numbers = {}
    for key in ("manifest_version", "exported_version", "revocations_version"):
        value = document.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"{where}: {key} must be a non-negative integer")
        numbers[key] = value
    sha = document.get("manifest_sha256")
    if sha is not None and not (isinstance(sha, str) and is_hex64(sha)):
        raise UsageError(f"{where}: manifest_sha256 must be null or 64 hex digits")
    return TrustState(manifest_sha256=sha, **numbers)


@dataclass(frozen=True)
class PinnedManifest:
    """A manifest verified for one install: every package installed must match its entry."""

    where: str
    manifest: RegistryManifest
    sha256: str
    signers: tuple[str, ...]

    def require_package(self, package_id: str, version: str, sha256: str) -> None:
        """Raise unless the manifest lists ``package_id`` at ``version`` with ``sha256``.

        Raises:
            ManifestError: not listed, or another version or sha256.
        """
        entry = self.manifest.entry(package_id, self.where)
        require_entry_matches(entry, version=version, sha256=sha256, where=self.where)
