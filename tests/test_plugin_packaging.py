"""A plugin directory through the package flow: plugin pack, install as a module, card id in the row."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import CliFn, assert_refused, ledger_entries, snapshot, write

PACKAGE = "PKG-PLUGIN-DEMO"
ARCHIVE = "packages_store/plugin-demo.tar.gz"


@pytest.fixture
def demo(root: Path, cpctl: CliFn) -> Path:
    """plugins/demo scaffolded with one operation, mint; no card yet."""
    outcome = cpctl("plugin", "new", "demo", "--op", "mint", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    return root / "plugins" / "demo"


def mint(cpctl: CliFn, root: Path, path: str, kind: str = "plugin") -> str:
    outcome = cpctl("ids", "mint", "--kind", kind, "--path", path, "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    return str(outcome.json()["id"])


@pytest.fixture
def card(root: Path, cpctl: CliFn, demo: Path) -> str:
    """The identity card of plugins/demo."""
    return mint(cpctl, root, "plugins/demo")


def registry_rows(root: Path) -> dict[str, dict[str, str]]:
    with (root / "registries" / "packages_registry.csv").open(newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def members(archive: Path) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive.read_bytes()))) as tar:
        return tar.getnames()


def test_a_plugin_packs_installs_as_a_module_and_carries_its_card(
    root: Path, cpctl: CliFn, card: str
) -> None:
    packed = cpctl("plugin", "pack", "demo", "--json", root=root)
    assert packed.exit_code == 0, packed.stderr
    document = packed.json()
    assert document["schema"] == "control-plane.pack/2"
    assert (document["id"], document["version"], document["archive"]) == (PACKAGE, "0.1.0", ARCHIVE)
    assert document["card_id"] == card
    row = registry_rows(root)[PACKAGE]
    assert (row["card_id"], row["output_type"], row["version"]) == (card, "module", "0.1.0")
    assert ledger_entries(root)[-1]["details"]["card"] == card
    assert "plugins/demo/src/handler.py" in members(root / ARCHIVE)

    installed = cpctl("install", "--id", PACKAGE, root=root)
    assert installed.exit_code == 0, installed.stderr
    handler = root / "modules" / "plugins" / "demo" / "src" / "handler.py"
    assert handler.is_file()
    [detail] = ledger_entries(root)[-1]["details"]["packages"]
    assert (detail["id"], detail["output_type"], detail["card"]) == (PACKAGE, "module", card)

    # Installed as a module: importable with modules/ on sys.path, the path plugins.json names.
    code = "from plugins.demo.src.handler import mint; print(callable(mint))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PYTHONPATH": str(root / "modules"), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "True", done.stderr

    assert cpctl("validate", root=root).exit_code == 0
    synced = cpctl("sync", root=root)
    assert synced.exit_code == 0, synced.stderr
    view = json.loads((root / "registries" / "compiled" / "registry.json").read_text())
    assert view["schema"] == "control-plane.compiled/2"
    assert [p["card_id"] for p in view["packages"] if p["id"] == PACKAGE] == [card]
    report = cpctl("integrity-check", "--json", root=root).json()
    assert not [path for path in report["orphans"] if path.startswith("modules/")]
    assert not report["mismatched"] and not report["missing"]


def test_caches_are_not_packed_and_a_spec_version_bump_is_an_update(
    root: Path, cpctl: CliFn, card: str, demo: Path
) -> None:
    write(demo / "src" / "__pycache__" / "handler.cpython-311.pyc", b"\x00stale")
    write(demo / "tests" / ".pytest_cache" / "README.md", "cache\n")
    assert cpctl("plugin", "pack", "demo", root=root).exit_code == 0
    names = members(root / ARCHIVE)
    assert not [name for name in names if "__pycache__" in name or ".pytest_cache" in name]
    assert cpctl("install", "--id", PACKAGE, root=root).exit_code == 0

    spec = demo / "plugin.spec.json"
    document = json.loads(spec.read_text(encoding="utf-8"))
    document["version"] = "0.2.0"
    spec.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    stale = cpctl("plugin", "pack", "demo", root=root)
    assert stale.exit_code == 1 and "generated-drift" in stale.stderr  # build first
    assert cpctl("plugin", "build", "demo", root=root).exit_code == 0
    repacked = cpctl("plugin", "pack", "demo", "--json", root=root)
    assert repacked.exit_code == 0, repacked.stderr
    assert (repacked.json()["version"], repacked.json()["card_id"]) == ("0.2.0", card)
    updated = cpctl("update", "--id", PACKAGE, root=root)
    assert updated.exit_code == 0, updated.stderr
    assert registry_rows(root)[PACKAGE]["installed_version"] == "0.2.0"


def test_a_plugin_without_a_card_is_refused(root: Path, cpctl: CliFn, demo: Path) -> None:
    before = snapshot(root)
    outcome = cpctl("plugin", "pack", "demo", root=root)
    assert_refused(outcome, 2, before, root, "no identity card", "ids mint --kind plugin")


def test_a_plugin_with_findings_is_refused(root: Path, cpctl: CliFn, card: str, demo: Path) -> None:
    manifest = demo / "manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace('"0.1.0"', '"9.9.9"', 1))
    before = snapshot(root)
    outcome = cpctl("plugin", "pack", "demo", root=root)
    assert_refused(outcome, 1, before, root, "nothing packed", "plugin validate demo")


@pytest.mark.parametrize(
    ("key", "words"),
    [("ghost", ("no plugin ghost",)), ("Bad-Key", ("Bad-Key",))],
    ids=["missing", "bad-key"],
)
def test_an_unknown_or_invalid_plugin_is_refused(
    root: Path, cpctl: CliFn, card: str, key: str, words: tuple[str, ...]
) -> None:
    before = snapshot(root)
    assert_refused(cpctl("plugin", "pack", key, root=root), 2, before, root, *words)


def test_a_modified_card_is_not_recorded(root: Path, cpctl: CliFn, card: str) -> None:
    path = root / "ids" / "cards" / f"{card}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("kind: plugin", "kind: module"))
    before = snapshot(root)
    outcome = cpctl("plugin", "pack", "demo", root=root)
    assert_refused(outcome, 1, before, root, "cannot be recorded", "card-modified")
    generic = cpctl("pack", "--src", "plugins/demo", "--id", "PKG-X", root=root, cwd=root)
    assert_refused(generic, 1, before, root, "cannot be recorded")


def test_two_cards_for_the_plugin_are_not_recorded(root: Path, cpctl: CliFn, card: str) -> None:
    first = root / "ids" / "cards" / f"{card}.yaml"
    other = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    text = first.read_text(encoding="utf-8").replace(card, other)
    (root / "ids" / "cards" / f"{other}.yaml").write_text(text, encoding="utf-8")
    before = snapshot(root)
    outcome = cpctl("plugin", "pack", "demo", root=root)
    assert_refused(outcome, 1, before, root, "cannot be recorded", other)


def test_plugin_pack_needs_the_pack_action(root: Path, cpctl: CliFn, card: str) -> None:
    from control_plane.auth import mint_hmac_token

    secret = "correct horse battery staple 0123456789"
    config = root / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    config.write_text(text.replace("[authz.users]\n", '[authz.users]\nrita = "reader"\n'))
    env = {"CONTROL_PLANE_SHARED_SECRET": secret}
    before = snapshot(root, include_ledger=False)
    token = mint_hmac_token(secret.encode(), "rita")
    denied = cpctl("--token", token, "plugin", "pack", "demo", root=root, env=env)
    assert denied.exit_code == 3, denied.stderr
    assert snapshot(root, include_ledger=False) == before
    assert ledger_entries(root)[-1]["result"] == "denied"


# -- pack --card and the card_id column ----------------------------------------------------


def test_pack_records_the_card_of_a_source(root: Path, cpctl: CliFn, card: str) -> None:
    write(root / "docs" / "guide.md", "# Guide\n")
    plain = cpctl("pack", "--src", "docs", "--id", "PKG-DOCS", "--json", root=root, cwd=root)
    assert plain.exit_code == 0 and plain.json()["card_id"] is None
    assert registry_rows(root)["PKG-DOCS"]["card_id"] == ""
    carded = cpctl(
        "pack", "--src", "plugins/demo", "--src", "docs", "--id", "PKG-BOTH", "--json",
        root=root, cwd=root,
    )  # fmt: skip
    assert carded.exit_code == 0, carded.stderr
    assert carded.json()["card_id"] == card
    assert (
        "identity card " + card
        in cpctl("pack", "--src", "plugins/demo", "--id", "PKG-BOTH", root=root, cwd=root).stdout
    )


def test_pack_card_names_one_inside_the_sources(root: Path, cpctl: CliFn, card: str) -> None:
    inner = mint(cpctl, root, "plugins/demo/src/handler.py", kind="source")
    write(root / "docs" / "guide.md", "# Guide\n")
    docs_card = mint(cpctl, root, "docs", kind="document")
    both = ("pack", "--src", "plugins/demo", "--src", "docs", "--id", "PKG-BOTH")
    before = snapshot(root)
    ambiguous = cpctl(*both, root=root, cwd=root)
    assert_refused(ambiguous, 2, before, root, "several sources have identity cards", "--card")
    chosen = cpctl(*both, "--card", docs_card, "--json", root=root, cwd=root)
    assert chosen.exit_code == 0, chosen.stderr
    assert chosen.json()["card_id"] == docs_card
    nested = cpctl(
        "pack", "--src", "plugins/demo", "--id", "PKG-DEMO", "--card", inner, "--json",
        root=root, cwd=root,
    )  # fmt: skip
    assert nested.exit_code == 0 and nested.json()["card_id"] == inner


@pytest.mark.parametrize(
    ("card_arg", "words"),
    [
        ("not-a-ulid", ("--card", "not a ULID")),
        (
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            ("no identity card", "ids/cards/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        ),
        (None, ("does not contain",)),
    ],
    ids=["malformed", "unknown", "outside-the-sources"],
)
def test_pack_card_refusals_write_nothing(
    root: Path, cpctl: CliFn, card: str, card_arg: str | None, words: tuple[str, ...]
) -> None:
    write(root / "docs" / "guide.md", "# Guide\n")
    before = snapshot(root)
    chosen = card if card_arg is None else card_arg
    outcome = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--card", chosen, root=root, cwd=root
    )
    assert_refused(outcome, 2, before, root, *words)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "card-unknown"),
        ("01arz3ndektsv4rrffq69g5fav", "card-id-format"),
    ],
    ids=["unknown", "lower-case"],
)
def test_validate_checks_the_card_id_column(
    root: Path, cpctl: CliFn, card: str, value: str, rule: str
) -> None:
    assert cpctl("plugin", "pack", "demo", root=root).exit_code == 0
    assert cpctl("validate", root=root).exit_code == 0
    path = root / "registries" / "packages_registry.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(card, value))
    outcome = cpctl("validate", "--json", root=root)
    assert outcome.exit_code == 1
    assert rule in [finding["rule"] for finding in outcome.json()["findings"]]
