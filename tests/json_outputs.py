"""Run every cpctl command with --json on a real root and keep what each one printed.

Shared by tests/test_schemas.py (validates each output against its schema) and
tests/test_json_contract.py (compares each output's keys with the pins).  A new
command with --json adds a step here, so its real output is checked too.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from control_plane import signing
from control_plane.cli.main import cli

SECRET = "a shared secret long enough for the hmac provider"
MANIFEST = "registries/registry.manifest.v1.json"

# Files the workflow leaves in the root, with their schema.
FILES = {
    "MANIFEST.json": "control-plane.manifest/1",
    "registries/compiled/registry.json": "control-plane.compiled/2",
    "registries/registry.manifest.v1.json": "control-plane.registry-manifest/1",
    "registries/registry.manifest.v1.json.sigs": "control-plane.registry-signatures/1",
    "registries/revocations.json": "control-plane.revocations/1",
    "registries/trust_state.json": "control-plane.trust-state/1",
    "plugins/demo/plugin.spec.json": "control-plane.plugin-spec/1",
    "plugins.json": "control-plane.plugins/1",
}
LINES = {
    "ledger/ledger.jsonl": "control-plane.ledger-entry/1",
    ".ledger/ids.jsonl": "control-plane.ledger-entry/1",
    "ledger/checkpoints.jsonl": "control-plane.checkpoint/1",
}
# TOML and YAML files, checked as the documents they parse to (by glob: cards are ULID-named).
PARSED = {
    "control_plane.lock": "control-plane.lock/1",
    "ids/registry.yaml": "control-plane.id-registry/1",
    "ids/cards/*.yaml": "control-plane.id-card/1",
}
ROWS = {
    "registries/packages_registry.csv": "control-plane.package-row/2",
    "registries/control_plane_registry.csv": "control-plane.file-row/1",
}


@dataclass
class Exercised:
    """A root after the workflow, and each command's JSON output by a readable label."""

    root: Path
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # saved documents (proofs, checkpoint)


class Runner:
    """``cpctl --root ROOT ARGS --json`` in-process, with the caller's CONTROL_PLANE_* unset."""

    def __init__(self, state: Exercised) -> None:
        self.state = state
        self.clean = {name: None for name in os.environ if name.startswith("CONTROL_PLANE_")}

    def __call__(
        self, label: str, *args: str, exit_code: int = 0, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        runner = CliRunner()
        argv = ["--root", str(self.state.root), *args, "--json"]
        previous = Path.cwd()
        os.chdir(self.state.root if self.state.root.is_dir() else self.state.root.parent)
        try:
            result = runner.invoke(
                cli, argv, env={**self.clean, **(env or {})}, catch_exceptions=False
            )
        finally:
            os.chdir(previous)
        assert result.exit_code == exit_code, (label, result.exit_code, result.stderr)
        document: dict[str, Any] = json.loads(result.stdout)
        self.state.outputs[label] = document
        return document


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _vendor_archive(path: Path) -> None:
    """An archive someone dropped into the store (for ``cpctl create``)."""
    data = b"vendor tool\n"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("vendor/tool.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def _key(base: Path, root: Path, name: str, kind: signing.KeyType) -> Path:
    """A private key outside the root, its public half trusted by the root."""
    key = signing.generate_key(kind)
    private = base / "private" / f"{name}.key"
    private.parent.mkdir(parents=True, exist_ok=True)
    private.write_bytes(signing.private_pem(key))
    trusted = root / "keys" / "trusted" / f"{name}.pub"
    trusted.parent.mkdir(parents=True, exist_ok=True)
    trusted.write_bytes(signing.public_pem(key))
    return private


def _trust(state: Exercised, run: Runner, base: Path) -> None:
    """The signed registry manifest and the revocation list."""
    alpha = _key(base, state.root, "alpha", "ed25519")
    beta = _key(base, state.root, "beta", "ecdsa-p256")
    run("registry-export", "registry", "export", "--sign", str(alpha))
    run("registry-sign", "registry", "sign", MANIFEST, "--key", str(beta))
    run("registry-verify", "registry", "verify", MANIFEST)
    run("install-manifest", "install", "--manifest", MANIFEST, "--id", "PKG-DOCS")
    run("revocations-empty", "revocations")
    run("revoke", "revoke", "--package", "PKG-VENDOR-TOOL@2.1.0", "--reason",
        "withdrawn by the vendor", "--key", str(alpha))  # fmt: skip
    run("revoke-again", "revoke", "--package", "PKG-VENDOR-TOOL@2.1.0", "--reason",
        "withdrawn by the vendor", "--key", str(alpha))  # fmt: skip
    run("revocations", "revocations")
    run("revocations-re-sign", "revoke", "--re-sign", "--key", str(beta))
    keys_dir = base / "generated-keys"
    run("keys-generate", "keys", "generate", "--type", "ed25519", "--id", "gamma", "--out",
        str(keys_dir), "--trust")  # fmt: skip
    run("keys-generate-p256", "keys", "generate", "--type", "ecdsa-p256", "--id", "delta",
        "--out", str(keys_dir))  # fmt: skip
    run("keys-trust", "keys", "trust", str(keys_dir / "delta.pub"))
    run("keys-list", "keys", "list")
    run("keys-revoke", "keys", "revoke", "delta")
    run("sign", "sign", "--id", "PKG-BASE", "--key", str(keys_dir / "gamma.key"))
    run("deprecate", "deprecate", "--id", "PKG-VENDOR-TOOL", "--replacement", "PKG-DOCS")
    run("lock", "lock")
    run("drift", "drift")
    run("ids-mint", "ids", "mint", "--kind", "document", "--path", "docs/guide.md")
    run("ids-validate", "ids", "validate")
    run("ids-build-registry", "ids", "build-registry")
    run("ids-build-registry-check", "ids", "build-registry", "--check")
    run("plugin-new", "plugin", "new", "demo", "--op", "mint")
    run("plugin-build", "plugin", "build", "demo")
    run("plugin-validate", "plugin", "validate", "demo")
    run("error-rejected", "registry", "verify", "registries/revocations.json", exit_code=5)


def _components(root: Path, run: Runner) -> None:
    """The component manifest: export, unchanged, lint clean, drift, re-export."""
    _write(root / "plugins" / "reading.py",
           '@component(type="tool", name="csv_reader", version="1.0.0", input="in.json",\n'
           '           tags=["csv"], deprecated={"since": "1.0.0", "replacement": None})\n'
           "class CsvReader:\n    pass\n")  # fmt: skip
    run("plugins-export", "plugins", "export")
    run("plugins-export-unchanged", "plugins", "export")
    run("plugins-lint", "plugins", "lint")
    _write(root / "plugins" / "flows.py",
           '@component(type="workflow", name="nightly", version="2.0.0")\ndef nightly():\n'
           "    pass\n")  # fmt: skip
    run("plugins-lint-drift", "plugins", "lint", exit_code=1)
    _write(root / "plugins" / "broken.py", "@component(type='tool')\ndef f(): pass\n")
    run("plugins-export-refused", "plugins", "export", exit_code=1)
    (root / "plugins" / "broken.py").unlink()
    run("plugins-export-rewritten", "plugins", "export")


def exercise(base: Path) -> Exercised:
    """Build a root under ``base`` and run every command that prints JSON, success and failure."""
    state = Exercised(root=base / "root")
    root = state.root
    run = Runner(state)
    run("init", "init")
    _write(root / "base" / "core.md", "# core\n")
    _write(root / "docs" / "guide.md", "# guide\n")
    _write(root / "docs" / "sub" / "notes.txt", "notes\n")
    run("pack", "pack", "--src", "base", "--id", "PKG-BASE", "--version", "1.0.0")
    run("pack-depends", "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "1.0.0",
        "--depends", "PKG-BASE>=1.0")  # fmt: skip
    _vendor_archive(root / "packages_store" / "vendor_tool.tar.gz")
    run("create", "create", "--archive", "packages_store/vendor_tool.tar.gz", "--id",
        "PKG-VENDOR-TOOL", "--version", "2.1.0", "--output-type", "module")  # fmt: skip
    run("install-dry-run", "install", "--id", "PKG-DOCS", "--dry-run")
    run("install", "install", "--id", "PKG-DOCS")
    run("install-unchanged", "install", "--id", "PKG-DOCS")
    run("install-module", "install", "--id", "PKG-VENDOR-TOOL")
    _write(root / "docs" / "guide.md", "# guide, second edition\n")
    run("pack-update", "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "1.1.0",
        "--depends", "PKG-BASE>=1.0")  # fmt: skip
    run("update-dry-run", "update", "--id", "PKG-DOCS", "--dry-run")
    run("update", "update", "--id", "PKG-DOCS")
    run("remove-dry-run", "remove", "--id", "PKG-VENDOR-TOOL", "--dry-run")
    run("remove", "remove", "--id", "PKG-VENDOR-TOOL")
    run("sync", "sync")
    run("sync-dry-run", "sync", "--dry-run")
    run("validate", "validate")
    run("manifest", "manifest")
    run("manifest-unchanged", "manifest")
    run("integrity-check", "integrity-check")
    run("integrity-check-fast", "integrity-check", "--fast")
    run("verify", "verify")
    run("verify-one", "verify", "--id", "PKG-DOCS")
    _write(root / "docs" / "sub" / "notes.txt", "edited by hand\n")
    _write(root / "docs" / "stray.txt", "nobody registered me\n")
    run("integrity-check-findings", "integrity-check", exit_code=1)
    run("hash-update", "hash-update", "--path", "docs/sub/notes.txt")
    (root / "docs" / "stray.txt").unlink()
    run("doctor-findings", "doctor", exit_code=1)  # MANIFEST.json is stale now
    run("manifest-rewritten", "manifest")
    run("doctor", "doctor")
    run("whoami", "whoami")
    run("ledger-show", "ledger", "show")
    run("ledger-show-since", "ledger", "show", "--since", "3")
    checkpoint = run("ledger-checkpoint", "ledger", "checkpoint")
    saved = base / "saved-checkpoint.json"
    saved.write_text(json.dumps(checkpoint), encoding="utf-8")
    state.files["checkpoint"] = saved
    run("ledger-verify", "ledger", "verify")
    run("ledger-verify-against", "ledger", "verify", "--against", str(saved))
    for label, args in (
        ("ledger-prove-inclusion", ("--seq", "2")),
        ("ledger-prove-consistency", ("--from-size", "3")),
    ):
        proof = run(label, "ledger", "prove", *args)
        state.files[label] = base / f"{label}.json"
        state.files[label].write_text(json.dumps(proof), encoding="utf-8")
        run(f"{label}-check", "ledger", "verify-proof", str(state.files[label]), str(saved))
    run("schema-list", "schema", "--list")
    _trust(state, run, base)
    _components(root, run)
    run("error-unknown-package", "install", "--id", "PKG-NOPE", exit_code=2)
    run("error-usage", "hash-update", "--path", "../outside", exit_code=2)
    # HMAC: a token, then who it identifies, then a denial.
    config = root / "control_plane.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "[authz.users]\n", '[authz.users]\nalice = "admin"\nrita = "reader"\n'
        ),
        encoding="utf-8",
    )
    hmac_env = {"CONTROL_PLANE_AUTH_PROVIDER": "hmac", "CONTROL_PLANE_SHARED_SECRET": SECRET}
    run("token-mint", "token", "mint", "alice", env=hmac_env)
    expiring = run("token-mint-ttl", "token", "mint", "rita", "--ttl", "1h", env=hmac_env)
    alice = state.outputs["token-mint"]["token"]
    run("whoami-hmac", "--token", alice, "whoami", env=hmac_env)  # global option after root
    run("error-denied", "--token", expiring["token"], "hash-update", "--path",
        "docs/guide.md", exit_code=3, env=hmac_env)  # fmt: skip
    sidecar = root / "packages_store" / "docs.tar.gz.sha256"
    sidecar.write_text("0" * 64 + "  docs.tar.gz\n", encoding="utf-8")
    run("validate-findings", "validate", exit_code=1)
    return state
