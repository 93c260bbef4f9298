"""cpctl plugins export / lint: the component manifest plugins.json, read without importing."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from control_plane.schemas import load_schema
from tests.conftest import REPO, CliFn, assert_refused, ledger_entries, snapshot, write

READER = '''\
"""Tools for reading."""
from iceos import component

raise RuntimeError("importing this module is forbidden")


@component(type="tool", name="csv_reader", version="1.2.3",
           input="schemas/csv.in.json", output="schemas/csv.out.json",
           tags=["io", "csv"], description="Fast CSV parsing")
class CsvReader:
    pass


@component(type="agent", name="summariser", version="0.1.0")
def summarise(text):
    return text[:10]


def helper():  # not a component
    return None
'''

FLOWS = """\
import sdk


@sdk.component(type="workflow", name="nightly", version="2.0.0",
               deprecated={"since": "2.0.0", "replacement": "hourly"})
class Nightly:
    pass
"""


def _declare(root: Path) -> None:
    write(root / "plugins" / "reading" / "tools.py", READER)
    write(root / "plugins" / "flows.py", FLOWS)


def _manifest(root: Path) -> dict:
    return json.loads((root / "plugins.json").read_text(encoding="utf-8"))


def _check(name: str, document: object) -> None:
    Draft202012Validator(load_schema(name)).validate(document)


@pytest.fixture
def declared(root: Path, cpctl: CliFn) -> Path:
    _declare(root)
    outcome = cpctl("plugins", "export", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    return root


def test_export_lists_components_sorted_without_importing(declared: Path) -> None:
    document = _manifest(declared)
    assert "plugins.reading.tools" not in sys.modules
    _check("control-plane.plugins/1", document)
    assert document["schema"] == "control-plane.plugins/1"
    listed = [(c["type"], c["name"], c["import"]) for c in document["components"]]
    assert listed == [
        ("agent", "summariser", "plugins.reading.tools:summarise"),
        ("tool", "csv_reader", "plugins.reading.tools:CsvReader"),
        ("workflow", "nightly", "plugins.flows:Nightly"),
    ]
    reader = document["components"][1]
    assert reader["schema"] == {"input": "schemas/csv.in.json", "output": "schemas/csv.out.json"}
    assert reader["tags"] == ["csv", "io"]
    assert reader["version"] == "1.2.3"
    assert reader["deprecated"] is None
    assert document["components"][2]["deprecated"] == {"since": "2.0.0", "replacement": "hourly"}
    assert "created" not in json.dumps(document)


def test_export_is_deterministic_and_a_noop_when_unchanged(declared: Path, cpctl: CliFn) -> None:
    first = (declared / "plugins.json").read_bytes()
    entries = len(ledger_entries(declared))
    outcome = cpctl("plugins", "export", "--json", root=declared)
    assert outcome.exit_code == 0, outcome.stderr
    _check("control-plane.plugins-export/1", outcome.json())
    assert outcome.json()["status"] == "unchanged"
    assert (declared / "plugins.json").read_bytes() == first
    assert len(ledger_entries(declared)) == entries
    (declared / "plugins.json").unlink()
    assert cpctl("plugins", "export", root=declared).exit_code == 0
    assert (declared / "plugins.json").read_bytes() == first


def test_export_is_ledgered(declared: Path) -> None:
    entry = ledger_entries(declared)[-1]
    assert entry["action"] == "plugins-export"
    assert entry["target"] == "plugins.json"
    assert entry["details"] == {"components": 3}


def test_lint_is_clean_after_export(declared: Path, cpctl: CliFn) -> None:
    outcome = cpctl("plugins", "lint", root=declared)
    assert outcome.exit_code == 0, outcome.stderr
    assert "3 declared component(s)" in outcome.stdout
    document = cpctl("plugins", "lint", "--json", root=declared).json()
    _check("control-plane.plugins-lint/1", document)
    assert document["ok"] is True and document["status"] == "clean"


def _edit_field(root: Path) -> None:
    path = root / "plugins" / "reading" / "tools.py"
    path.write_text(path.read_text().replace('"1.2.3"', '"1.3.0"'), encoding="utf-8")


def _add_component(root: Path) -> None:
    write(root / "plugins" / "extra.py", '@component(type="tool", name="zip", version="1.0.0")\n'
          "def unzip():\n    pass\n")  # fmt: skip


def _remove_component(root: Path) -> None:
    (root / "plugins" / "flows.py").unlink()


def _hand_edit(root: Path) -> None:
    document = _manifest(root)
    document["components"][0]["description"] = "edited by hand"
    (root / "plugins.json").write_text(json.dumps(document, indent=2), encoding="utf-8")


def _reformat(root: Path) -> None:
    (root / "plugins.json").write_text(json.dumps(_manifest(root)), encoding="utf-8")


def _malform(root: Path) -> None:
    (root / "plugins.json").write_text('{"schema": "control-plane.plugins/1", ', encoding="utf-8")


def _other_schema(root: Path) -> None:
    (root / "plugins.json").write_text('{"schema_version": "plugins.v0"}', encoding="utf-8")


def _deep(root: Path) -> None:
    (root / "plugins.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")


def _binary(root: Path) -> None:
    (root / "plugins.json").write_bytes(b"\xff\xfe{}")


def _delete(root: Path) -> None:
    (root / "plugins.json").unlink()


@pytest.mark.parametrize(
    ("change", "status", "rule", "words"),
    [
        (_edit_field, "drift", "component-changed", "tool csv_reader: version"),
        (_add_component, "drift", "component-missing", "tool zip (plugins.extra:unzip)"),
        (_remove_component, "drift", "component-extra", "workflow nightly is listed"),
        (_hand_edit, "drift", "component-changed", "agent summariser: description"),
        (_reformat, "drift", "manifest-format", "canonical form"),
        (_malform, "malformed", "manifest-malformed", "run cpctl plugins export"),
        (_other_schema, "malformed", "manifest-malformed", "control-plane.plugins/1"),
        (_deep, "malformed", "manifest-malformed", "nested too deeply"),
        (_binary, "malformed", "manifest-malformed", "not UTF-8"),
        (_delete, "missing", "manifest-missing", "does not exist"),
    ],
    ids=[
        "field-edited", "component-added", "component-removed", "hand-edited", "reformatted",
        "malformed", "other-schema", "deeply-nested", "not-utf8", "missing",
    ],
)  # fmt: skip
def test_lint_names_each_drift(
    declared: Path,
    cpctl: CliFn,
    *,
    change: Callable[[Path], None],
    status: str,
    rule: str,
    words: str,
) -> None:
    change(declared)
    before = snapshot(declared)
    outcome = cpctl("plugins", "lint", root=declared)
    assert outcome.exit_code == 1, outcome.stderr
    assert words in outcome.stdout and f"[{rule}]" in outcome.stdout
    assert "Traceback" not in outcome.stderr
    document = cpctl("plugins", "lint", "--json", root=declared).json()
    _check("control-plane.plugins-lint/1", document)
    assert document["status"] == status and document["ok"] is False
    assert rule in {finding["rule"] for finding in document["findings"]}
    assert snapshot(declared) == before  # lint never writes
    assert cpctl("plugins", "export", root=declared).exit_code == 0
    assert cpctl("plugins", "lint", root=declared).exit_code == 0


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("@component(type='tool', name='x', version='1')\ndef f(): pass\n", "invalid version"),
        ("@component(type='gadget', name='x', version='1.0.0')\ndef f(): pass\n", "type must be"),
        ("@component(type='tool', version='1.0.0')\ndef f(): pass\n", "missing required"),
        ("@component(type='tool', name='x', version='1.0.0', cost=1)\ndef f(): pass\n",
         "unknown argument"),
        ("V = '1.0.0'\n@component(type='tool', name='x', version=V)\ndef f(): pass\n",
         "must be literals"),
        ("@component('tool', name='x', version='1.0.0')\ndef f(): pass\n", "must be keywords"),
        ("def broken(:\n", "cannot parse"),
        ("x = " + "(" * 100_000 + ")" * 100_000 + "\n", "cannot parse"),
        ("@component(type='tool', name='x', version='1.0.0', deprecated={'since': 'soon'})\n"
         "def f(): pass\n", "deprecated.since"),
        ("@component(type='tool', name='naïve', version='1.0.0')\ndef f(): pass\n",
         "must be letters"),
    ],
    ids=["bad-semver", "bad-type", "no-name", "unknown-arg", "not-literal", "positional",
         "syntax-error", "deeply-nested", "bad-since", "non-ascii-name"],
)  # fmt: skip
def test_a_bad_declaration_refuses_export_and_fails_lint(
    declared: Path, cpctl: CliFn, source: str, words: str
) -> None:
    write(declared / "plugins" / "bad.py", source)
    before = snapshot(declared)
    outcome = cpctl("plugins", "export", root=declared)
    assert outcome.exit_code == 1
    assert words in outcome.stdout and "plugins/bad.py" in outcome.stdout
    assert "not written" in outcome.stdout
    assert "Traceback" not in outcome.stderr
    assert snapshot(declared) == before
    document = cpctl("plugins", "export", "--json", root=declared).json()
    _check("control-plane.plugins-export/1", document)
    assert document["status"] == "refused"
    lint = cpctl("plugins", "lint", "--json", root=declared)
    assert lint.exit_code == 1 and lint.json()["status"] == "invalid"


def test_duplicate_and_unimportable_names_are_findings(root: Path, cpctl: CliFn) -> None:
    decl = "@component(type='tool', name='same', version='1.0.0')\ndef f(): pass\n"
    write(root / "plugins" / "one.py", decl)
    write(root / "plugins" / "two.py", decl)
    write(root / "plugins" / "my-plugin" / "tool.py", decl.replace("same", "other"))
    before = snapshot(root)
    outcome = cpctl("plugins", "export", "--json", root=root)
    assert outcome.exit_code == 1
    rules = {finding["rule"] for finding in outcome.json()["findings"]}
    assert rules == {"component-duplicate", "component-import-path"}
    assert snapshot(root) == before


def test_no_plugins_directory_exports_an_empty_manifest(root: Path, cpctl: CliFn) -> None:
    assert cpctl("plugins", "lint", root=root).exit_code == 1
    assert cpctl("plugins", "export", root=root).exit_code == 0
    assert _manifest(root) == {"schema": "control-plane.plugins/1", "components": []}
    assert cpctl("plugins", "lint", root=root).exit_code == 0


def test_out_writes_another_file_inside_the_root(root: Path, cpctl: CliFn) -> None:
    _declare(root)
    outcome = cpctl("plugins", "export", "--out", "build/components.json", root=root, cwd=root)
    assert outcome.exit_code == 0, outcome.stderr
    assert not (root / "plugins.json").exists()
    lint = cpctl("plugins", "lint", "--file", "build/components.json", root=root, cwd=root)
    assert lint.exit_code == 0, lint.stdout


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("../outside.json", "outside the root"),
        ("registries/plugins.json", "cannot hold the component manifest"),
        ("plugins.txt", "cannot hold the component manifest"),
    ],
    ids=["outside", "machinery", "not-json"],
)
def test_export_refusals_write_nothing(root: Path, cpctl: CliFn, out: str, words: str) -> None:
    _declare(root)
    before = snapshot(root)
    outcome = cpctl("plugins", "export", "--out", out, root=root, cwd=root)
    assert_refused(outcome, 2, before, root, words)
    assert not (root.parent / "outside.json").exists()


def test_a_directory_in_the_way_is_refused(root: Path, cpctl: CliFn) -> None:
    _declare(root)
    (root / "plugins.json").mkdir()
    before = snapshot(root)
    assert_refused(cpctl("plugins", "export", root=root), 2, before, root, "not a regular file")
    assert_refused(cpctl("plugins", "lint", root=root), 2, before, root, "not a regular file")


def test_symlinked_sources_are_not_followed(root: Path, cpctl: CliFn, tmp_path: Path) -> None:
    outside = write(tmp_path / "elsewhere.py", READER)
    (root / "plugins").mkdir()
    (root / "plugins" / "linked.py").symlink_to(outside)
    outcome = cpctl("plugins", "export", "--json", root=root)
    assert outcome.exit_code == 1
    assert outcome.json()["findings"][0]["rule"] == "component-source"


def test_a_reader_may_lint_but_not_export(root: Path, cpctl: CliFn) -> None:
    _declare(root)
    config = root / "control_plane.toml"
    config.write_text(
        config.read_text().replace("[authz.users]\n", '[authz.users]\nrita = "reader"\n'),
        encoding="utf-8",
    )
    secret = "a shared secret long enough for the hmac provider"
    env = {"CONTROL_PLANE_AUTH_PROVIDER": "hmac", "CONTROL_PLANE_SHARED_SECRET": secret}
    token = cpctl("token", "mint", "rita", "--json", root=root, env=env).json()["token"]
    before = snapshot(root, include_ledger=False)
    denied = cpctl("--token", token, "plugins", "export", root=root, env=env)
    assert denied.exit_code == 3
    assert snapshot(root, include_ledger=False) == before
    assert cpctl("--token", token, "plugins", "lint", root=root, env=env).exit_code == 1


def test_the_pre_commit_hook_stops_a_stale_manifest(declared: Path) -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    entry = next(hook["entry"] for hook in hooks if hook["id"] == "cpctl-plugins-lint")
    found = shutil.which("cpctl", path=str(Path(sys.executable).parent))
    assert found, "cpctl is not installed beside this Python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    env["PATH"] = f"{Path(found).parent}{os.pathsep}{env.get('PATH', '')}"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            shlex.split(entry), cwd=declared, env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    assert run().returncode == 0
    _edit_field(declared)
    stale = run()
    assert stale.returncode == 1
    assert "component-changed" in stale.stdout


def test_the_ci_audit_lints_a_root_with_a_manifest(
    declared: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    for source in ("plugins/reading/tools.py", "plugins/flows.py"):
        assert cpctl("hash-update", "--path", source, root=declared, cwd=declared).exit_code == 0
    found = shutil.which("cpctl", path=str(Path(sys.executable).parent))
    assert found, "cpctl is not installed beside this Python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROL_PLANE_", "CPCTL"))}
    env["PATH"] = f"{Path(found).parent}{os.pathsep}{env.get('PATH', '')}"
    reports = tmp_path / "reports"

    def audit() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REPO / "ci" / "cpctl-audit.sh"), str(declared), str(reports)],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    clean = audit()
    assert clean.returncode == 0, clean.stdout + clean.stderr  # plugins.json is no orphan
    assert "ok      cpctl plugins lint" in clean.stdout
    assert json.loads((reports / "plugins-lint.json").read_text(encoding="utf-8"))["ok"] is True
    _hand_edit(declared)
    stale = audit()
    assert stale.returncode == 1
    assert "plugins-lint (exit 1)" in stale.stderr
    assert "component-changed" in stale.stderr


# --- plugins/KEY/plugin.spec.json: one component per operation --------------------------------


@pytest.fixture
def scaffolded(root: Path, cpctl: CliFn) -> Path:
    outcome = cpctl("plugin", "new", "demo", "--op", "mint", "--op", "burn", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    _declare(root)
    outcome = cpctl("plugins", "export", root=root)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    return root


def test_plugin_operations_are_components(scaffolded: Path, cpctl: CliFn) -> None:
    document = _manifest(scaffolded)
    _check("control-plane.plugins/1", document)
    by_name = {item["name"]: item for item in document["components"]}
    mint = by_name["demo.mint"]
    assert mint["type"] == "tool"
    assert mint["import"] == "plugins.demo.src.handler:mint"
    assert mint["version"] == "0.1.0"
    assert mint["schema"] == {
        "input": "plugins/demo/schemas/mint.in.schema.json",
        "output": "plugins/demo/schemas/mint.out.schema.json",
    }
    assert mint["source"] == "plugins/demo/plugin.spec.json"
    assert mint["tags"] == ["plugin:demo"]
    for item in by_name.values():
        if item["source"].endswith(".json"):
            assert (scaffolded / item["schema"]["input"]).is_file()
    names = [(item["type"], item["name"]) for item in document["components"]]
    assert names == sorted(names)
    assert cpctl("plugins", "lint", root=scaffolded).exit_code == 0


def test_a_spec_change_is_drift_until_exported(scaffolded: Path, cpctl: CliFn) -> None:
    spec_path = scaffolded / "plugins" / "demo" / "plugin.spec.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    spec["version"] = "0.2.0"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    outcome = cpctl("plugins", "lint", root=scaffolded)
    assert outcome.exit_code == 1
    assert "tool demo.mint: version" in outcome.stdout
    assert cpctl("plugins", "export", root=scaffolded).exit_code == 0
    assert cpctl("plugins", "lint", root=scaffolded).exit_code == 0


def _duplicate_op(root: Path) -> None:
    spec_path = root / "plugins" / "demo" / "plugin.spec.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    spec["operations"].append(dict(spec["operations"][0]))
    spec_path.write_text(json.dumps(spec), encoding="utf-8")


def _drop_handler_function(root: Path) -> None:
    handler = root / "plugins" / "demo" / "src" / "handler.py"
    text = handler.read_text(encoding="utf-8").replace("def burn(", "def renamed_burn(")
    handler.write_text(text.replace('"burn": burn,', '"burn": renamed_burn,'), encoding="utf-8")


def _delete_handler(root: Path) -> None:
    (root / "plugins" / "demo" / "src" / "handler.py").unlink()


def _deep_spec(root: Path) -> None:
    (root / "plugins" / "demo" / "plugin.spec.json").write_text("[" * 100_000, encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "rule", "subject"),
    [
        (_duplicate_op, "spec-duplicate-op", "plugins/demo/plugin.spec.json"),
        (_drop_handler_function, "component-import-path", "plugins/demo/src/handler.py"),
        (_delete_handler, "component-import-path", "plugins/demo/src/handler.py"),
        (_deep_spec, "spec-json", "plugins/demo/plugin.spec.json"),
    ],
    ids=["duplicate-operation", "handler-lacks-operation", "handler-missing", "deep-json"],
)
def test_a_broken_plugin_refuses_export(
    scaffolded: Path, cpctl: CliFn, change: Callable[[Path], None], rule: str, subject: str
) -> None:
    change(scaffolded)
    before = snapshot(scaffolded)
    outcome = cpctl("plugins", "export", "--json", root=scaffolded)
    assert outcome.exit_code == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    document = outcome.json()
    assert document["status"] == "refused"
    assert {(f["rule"], f["subject"]) for f in document["findings"]} >= {(rule, subject)}
    assert snapshot(scaffolded) == before
    assert cpctl("plugins", "lint", root=scaffolded).exit_code == 1
