"""keys generate/list/trust/revoke, and sign."""

from __future__ import annotations

from pathlib import Path

import click

from control_plane.cli.context import command_runner, json_option, passphrase_option
from control_plane.cli.render import text
from control_plane.operations.archive_signing import SignResult
from control_plane.operations.keys import (
    KeyChangeResult,
    KeyGenerateResult,
    KeyListResult,
)
from control_plane.signing import KEY_TYPES


@click.group()
def keys() -> None:
    """Signing keys: generate a pair, list, trust and revoke public keys (keys/trusted/).

    \b
    Example:
      cpctl keys list
    """


@keys.command()
@click.option("--type", "kind", required=True, type=click.Choice(KEY_TYPES), help="Key algorithm.")
@click.option("--id", "name", help="Key name: NAME.key and NAME.pub (default: TYPE-KEYID12).")
@passphrase_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for the pair (default: keys/private/ in the root, git-ignored).",
)
@click.option("--trust", is_flag=True, help="Also trust the public key (admin; ledgered).")
@json_option
@command_runner
def generate(
    kind: str,
    name: str | None,
    passphrase_file: Path | None,
    out: Path | None,
    trust: bool,
    as_json: bool,
) -> object:
    """Create a key pair: NAME.key (PEM, 0600, never overwritten) and NAME.pub; print its key id.

    \b
    Example:
      cpctl keys generate --type ed25519 --id release --passphrase-file pass.txt --trust
    """
    return lambda gate: gate.keys_generate(
        kind, name=name, passphrase_file=passphrase_file, out=out, trust=trust
    )


@keys.command(name="list")
@json_option
@command_runner
def list_(as_json: bool) -> object:
    """List trusted and revoked keys with key id, type, name and status.

    \b
    Example:
      cpctl keys list --json
    """
    return lambda gate: gate.keys_list()


@keys.command(name="trust")
@click.argument("public_key", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", help="Name in keys/trusted/ (default: FILE without .pub).")
@json_option
@command_runner
def trust_(public_key: Path, name: str | None, as_json: bool) -> object:
    """Trust a public key (PEM, ed25519 or ECDSA P-256, e.g. cosign.pub) to verify signatures (admin).

    \b
    Example:
      cpctl keys trust cosign.pub --name ci-release
    """
    return lambda gate: gate.keys_trust(public_key, name=name)


@keys.command()
@click.argument("reference", metavar="ID")
@json_option
@command_runner
def revoke(reference: str, as_json: bool) -> object:
    """Revoke a key (by key id, a 12+ hex digit prefix, or name): signatures by it are refused (admin).

    \b
    Example:
      cpctl keys revoke sha256:3f1c...
    """
    return lambda gate: gate.keys_revoke(reference)


@click.command()
@click.option("--id", "package_id", required=True, help="A registered package.")
@click.option(
    "--key",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="KEYFILE",
    help="PEM private key (ed25519 or ECDSA P-256).",
)
@passphrase_option
@json_option
@command_runner
def sign(package_id: str, key: Path, passphrase_file: Path | None, as_json: bool) -> object:
    """Sign a registered archive: write packages_store/NAME.tar.gz.sig.

    \b
    Example:
      cpctl sign --id PKG-FMWK-100 --key keys/private/release.key
    """
    return lambda gate: gate.sign(package_id, key, passphrase_file=passphrase_file)


@text.register
def _(result: KeyGenerateResult) -> list[str]:
    lines = [
        result.key_id,
        f"  {result.type} private key {result.private_key} (mode 0600"
        + (", encrypted)" if result.encrypted else ", not encrypted)"),
        f"  public key {result.public_key}",
    ]
    if result.trusted:
        lines.append(f"  trusted as {result.trusted}")
    return lines


@text.register
def _(result: KeyListResult) -> list[str]:
    if not result.keys:
        return ["(no keys: cpctl keys generate --type ed25519 --trust, or cpctl keys trust FILE)"]
    return [f"{key.status:<8} {key.type:<10} {key.key_id} {key.name}" for key in result.keys]


@text.register
def _(result: KeyChangeResult) -> list[str]:
    verb = {"trust": "trusted", "revoke": "revoked"}[result.action]
    state = verb if result.changed else f"already {verb}"
    return [f"{state} {result.key.key_id} ({result.key.type}) as {result.key.path}"]


@text.register
def _(result: SignResult) -> list[str]:
    return [f"signed {result.id}: {result.signature}", f"  signer {result.signer}"]


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(keys)
    group.add_command(sign)
