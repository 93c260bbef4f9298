"""cpctl plugin new / build / validate: scaffold, derive deterministically, catch every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CliFn, assert_refused, ledger_entries, snapshot, write


@pytest.fixture
def demo(root: Path, cpctl: CliFn) -> Path:
    """A root with plugins/demo scaffolded with one operation, mint."""
    outcome = cpctl("plugin", "new", "demo", "--op", "mint", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    return root / "plugins" / "demo"


def validate(cpctl: CliFn, root: Path, *args: str) -> tuple[int, list[tuple[str, str]]]:
    """Exit code and (subject, rule) of every finding of ``cpctl plugin validate --json``."""
    outcome = cpctl("plugin", "validate", *(args or ("demo",)), "--json", root=root)
    assert "Traceback" not in outcome.stderr
    document = outcome.json()
    assert document["schema"] == "control-plane.plugin-validate/1"
    return outcome.exit_code, [(f["subject"], f["rule"]) for f in document["findings"]]


def edit_json(path: Path, change: object) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)  # type: ignore[operator]
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def build(cpctl: CliFn, root: Path) -> dict:
    outcome = cpctl("plugin", "build", "demo", "--json", root=root)
    assert "Traceback" not in outcome.stderr
    return outcome.json() | {"exit_code": outcome.exit_code}


BASELINE = (
    "plugin.spec.json", "manifest.json", "ledger_contract.json", "policy_snapshot.json",
    "README_PLUGIN.md", "healthcheck.md", "src/handler.py", "tests/test_contract.py",
    "conformance/README.md",
)  # fmt: skip
PER_OP = (
    "schemas/mint.in.schema.json", "schemas/mint.out.schema.json", "examples/mint_request.json",
    "examples/mint_response.json", "tests/test_mint.py",
)  # fmt: skip


def test_new_scaffolds_a_plugin_that_builds_to_itself_and_validates(
    root: Path, cpctl: CliFn, demo: Path
) -> None:
    for rel in BASELINE + PER_OP:
        assert (demo / rel).is_file(), rel
    entry = ledger_entries(root)[-1]
    assert (entry["action"], entry["target"]) == ("update", "plugins/demo")
    assert entry["details"]["command"] == "plugin-new"
    before = snapshot(root)
    first = build(cpctl, root)
    assert (first["exit_code"], first["status"], first["changed"]) == (0, "unchanged", [])
    assert snapshot(root) == before  # building twice changes nothing, not even the ledger
    assert validate(cpctl, root) == (0, [])
    text = cpctl("plugin", "validate", "demo", root=root)
    assert text.exit_code == 0
    assert "ok: 1 plugin(s) valid" in text.stdout


def test_the_scaffolded_tests_pass_out_of_the_box(demo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(demo / "tests")],
        cwd=demo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


def test_new_without_operations_and_validate_all(root: Path, cpctl: CliFn, demo: Path) -> None:
    outcome = cpctl("plugin", "new", "bare", "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["operations"] == []
    assert validate(cpctl, root, "--all") == (0, [])
    assert cpctl("plugin", "validate", "--all", "--json", root=root).json()["plugins"] == [
        "bare",
        "demo",
    ]


@pytest.mark.parametrize(
    "case",
    [
        (("demo",), 4, "already exists"),
        (("Bad-Key",), 2, "invalid plugin key"),
        (("../escape",), 2, "invalid plugin key"),
        (("fresh", "--op", "mint", "--op", "mint"), 2, "operation given twice"),
        (("fresh", "--op", "Mint!"), 2, "invalid operation"),
    ],
)
def test_new_refusals_write_nothing(
    root: Path, cpctl: CliFn, demo: Path, case: tuple[tuple[str, ...], int, str]
) -> None:
    args, code, word = case
    before = snapshot(root)
    outcome = cpctl("plugin", "new", *args, root=root)
    assert_refused(outcome, code, before, root, word)


def test_usage_errors(root: Path, cpctl: CliFn, demo: Path) -> None:
    before = snapshot(root)
    assert_refused(cpctl("plugin", "build", "nosuch", root=root), 2, before, root, "no plugin")
    assert_refused(cpctl("plugin", "validate", root=root), 2, before, root, "--all")
    both = cpctl("plugin", "validate", "demo", "--all", root=root)
    assert_refused(both, 2, before, root, "--all")


def test_missing_baseline_file(root: Path, cpctl: CliFn, demo: Path) -> None:
    (demo / "healthcheck.md").unlink()
    (demo / "conformance" / "README.md").unlink()
    (demo / "conformance").rmdir()
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/healthcheck.md", "plugin-missing-baseline") in found
    assert ("plugins/demo/conformance/", "plugin-missing-baseline") in found
    assert build(cpctl, root)["status"] == "written"  # build restores the generated file


def test_spec_with_duplicate_operation_ids(root: Path, cpctl: CliFn, demo: Path) -> None:
    edit_json(demo / "plugin.spec.json", lambda d: d["operations"].append(d["operations"][0]))
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/plugin.spec.json", "spec-duplicate-op") in found
    before = snapshot(root)
    refused = build(cpctl, root)
    assert (refused["exit_code"], refused["status"]) == (1, "refused")
    assert snapshot(root) == before


@pytest.mark.parametrize("version", ["1.0", "01.2.3", "1.2.3-", "v1.2.3"])
def test_spec_with_invalid_semver(root: Path, cpctl: CliFn, demo: Path, version: str) -> None:
    edit_json(demo / "plugin.spec.json", lambda d: d.update(version=version))
    assert validate(cpctl, root) == (1, [("plugins/demo/plugin.spec.json", "spec-semver")])


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("{not json", "spec-json"),
        ('{"schema": "control-plane.plugin-spec/1"}', "spec-schema"),
        ("[" * 100_000 + "]" * 100_000, "spec-json"),  # too deep to parse: a finding, no traceback
    ],
    ids=["not-json", "schema", "too-deep"],
)
def test_broken_spec(root: Path, cpctl: CliFn, demo: Path, content: str, rule: str) -> None:
    write(demo / "plugin.spec.json", content)
    code, found = validate(cpctl, root)
    assert (code, ("plugins/demo/plugin.spec.json", rule) in found) == (1, True)


def test_spec_key_must_match_its_directory(root: Path, cpctl: CliFn, demo: Path) -> None:
    edit_json(demo / "plugin.spec.json", lambda d: d.update(key="other"))
    assert validate(cpctl, root) == (1, [("plugins/demo/plugin.spec.json", "spec-key")])


def test_example_that_violates_its_schema(root: Path, cpctl: CliFn, demo: Path) -> None:
    write(demo / "examples" / "mint_request.json", '{"input": 42}\n')
    write(demo / "examples" / "mint_response.json", '{"ok": true}\n')
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/examples/mint_request.json", "op-example-invalid") in found
    assert ("plugins/demo/examples/mint_response.json", "op-example-invalid") in found


def test_invalid_json_schema(root: Path, cpctl: CliFn, demo: Path) -> None:
    write(demo / "schemas" / "mint.in.schema.json", '{"type": "no-such-type"}\n')
    write(demo / "schemas" / "mint.out.schema.json", "[broken\n")
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/schemas/mint.in.schema.json", "op-schema-invalid") in found
    assert ("plugins/demo/schemas/mint.out.schema.json", "op-schema-json") in found


def test_operation_files_missing(root: Path, cpctl: CliFn, demo: Path) -> None:
    for rel in PER_OP:
        (demo / rel).unlink()
    code, found = validate(cpctl, root)
    assert code == 1
    rules = {rule for _, rule in found}
    assert {"op-schema-missing", "op-example-missing", "op-test-missing"} <= rules
    # healthcheck.md and README_PLUGIN.md point at the deleted files
    assert {"readme-link", "readme-command"} <= rules


def test_hand_edited_manifest(root: Path, cpctl: CliFn, demo: Path) -> None:
    edit_json(demo / "manifest.json", lambda d: d.update(version="9.9.9"))
    assert validate(cpctl, root) == (1, [("plugins/demo/manifest.json", "generated-drift")])
    assert build(cpctl, root)["changed"] == ["plugins/demo/manifest.json"]
    assert validate(cpctl, root) == (0, [])


def test_forged_checksum(root: Path, cpctl: CliFn, demo: Path) -> None:
    edit_json(demo / "manifest.json", lambda d: d["checksums"].update({"src/x.py": "sha256:00"}))
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/manifest.json", "manifest-checksum") in found


def test_edit_inside_an_auto_fence(root: Path, cpctl: CliFn, demo: Path) -> None:
    handler = demo / "src" / "handler.py"
    original = handler.read_text(encoding="utf-8")
    handler.write_text(original.replace('PLUGIN_VERSION = "0.1.0"', 'PLUGIN_VERSION = "6.6.6"'))
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/src/handler.py", "auto-region-modified") in found
    assert ("plugins/demo/manifest.json", "manifest-checksum") in found
    assert build(cpctl, root)["changed"] == ["plugins/demo/src/handler.py"]
    assert handler.read_text(encoding="utf-8") == original
    assert validate(cpctl, root) == (0, [])


def test_broken_auto_fence_refuses_the_build(root: Path, cpctl: CliFn, demo: Path) -> None:
    handler = demo / "src" / "handler.py"
    handler.write_text(handler.read_text(encoding="utf-8").replace("# <<< AUTO END plugin", ""))
    code, found = validate(cpctl, root)
    assert code == 1
    assert any(s.startswith("plugins/demo/src/handler.py:") and r == "auto-fence" for s, r in found)
    before = snapshot(root)
    assert build(cpctl, root)["status"] == "refused"
    assert snapshot(root) == before


def test_developer_region_and_manual_notes_survive_a_rebuild(
    root: Path, cpctl: CliFn, demo: Path
) -> None:
    handler = demo / "src" / "handler.py"
    mine = '    return {"ok": True, "operation": "mint", "minted": 1}'
    handler.write_text(
        handler.read_text(encoding="utf-8").replace(
            '    return {"ok": True, "operation": "mint"}', mine
        )
    )
    readme = demo / "README_PLUGIN.md"
    notes = "Operators: mint is idempotent. See [the spec](plugin.spec.json)."
    readme.write_text(
        readme.read_text(encoding="utf-8").replace(
            "(Write your notes here; cpctl plugin build keeps this section.)", notes
        )
    )
    code, found = validate(cpctl, root)
    assert (code, found) == (1, [("plugins/demo/manifest.json", "generated-drift"),
                                 ("plugins/demo/manifest.json", "manifest-checksum")])  # fmt: skip
    edit_json(demo / "plugin.spec.json", lambda d: d.update(version="0.2.0"))
    result = build(cpctl, root)
    assert result["status"] == "written"
    assert "plugins/demo/README_PLUGIN.md" in result["changed"]
    assert mine in handler.read_text(encoding="utf-8")
    assert 'PLUGIN_VERSION = "0.2.0"' in handler.read_text(encoding="utf-8")
    assert notes in readme.read_text(encoding="utf-8")
    assert "(demo 0.2.0)" in readme.read_text(encoding="utf-8")
    assert validate(cpctl, root) == (0, [])
    assert ledger_entries(root)[-1]["details"]["command"] == "plugin-build"


def test_readme_links_and_commands_must_resolve(root: Path, cpctl: CliFn, demo: Path) -> None:
    readme = demo / "README_PLUGIN.md"
    notes = "See [the guide](docs/guide.md) and run `cpctl plugin validate plugins/demo/nope.json`."
    readme.write_text(
        readme.read_text(encoding="utf-8").replace(
            "(Write your notes here; cpctl plugin build keeps this section.)", notes
        )
    )
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/README_PLUGIN.md", "readme-link") in found
    assert ("plugins/demo/README_PLUGIN.md", "readme-command") in found


def test_adding_an_operation_to_the_spec(root: Path, cpctl: CliFn, demo: Path) -> None:
    edit_json(
        demo / "plugin.spec.json",
        lambda d: d["operations"].append({"id": "burn", "events": ["demo.burn"]}),
    )
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/schemas/burn.in.schema.json", "op-schema-missing") in found
    assert ("plugins/demo/tests/test_burn.py", "op-test-missing") in found
    result = build(cpctl, root)
    assert "plugins/demo/src/handler.py" in result["changed"]
    contract = json.loads((demo / "ledger_contract.json").read_text(encoding="utf-8"))
    assert {"event": "demo.burn", "operation": "burn"} in contract["events"]


def test_policy_snapshot_follows_the_root_policy(root: Path, cpctl: CliFn, demo: Path) -> None:
    snapshot_file = demo / "policy_snapshot.json"
    old = json.loads(snapshot_file.read_text(encoding="utf-8"))
    config = root / "control_plane.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("manifest_threshold = 1", "manifest_threshold = 2"))
    code, found = validate(cpctl, root)
    assert code == 1
    assert ("plugins/demo/policy_snapshot.json", "generated-drift") in found
    build(cpctl, root)
    new = json.loads(snapshot_file.read_text(encoding="utf-8"))
    assert new["policy"]["manifest_threshold"] == 2
    assert new["digest"] != old["digest"]
    assert validate(cpctl, root) == (0, [])


def test_new_and_build_need_the_update_action(root: Path, cpctl: CliFn) -> None:
    from control_plane.auth import mint_hmac_token

    secret = "correct horse battery staple 0123456789"
    config = root / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    users = 'mona = "maintainer"\nrita = "reader"\n'
    config.write_text(text.replace("[authz.users]\n", "[authz.users]\n" + users))
    env = {"CONTROL_PLANE_SHARED_SECRET": secret}
    rita = mint_hmac_token(secret.encode(), "rita")
    mona = mint_hmac_token(secret.encode(), "mona")
    before = snapshot(root, include_ledger=False)
    denied = cpctl("--token", rita, "plugin", "new", "demo", "--op", "mint", root=root, env=env)
    assert denied.exit_code == 3, denied.stderr
    assert snapshot(root, include_ledger=False) == before
    assert ledger_entries(root)[-1]["result"] == "denied"
    made = cpctl("--token", mona, "plugin", "new", "demo", "--op", "mint", root=root, env=env)
    assert made.exit_code == 0, made.stderr
    assert ledger_entries(root)[-1]["actor"] == "mona"
    assert cpctl("--token", rita, "plugin", "build", "demo", root=root, env=env).exit_code == 3
    checked = cpctl("--token", rita, "plugin", "validate", "demo", root=root, env=env)
    assert checked.exit_code == 0, checked.stderr


def test_validate_all_flags_what_is_not_a_plugin(
    root: Path, cpctl: CliFn, demo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "plugins" / "linked").symlink_to(outside, target_is_directory=True)
    write(root / "plugins" / "Not-A-Key" / "plugin.spec.json", "{}\n")
    code, found = validate(cpctl, root, "--all")
    assert code == 1
    assert ("plugins/linked", "plugin-key") in found
    assert ("plugins/Not-A-Key", "plugin-key") in found
    assert not [subject for subject, _ in found if subject.startswith("plugins/demo")]


@pytest.mark.parametrize("rel", ["policy_snapshot.json", "manifest.json", "plugin.spec.json"])
def test_hostile_nesting_in_a_plugin_file_is_a_finding(
    root: Path, cpctl: CliFn, demo: Path, rel: str
) -> None:
    (demo / rel).write_text("[" * 100_000)
    code, found = validate(cpctl, root)
    assert code == 1 and f"plugins/demo/{rel}" in {subject for subject, _ in found}
    built = build(cpctl, root)  # refuses or rewrites the file, never a traceback
    assert built["exit_code"] in (0, 1)


def test_validate_all_skips_directories_that_are_not_plugins(
    root: Path, cpctl: CliFn, demo: Path
) -> None:
    write(root / "plugins" / "reading" / "tools.py", "def read() -> None: ...\n")
    (root / "plugins" / "__pycache__").mkdir()
    (root / "plugins" / "Empty-Dir").mkdir()
    assert validate(cpctl, root, "--all") == (0, [])
    checked = cpctl("plugin", "validate", "--all", "--json", root=root).json()
    assert checked["plugins"] == ["demo"]
    # Deleting one baseline file does not hide a plugin: the rest still makes it one.
    (demo / "plugin.spec.json").unlink()
    code, found = validate(cpctl, root, "--all")
    assert code == 1 and ("plugins/demo/plugin.spec.json", "plugin-missing-baseline") in found


def test_symlinked_src_refuses_the_build(
    root: Path, cpctl: CliFn, demo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    (demo / "src").rename(outside)
    (demo / "src").symlink_to(outside, target_is_directory=True)
    before = snapshot(root)
    result = build(cpctl, root)
    assert (result["exit_code"], result["status"]) == (1, "refused")
    assert ("plugins/demo/src", "src-file") in {
        (f["subject"], f["rule"]) for f in result["findings"]
    }
    assert snapshot(root) == before
    assert validate(cpctl, root)[0] == 1


def test_not_a_root_and_a_file_in_the_way(root: Path, cpctl: CliFn, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    outcome = cpctl("plugin", "new", "demo", root=bare)
    assert outcome.exit_code == 2
    assert list(bare.iterdir()) == []
    write(root / "plugins", "a file, not a directory\n")
    before = snapshot(root)
    assert_refused(cpctl("plugin", "new", "demo", root=root), 2, before, root, "plugins")


@pytest.mark.parametrize("bad", [{"control_plane": ">=99.0"}, {"python": "about 3"}])
def test_compatibility_ranges_must_resolve(
    root: Path, cpctl: CliFn, demo: Path, bad: dict[str, str]
) -> None:
    edit_json(demo / "plugin.spec.json", lambda d: d["compatibility"].update(bad))
    assert validate(cpctl, root) == (1, [("plugins/demo/plugin.spec.json", "spec-compatibility")])


def test_every_finding_is_listed_even_with_a_broken_spec(
    root: Path, cpctl: CliFn, demo: Path
) -> None:
    edit_json(demo / "plugin.spec.json", lambda d: d.update(version="0.1"))
    write(demo / "examples" / "mint_request.json", '{"input": 1}\n')
    write(demo / "manifest.json", "not json\n")
    code, found = validate(cpctl, root)
    assert code == 1
    assert set(found) == {
        ("plugins/demo/plugin.spec.json", "spec-semver"),
        ("plugins/demo/examples/mint_request.json", "op-example-invalid"),
        ("plugins/demo/manifest.json", "manifest-json"),
    }
    text = cpctl("plugin", "validate", "demo", root=root)
    assert text.exit_code == 1
    assert (
        "plugins/demo/examples/mint_request.json: violates schemas/mint.in.schema.json"
        in text.stdout
    )
    assert "3 problem(s) found in 1 plugin(s)" in text.stdout
