"""The README's plugin walkthrough, run as written, then each rule broken and caught."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliFn, readme_block, shell

HEADING = "### Walkthrough: a plugin from scaffold to installed module"
SPEC = "plugins/demo/plugin.spec.json"
# A well-formed ULID that no mint produced.
OTHER_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root after the walkthrough ran to the end (shared: every break restores what it broke)."""
    root = tmp_path_factory.mktemp("walkthrough") / "root"
    root.mkdir()
    ran = shell(readme_block(HEADING), root)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return root


def the_card(root: Path) -> Path:
    [card] = sorted((root / "ids" / "cards").glob("*.yaml"))
    return card


def findings(cpctl: CliFn, root: Path, *command: str) -> tuple[int, set[tuple[str, str]]]:
    outcome = cpctl(*command, "--json", root=root)
    assert "Traceback" not in outcome.stderr, outcome.stderr
    document = outcome.json()
    return outcome.exit_code, {(f["subject"], f["rule"]) for f in document["findings"]}


def test_the_walkthrough_leaves_a_valid_plugin_installed_as_a_module(
    walked: Path, cpctl: CliFn
) -> None:
    assert (walked / "modules/plugins/demo/src/handler.py").is_file()
    rows = (walked / "registries/packages_registry.csv").read_text(encoding="utf-8")
    assert the_card(walked).stem in rows
    assert json.loads((walked / "plugins.json").read_text())["components"][0]["name"] == "demo.mint"
    for command in (("plugin", "validate", "demo"), ("ids", "validate"), ("validate",)):
        assert findings(cpctl, walked, *command) == (0, set()), command
    assert cpctl("plugins", "lint", root=walked).exit_code == 0


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _dup_op(spec: dict) -> None:
    spec["operations"].append(dict(spec["operations"][0]))


def _bad_semver(spec: dict) -> None:
    spec["version"] = "1.0"


PLUGIN_BREAKS = {
    "missing-baseline": (
        lambda root: (root / "plugins/demo/healthcheck.md").unlink(),
        ("plugins/demo/healthcheck.md", "plugin-missing-baseline"),
    ),
    "duplicate-op": (
        lambda root: _edit_json(root / SPEC, _dup_op),
        (SPEC, "spec-duplicate-op"),
    ),
    "invalid-semver": (
        lambda root: _edit_json(root / SPEC, _bad_semver),
        (SPEC, "spec-semver"),
    ),
    "example-violates-schema": (
        lambda root: (root / "plugins/demo/examples/mint_request.json").write_text("[1]\n"),
        ("plugins/demo/examples/mint_request.json", "op-example-invalid"),
    ),
    "invalid-schema": (
        lambda root: (root / "plugins/demo/schemas/mint.in.schema.json").write_text(
            '{"type": "no-such-type"}\n'
        ),
        ("plugins/demo/schemas/mint.in.schema.json", "op-schema-invalid"),
    ),
    "hand-edited-manifest": (
        lambda root: _edit_json(
            root / "plugins/demo/manifest.json", lambda doc: doc.update(version="9.9.9")
        ),
        ("plugins/demo/manifest.json", "generated-drift"),
    ),
    "edit-inside-auto-fence": (
        lambda root: (root / "plugins/demo/src/handler.py").write_text(
            (root / "plugins/demo/src/handler.py")
            .read_text(encoding="utf-8")
            .replace('PLUGIN_KEY = "demo"', 'PLUGIN_KEY = "evil"')
        ),
        ("plugins/demo/src/handler.py", "auto-region-modified"),
    ),
}


@pytest.mark.parametrize("name", sorted(PLUGIN_BREAKS))
def test_plugin_validate_catches_each_break(walked: Path, cpctl: CliFn, name: str) -> None:
    breaker, expected = PLUGIN_BREAKS[name]
    saved = walked / "saved-demo"
    shutil.copytree(walked / "plugins/demo", saved)
    try:
        breaker(walked)
        code, found = findings(cpctl, walked, "plugin", "validate", "demo")
        assert code == 1 and expected in found, found
        refused = cpctl("plugin", "pack", "demo", root=walked)
        assert refused.exit_code == 1 and expected[1] in refused.stderr
    finally:
        shutil.rmtree(walked / "plugins/demo")
        saved.rename(walked / "plugins/demo")
    assert findings(cpctl, walked, "plugin", "validate", "demo") == (0, set())


def _second_card(root: Path) -> None:
    text = the_card(root).read_text(encoding="utf-8").replace(the_card(root).stem, OTHER_ULID)
    (root / "ids/cards" / f"{OTHER_ULID}.yaml").write_text(text, encoding="utf-8")


CARD_BREAKS = {
    "edited-card": (
        lambda root: the_card(root).write_text(
            the_card(root).read_text(encoding="utf-8").replace("kind: plugin", "kind: module")
        ),
        "card-modified",
    ),
    "deleted-card": (lambda root: the_card(root).unlink(), "card-missing"),
    "two-cards-one-artifact": (_second_card, "duplicate-path"),
    "malformed-yaml": (
        lambda root: (root / "ids/cards" / f"{OTHER_ULID}.yaml").write_text("id: [unclosed\n"),
        "card-yaml",
    ),
}


@pytest.mark.parametrize("name", sorted(CARD_BREAKS))
def test_ids_validate_catches_each_break(walked: Path, cpctl: CliFn, name: str) -> None:
    breaker, rule = CARD_BREAKS[name]
    saved = walked / "saved-cards"
    shutil.copytree(walked / "ids/cards", saved)
    try:
        breaker(walked)
        code, found = findings(cpctl, walked, "ids", "validate")
        assert code == 1 and rule in {found_rule for _, found_rule in found}, found
    finally:
        shutil.rmtree(walked / "ids/cards")
        saved.rename(walked / "ids/cards")
    assert findings(cpctl, walked, "ids", "validate") == (0, set())


def test_plugins_lint_catches_drift(walked: Path, cpctl: CliFn) -> None:
    manifest = walked / "plugins.json"
    good = manifest.read_bytes()
    try:
        manifest.write_bytes(good.replace(b'"demo.mint"', b'"demo.minted"'))
        outcome = cpctl("plugins", "lint", root=walked)
        assert outcome.exit_code == 1 and "demo.mint" in outcome.stdout + outcome.stderr
        assert "Traceback" not in outcome.stderr
    finally:
        manifest.write_bytes(good)
    assert cpctl("plugins", "lint", root=walked).exit_code == 0
