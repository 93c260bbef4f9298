"""registry export/sign/verify, revoke and revocations."""

from __future__ import annotations

from pathlib import Path

import click

from control_plane.cli.context import command_runner, json_option, passphrase_option
from control_plane.cli.render import text
from control_plane.errors import UsageError
from control_plane.operations import GateOperations
from control_plane.operations.manifest_trust import (
    ManifestExportResult,
    ManifestSignResult,
    ManifestVerifyResult,
)
from control_plane.operations.revocation_signing import RevocationsSignResult
from control_plane.operations.revoking import RevocationsResult, RevokeResult
from control_plane.registry_manifest import is_key_id
from control_plane.revocations import RevocationKind

PATH = click.Path(path_type=Path)


@click.group()
def registry() -> None:
    """The signed registry manifest: export, sign, verify.

    \b
    Example:
      cpctl registry verify registries/registry.manifest.v1.json
    """


@registry.command()
@click.option(
    "--out", type=PATH, help="Where to write (default registries/registry.manifest.v1.json)."
)
@click.option("--expires-in", type=int, metavar="DAYS", help="Expiry in days (default 30).")
@click.option("--expires", metavar="TIME", help="Absolute expiry, e.g. 2030-01-31T00:00:00Z.")
@click.option("--version", type=int, help="Manifest version (default: the previous one + 1).")
@click.option(
    "--sign",
    "sign_keys",
    multiple=True,
    type=PATH,
    metavar="KEY",
    help="Also sign with this private key (repeatable).",
)
@passphrase_option
@json_option
@command_runner
def export(
    out: Path | None,
    expires_in: int | None,
    expires: str | None,
    version: int | None,
    sign_keys: tuple[Path, ...],
    passphrase_file: Path | None,
    as_json: bool,
) -> object:
    """Write the canonical registry manifest v1 of every package row (admin).

    \b
    Example:
      cpctl registry export --expires-in 30 --sign keys/private/release.key
    """
    return lambda gate: gate.registry_export(
        out,
        expires_in=expires_in,
        expires=expires,
        version=version,
        sign_keys=sign_keys,
        passphrase_file=passphrase_file,
    )


@registry.command()
@click.argument("manifest", type=PATH)
@click.option("--key", required=True, type=PATH, help="Private key (PEM) to sign with.")
@passphrase_option
@json_option
@command_runner
def sign(manifest: Path, key: Path, passphrase_file: Path | None, as_json: bool) -> object:
    """Append a detached signature to MANIFEST.sigs (several signers append).

    \b
    Example:
      cpctl registry sign registries/registry.manifest.v1.json --key keys/private/bob.key
    """
    return lambda gate: gate.registry_sign(manifest, key, passphrase_file=passphrase_file)


@registry.command()
@click.argument("manifest", type=PATH)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    metavar="N",
    help="Demand at least N distinct trusted keys (not below policy.manifest_threshold).",
)
@json_option
@command_runner
def verify(manifest: Path, threshold: int | None, as_json: bool) -> object:
    """Check a manifest offline: threshold of trusted keys, schema, expiry, and its version
    against the last accepted one (rollback, fork); exit 5 on failure, writes nothing.

    \b
    Example:
      cpctl registry verify registries/registry.manifest.v1.json --threshold 2 --json
    """
    return lambda gate: gate.registry_verify(manifest, threshold=threshold)


def _revocation_target(
    package: str | None, digest: str | None, keys: tuple[str, ...], signing_key: Path | None
) -> tuple[RevocationKind, str, Path]:
    """``--key`` is both the key to revoke (a ``sha256:`` key id) and the signing key (a file)."""
    key_ids = [value for value in keys if is_key_id(value.lower())]
    files = [Path(value) for value in keys if not is_key_id(value.lower())]
    if signing_key is not None:
        files.append(signing_key)
    targets = [
        (kind, value)
        for kind, values in (
            (RevocationKind.PACKAGE, [package] if package else []),
            (RevocationKind.DIGEST, [digest] if digest else []),
            (RevocationKind.KEY, key_ids),
        )
        for value in values
    ]
    if len(targets) != 1:
        raise UsageError(
            "give exactly one of --package ID@VERSION, --digest sha256:HEX, --key sha256:KEYID"
        )
    if len(files) != 1:
        raise UsageError("give exactly one signing key: --key FILE (or --signing-key FILE)")
    return targets[0][0], targets[0][1], files[0]


@click.command()
@click.option("--package", metavar="ID@VERSION", help="Revoke one version of a package.")
@click.option("--digest", metavar="sha256:HEX", help="Revoke an archive by digest.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="KEYID|FILE",
    help="sha256:KEYID: the key to revoke; a file: the private key signing the list.",
)
@click.option(
    "--signing-key", type=PATH, help="The private key signing the list (same as --key FILE)."
)
@click.option("--reason", help="Why, one line (kept in the list); required to revoke.")
@click.option(
    "--re-sign",
    "re_sign",
    is_flag=True,
    help="Add nothing: sign the list as it is with --key FILE (before retiring its signer).",
)
@passphrase_option
@json_option
@command_runner
def revoke(
    package: str | None,
    digest: str | None,
    keys: tuple[str, ...],
    signing_key: Path | None,
    reason: str | None,
    re_sign: bool,
    passphrase_file: Path | None,
    as_json: bool,
) -> object:
    """Add a package version, an archive digest or a key to the signed revocation list (admin);
    --re-sign signs the list as it is with another trusted key.

    \b
    Example:
      cpctl revoke --package PKG-A@1.0.0 --reason "CVE-2026-1234" --key keys/private/admin.key
    """

    def operation(gate: GateOperations) -> RevokeResult | RevocationsSignResult:
        if re_sign:
            return gate.resign_revocations(
                _resign_key(package, digest, keys, signing_key, reason),
                passphrase_file=passphrase_file,
            )
        if reason is None:
            raise UsageError("--reason is required: why, one line (kept in the list)")
        kind, value, key = _revocation_target(package, digest, keys, signing_key)
        return gate.revoke(kind, value, reason=reason, key=key, passphrase_file=passphrase_file)

    return operation


def _resign_key(
    package: str | None,
    digest: str | None,
    keys: tuple[str, ...],
    signing_key: Path | None,
    reason: str | None,
) -> Path:
    """The one signing key file of ``--re-sign``, which takes no target and no reason."""
    if package or digest or reason is not None or any(is_key_id(k.lower()) for k in keys):
        raise UsageError(
            "--re-sign takes only the signing key: --key FILE (no target, no --reason)"
        )
    files = [Path(value) for value in keys] + ([signing_key] if signing_key else [])
    if len(files) != 1:
        raise UsageError("--re-sign needs exactly one signing key: --key FILE")
    return files[0]


@click.command()
@json_option
@command_runner
def revocations(as_json: bool) -> object:
    """List the verified revocation list (exit 5 when it is unsigned or tampered).

    \b
    Example:
      cpctl revocations --json
    """
    return lambda gate: gate.revocations()


@text.register
def _(result: ManifestExportResult) -> list[str]:
    lines = [
        f"exported manifest version {result.version} of {result.packages} package(s): {result.path}",
        f"  sha256 {result.sha256}, expires {result.expires}",
    ]
    lines += [f"  signed by {kid}" for kid in result.signers]
    return lines


@text.register
def _(result: ManifestSignResult) -> list[str]:
    return [
        f"signed {result.path} with {result.keyid} ({result.signatures} signature(s) in {result.signatures_path})"
    ]


@text.register
def _(result: ManifestVerifyResult) -> list[str]:
    return [
        f"verified {result.path}: version {result.version}, {result.packages} package(s), "
        f"expires {result.expires}",
        f"  {len(result.signers)} trusted key(s) signed (threshold {result.threshold}): "
        + ", ".join(result.signers),
        f"  last accepted version {result.last_accepted}"
        if result.last_accepted
        else "  no manifest accepted before",
    ]


@text.register
def _(result: RevokeResult) -> list[str]:
    verb = "revoked" if result.changed else "already revoked"
    return [
        f"{verb} {result.kind} {result.value} (list version {result.list_version}, signed by {result.signer})"
    ]


@text.register
def _(result: RevocationsSignResult) -> list[str]:
    if not result.changed:
        return [f"{result.path} already signed by {result.signer}"]
    return [
        f"re-signed {result.path} (version {result.list_version}) with {result.signer}"
        f" (was {result.previous_signer})"
    ]


@text.register
def _(result: RevocationsResult) -> list[str]:
    if not result.entries:
        return ["no revocations"]
    return [
        f"revocation list version {result.list_version}, signed by {result.signer}",
        *(f"  {entry.describe()} (by {entry.revoked_by})" for entry in result.entries),
    ]


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    for command in (registry, revoke, revocations):
        group.add_command(command)
