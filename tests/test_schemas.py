"""The shipped JSON Schemas: valid draft 2020-12, and true of what cpctl really prints and writes."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from control_plane.schemas import file_name, load_schema, resolve, schema_names, schema_text
from tests.conftest import CliFn
from tests.json_outputs import FILES, LINES, PARSED, ROWS, Exercised, exercise

# The schema each labelled command output must carry (and validate against).
EXPECTED_SCHEMA = {
    "init": "init", "pack": "pack", "pack-depends": "pack", "pack-update": "pack",
    "create": "create", "install-dry-run": "change", "install": "change",
    "install-unchanged": "change", "install-module": "change", "update-dry-run": "change",
    "update": "change", "remove-dry-run": "change", "remove": "change", "sync": "sync",
    "sync-dry-run": "sync", "validate": "validate", "validate-findings": "validate",
    "manifest": "manifest-write", "manifest-unchanged": "manifest-write",
    "manifest-rewritten": "manifest-write", "integrity-check": "integrity",
    "integrity-check-fast": "integrity", "integrity-check-findings": "integrity",
    "verify": "integrity", "verify-one": "integrity", "hash-update": "hash-update",
    "doctor": "doctor", "doctor-findings": "doctor", "whoami": "whoami",
    "whoami-hmac": "whoami", "ledger-show": "ledger-show", "ledger-show-since": "ledger-show",
    "ledger-checkpoint": "checkpoint", "ledger-verify": "ledger-verify",
    "ledger-verify-against": "ledger-verify", "ledger-prove-inclusion": "inclusion-proof",
    "ledger-prove-inclusion-check": "proof-check",
    "ledger-prove-consistency": "consistency-proof",
    "ledger-prove-consistency-check": "proof-check", "schema-list": "schema-list",
    "error-unknown-package": "error", "error-usage": "error", "error-denied": "error",
    "token-mint": "token", "token-mint-ttl": "token", "registry-export": "registry-export",
    "registry-sign": "registry-sign", "registry-verify": "registry-verify",
    "install-manifest": "change", "revocations-empty": "revocations-show",
    "revoke": "revoke", "revoke-again": "revoke", "revocations": "revocations-show",
    "revocations-re-sign": "revocations-sign",
    "error-rejected": "error", "keys-generate": "key-generate",
    "keys-generate-p256": "key-generate", "keys-trust": "key-change", "keys-list": "keys",
    "keys-revoke": "key-change", "sign": "sign", "deprecate": "deprecate", "lock": "lock-write", "drift": "drift",
    "ids-mint": "ids-mint", "ids-validate": "ids-validate",
    "ids-build-registry": "ids-registry", "ids-build-registry-check": "ids-registry",
    "plugin-new": "plugin-new", "plugin-build": "plugin-build", "plugin-validate": "plugin-validate",
    "plugins-export": "plugins-export", "plugins-export-unchanged": "plugins-export",
    "plugins-export-refused": "plugins-export", "plugins-export-rewritten": "plugins-export",
    "plugins-lint": "plugins-lint", "plugins-lint-drift": "plugins-lint",
}  # fmt: skip


@pytest.fixture(scope="module")
def exercised(tmp_path_factory: pytest.TempPathFactory) -> Exercised:
    return exercise(tmp_path_factory.mktemp("exercised"))


def check(name: str, document: Any) -> None:
    """Assert ``document`` is valid under schema ``name``, naming the closest failure."""
    validator = Draft202012Validator(load_schema(name))
    error = best_match(validator.iter_errors(document))
    assert error is None, f"{name}: {error.message} at {list(error.absolute_path)}"


@pytest.mark.parametrize("name", schema_names())
def test_every_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:control-plane:schema:{name}"
    assert schema["title"] and schema["description"]
    closed = schema["items"] if schema["type"] == "array" else schema
    assert closed["additionalProperties"] is False
    if "schema" in schema.get("properties", {}):
        assert schema["properties"]["schema"] == {"const": name}
    # Self-contained: every $ref points into the schema's own $defs.
    refs = _refs(schema)
    assert all(ref.startswith("#/$defs/") for ref in refs), refs
    assert {ref.removeprefix("#/$defs/") for ref in refs} <= set(schema.get("$defs", {}))


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def test_the_shipped_files_are_the_schema_names() -> None:
    directory = Path(__file__).resolve().parents[1] / "control_plane" / "schemas"
    files = {path.name for path in directory.glob("*.json")}
    assert files == {file_name(name) for name in schema_names()}


@pytest.mark.parametrize("label", sorted(EXPECTED_SCHEMA))
def test_command_output_validates(exercised: Exercised, label: str) -> None:
    document = exercised.outputs[label]
    name = resolve(EXPECTED_SCHEMA[label])  # the newest version
    assert document["schema"] == name
    check(name, document)


def test_every_output_of_the_workflow_is_checked(exercised: Exercised) -> None:
    assert set(exercised.outputs) == set(EXPECTED_SCHEMA)


def test_every_schema_is_exercised_by_real_output(exercised: Exercised) -> None:
    """Every newest version is what some real output is; older versions stay shipped unused."""
    used = {document["schema"] for document in exercised.outputs.values()}
    formats = {*FILES.values(), *LINES.values(), *ROWS.values(), *PARSED.values()}
    newest = {resolve(name.rsplit("/", 1)[0]) for name in schema_names()}
    assert newest == used | formats


@pytest.mark.parametrize("path", sorted(ROWS))
def test_registry_rows_validate(exercised: Exercised, path: str) -> None:
    with (exercised.root / path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    for row in rows:
        check(ROWS[path], row)


def test_a_broken_registry_row_fails_its_schema() -> None:
    row = {
        "id": "pkg-lower", "name": "x", "version": "1", "source": "../x.tar.gz",
        "source_type": "zip", "digest": "sha256:00", "output_type": "extension",
        "output_path": "", "dependencies": "", "tier": "", "installed_version": "",
        "installed_digest": "",
    }  # fmt: skip
    validator = Draft202012Validator(load_schema("control-plane.package-row/2"))
    failing = {error.absolute_path[0] for error in validator.iter_errors(row)}
    assert failing == {"id", "version", "source", "source_type", "digest"}


@pytest.mark.parametrize("path", sorted(FILES))
def test_files_validate(exercised: Exercised, path: str) -> None:
    document = json.loads((exercised.root / path).read_text(encoding="utf-8"))
    assert document
    check(FILES[path], document)


@pytest.mark.parametrize("pattern", sorted(PARSED))
def test_toml_and_yaml_files_validate(exercised: Exercised, pattern: str) -> None:
    paths = sorted(exercised.root.glob(pattern))
    assert paths
    for path in paths:
        data = path.read_bytes()
        document = tomllib.loads(data.decode()) if path.suffix == ".lock" else yaml.safe_load(data)
        check(PARSED[pattern], document)


@pytest.mark.parametrize("path", sorted(LINES))
def test_json_lines_validate(exercised: Exercised, path: str) -> None:
    lines = (exercised.root / path).read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        check(LINES[path], json.loads(line))


def test_a_denial_is_a_ledger_entry_too(exercised: Exercised) -> None:
    lines = (exercised.root / "ledger/ledger.jsonl").read_text(encoding="utf-8").splitlines()
    assert any(json.loads(line)["result"] == "denied" for line in lines)


def test_saved_proofs_validate(exercised: Exercised) -> None:
    for label, name in (
        ("ledger-prove-inclusion", "control-plane.inclusion-proof/1"),
        ("ledger-prove-consistency", "control-plane.consistency-proof/1"),
        ("checkpoint", "control-plane.checkpoint/1"),
    ):
        check(name, json.loads(exercised.files[label].read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("control-plane.pack/1", "control-plane.pack/1"),
        ("control-plane.pack-1", "control-plane.pack/1"),
        ("control-plane.pack-1.schema.json", "control-plane.pack/1"),
        ("pack", "control-plane.pack/2"),
        ("ledger-entry", "control-plane.ledger-entry/1"),
        ("hash-update", "control-plane.hash-update/1"),
    ],
)
def test_schema_names_resolve(given: str, meant: str) -> None:
    assert resolve(given) == meant


def test_cpctl_schema_prints_the_shipped_file(cpctl: CliFn, tmp_path: Path) -> None:
    for args in (("schema", "integrity"), ("schema", "control-plane.integrity/1", "--json")):
        outcome = cpctl(*args, root=tmp_path)
        assert outcome.exit_code == 0, outcome.stderr
        assert outcome.stdout == schema_text("control-plane.integrity/1")


def test_cpctl_schema_list(cpctl: CliFn, tmp_path: Path) -> None:
    outcome = cpctl("schema", "--list", root=tmp_path)
    assert outcome.exit_code == 0, outcome.stderr
    listed = [line.split()[0] for line in outcome.stdout.splitlines()]
    assert listed == list(schema_names())
    document = cpctl("schema", "--list", "--json", root=tmp_path).json()
    check("control-plane.schema-list/1", document)
    assert [item["name"] for item in document["schemas"]] == list(schema_names())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("schema", "no-such-thing"), "no schema named 'no-such-thing'"),
        (("schema", "manifest-"), "did you mean control-plane.manifest-write/1"),
        (("schema",), "give either a schema NAME or --list"),
        (("schema", "pack", "--list"), "give either a schema NAME or --list"),
    ],
    ids=["unknown", "near-miss", "neither", "both"],
)
def test_cpctl_schema_refusals_are_usage_errors(
    cpctl: CliFn, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    outcome = cpctl(*args, root=tmp_path)
    assert outcome.exit_code == 2
    assert message in outcome.stderr
    assert outcome.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a root
    document = cpctl(*args, "--json", root=tmp_path).json()
    check("control-plane.error/1", document)
