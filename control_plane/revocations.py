"""The signed revocation list: packages (id@version), archive digests and signing keys.

``registries/revocations.json`` is canonical JSON with a schema name, a
``version`` that grows by one with every entry, and the entries;
``registries/revocations.json.sig`` is one detached signature over it (the
``cosign sign-blob`` form of ``signing.py``) by a trusted key that the list
itself does not revoke.  An unsigned, tampered or rolled-back list is refused
wherever it is read: revocation fails closed.  Pure: bytes in, typed values out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from control_plane.digests import digests_equal, is_hex64
from control_plane.errors import RejectedContentError, UsageError
from control_plane.jsoncanon import canonical_json, load_closed_document
from control_plane.registry import validate_package_id
from control_plane.registry_manifest import is_key_id
from control_plane.versions import parse_version

SCHEMA = "control-plane.revocations/1"
LIST_NAME = "revocations.json"
SIG_SUFFIX = ".sig"
MAX_LIST_BYTES = 16 * 1024 * 1024
MAX_REASON_CHARS = 500


class RevocationError(RejectedContentError):
    """The revocation list is unsigned, tampered or rolled back, or something is revoked."""


class RevocationKind(StrEnum):
    """What a revocation names."""

    PACKAGE = "package"  # ID@VERSION
    DIGEST = "digest"  # sha256:HEX of an archive
    KEY = "key"  # sha256:HEX key id of a signing key


@dataclass(frozen=True)
class Revocation:
    """One entry: ``value`` is ``ID@VERSION``, ``sha256:HEX`` or a key id."""

    kind: RevocationKind
    value: str
    reason: str
    revoked_at: str
    revoked_by: str

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "value": self.value,
            "reason": self.reason,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
        }

    def describe(self) -> str:
        return f"{self.kind.value} {self.value} revoked at {self.revoked_at}: {self.reason}"


def check_target(kind: RevocationKind, value: str) -> str:
    """The normalised target text for ``kind``.

    Raises:
        UsageError: not ``ID@VERSION``, ``sha256:`` + 64 hex, or a key id.
    """
    if kind is RevocationKind.PACKAGE:
        package_id, at, version = value.partition("@")
        if not at:
            raise UsageError(f"--package {value!r}: expected ID@VERSION, e.g. PKG-A@1.2.0")
        return f"{validate_package_id(package_id)}@{parse_version(version)}"
    prefix, _, hex_part = value.partition(":")
    if prefix != "sha256" or not is_hex64(hex_part.lower()):
        flag = "--digest" if kind is RevocationKind.DIGEST else "--key"
        raise UsageError(f"{flag} {value!r}: expected sha256: and 64 hex digits")
    return f"sha256:{hex_part.lower()}"


def check_reason(reason: str) -> str:
    """``reason`` stripped; it must be one non-empty line.

    Raises:
        UsageError: empty, multi-line or too long.
    """
    text = reason.strip()
    if not text or "\n" in text or "\r" in text or len(text) > MAX_REASON_CHARS:
        raise UsageError(
            f"--reason must be one non-empty line of at most {MAX_REASON_CHARS} characters"
        )
    return text


@dataclass(frozen=True)
class RevocationList:
    """The whole list; ``version`` counts the entries ever appended."""

    version: int = 0
    entries: tuple[Revocation, ...] = ()

    def to_bytes(self) -> bytes:
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "version": self.version,
            "entries": [entry.to_json() for entry in self.entries],
        }
        return canonical_json(document) + b"\n"

    def append(self, entry: Revocation) -> RevocationList:
        return RevocationList(version=self.version + 1, entries=(*self.entries, entry))

    def find(self, kind: RevocationKind, value: str) -> Revocation | None:
        return next(
            (e for e in self.entries if e.kind is kind and digests_equal(e.value, value)), None
        )

    @property
    def revoked_keys(self) -> frozenset[str]:
        return frozenset(e.value for e in self.entries if e.kind is RevocationKind.KEY)

    def matching(
        self, package_id: str, version: str, digest: str, signer: str | None
    ) -> Revocation | None:
        """The first entry revoking this package version, archive digest or signer key."""
        candidates: Iterable[tuple[RevocationKind, str | None]] = (
            (RevocationKind.PACKAGE, f"{package_id}@{version}"),
            (RevocationKind.DIGEST, digest),
            (RevocationKind.KEY, signer),
        )
        for kind, value in candidates:
            if value is not None:
                found = self.find(kind, value)
                if found is not None:
                    return found
        return None


def parse_revocations(data: bytes, where: str) -> RevocationList:
    """Parse the list (canonical form required).

    Raises:
        RevocationError: too large, not JSON, another schema, bad entries, a version that
            does not count the entries, or non-canonical bytes.
    """
    document = load_closed_document(
        data,
        where,
        schema=SCHEMA,
        keys={"schema", "version", "entries"},
        limit=MAX_LIST_BYTES,
        error=RevocationError,
    )
    raw_entries, version = document["entries"], document["version"]
    if (
        not isinstance(raw_entries, list)
        or isinstance(version, bool)
        or version != len(raw_entries)
    ):
        raise RevocationError(f"{where}: version must equal the number of entries")
    entries = []
    keys = {"kind", "value", "reason", "revoked_at", "revoked_by"}
    for index, raw in enumerate(raw_entries):
        if (
            not isinstance(raw, dict)
            or set(raw) != keys
            or not all(isinstance(raw[key], str) for key in keys)
        ):
            raise RevocationError(f"{where}: entry {index} is malformed")
        try:
            kind = RevocationKind(raw["kind"])
            value = check_target(kind, raw["value"])
        except (ValueError, UsageError):
            raise RevocationError(f"{where}: entry {index} has an invalid target") from None
        if kind is RevocationKind.KEY and not is_key_id(value):
            raise RevocationError(f"{where}: entry {index} has an invalid key id")
        entries.append(Revocation(kind, value, raw["reason"], raw["revoked_at"], raw["revoked_by"]))
    parsed = RevocationList(version=version, entries=tuple(entries))
    if parsed.to_bytes() != data:
        raise RevocationError(f"{where}: not in canonical form (it was edited by hand)")
    return parsed
