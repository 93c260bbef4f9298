"""Trust tiers and deprecation through the CLI: each tier against each role, with and without
the allow flags; dependencies obey the same rules; every refusal writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import CliFn, Outcome, assert_rejection_ledgered, ledger_entries, snapshot, write

from control_plane.auth import mint_hmac_token
from control_plane.registry import (
    LEGACY_PACKAGE_COLUMNS,
    LEGACY_PACKAGE_HEADERS,
    PACKAGE_COLUMNS,
    Tier,
    parse_packages,
)

SECRET = "correct horse battery staple 0123456789"
USERS = {"alice": "admin", "mona": "maintainer"}
ALLOW_ALL = ("--allow-experimental", "--allow-deprecated", "--allow-downgrade")


def packages_of(root: Path) -> dict:
    data = (root / "registries/packages_registry.csv").read_bytes()
    return {row.id: row for row in parse_packages(data).require_clean()}


def pack(root: Path, cpctl: CliFn, package_id: str, *args: str, version: str = "1.0.0") -> None:
    name = package_id.lower()
    write(root / name / "file.txt", f"{package_id} {version}\n")
    outcome = cpctl(
        "pack", "--src", name, "--id", package_id, "--version", version, *args,
        root=root, cwd=root,
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.stderr
    shutil.rmtree(root / name)


def use_hmac(root: Path) -> None:
    config = root / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    users = "".join(f'{user} = "{role}"\n' for user, role in USERS.items())
    config.write_text(text.replace("[authz.users]\n", "[authz.users]\n" + users))


@pytest.fixture
def tiered(root: Path, cpctl: CliFn) -> Path:
    """One package per tier, a deprecated one, and verified apps depending on each risky kind."""
    for tier in Tier:
        pack(root, cpctl, f"PKG-{tier.value.upper()}", "--tier", tier.value)
    pack(root, cpctl, "PKG-OLD", "--tier", "verified")
    assert (
        cpctl("deprecate", "--id", "PKG-OLD", "--replacement", "PKG-VERIFIED", root=root).exit_code
        == 0
    )
    for kind, dep in (("EXP", "PKG-EXPERIMENTAL"), ("UNT", "PKG-UNTRUSTED"), ("OLD", "PKG-OLD")):
        pack(root, cpctl, f"PKG-APP-{kind}", "--tier", "verified", "--depends", dep)
    use_hmac(root)
    return root


def run_as(cpctl: CliFn, root: Path, user: str, *args: str) -> Outcome:
    token = mint_hmac_token(SECRET.encode(), user)
    env = {"CONTROL_PLANE_SHARED_SECRET": SECRET}
    return cpctl("--token", token, *args, root=root, env=env, cwd=root)


def installed(root: Path, package_id: str) -> bool:
    return packages_of(root)[package_id].installed_digest is not None


# (tier package, role, flags) -> expected exit code; 0 means installed.
CASES = [
    ("PKG-VERIFIED", "alice", (), 0),
    ("PKG-VERIFIED", "mona", (), 0),
    ("PKG-COMMUNITY", "alice", (), 0),
    ("PKG-COMMUNITY", "mona", (), 0),
    ("PKG-EXPERIMENTAL", "alice", (), 5),
    ("PKG-EXPERIMENTAL", "mona", (), 5),
    ("PKG-EXPERIMENTAL", "alice", ("--allow-experimental",), 0),
    ("PKG-EXPERIMENTAL", "mona", ("--allow-experimental",), 3),
    ("PKG-UNTRUSTED", "alice", (), 5),
    ("PKG-UNTRUSTED", "mona", (), 5),
    ("PKG-UNTRUSTED", "alice", ALLOW_ALL, 5),
    ("PKG-UNTRUSTED", "mona", ALLOW_ALL, 3),
    ("PKG-OLD", "alice", (), 5),
    ("PKG-OLD", "mona", (), 5),
    ("PKG-OLD", "alice", ("--allow-deprecated",), 0),
    ("PKG-OLD", "mona", ("--allow-deprecated",), 3),
    ("PKG-VERIFIED", "mona", ("--allow-downgrade",), 3),
]


@pytest.mark.parametrize(
    ("package_id", "user", "flags", "code"),
    CASES,
    ids=[f"{p.removeprefix('PKG-').lower()}-{u}-{'+'.join(f) or 'none'}" for p, u, f, _ in CASES],
)
def test_tier_by_role(  # noqa: PLR0917 -- one parameter per column of CASES
    tiered: Path, cpctl: CliFn, package_id: str, user: str, flags: tuple[str, ...], code: int
) -> None:
    before = snapshot(tiered)
    before_outside_ledger = snapshot(tiered, include_ledger=False)
    entries = len(ledger_entries(tiered))
    outcome = run_as(cpctl, tiered, user, "install", "--id", package_id, *flags, "--json")
    assert outcome.exit_code == code, outcome.stderr
    if code == 0:
        assert installed(tiered, package_id)
        warnings = outcome.json()["warnings"]
        community = [w for w in warnings if "community package" in w]
        assert bool(community) == (package_id == "PKG-COMMUNITY"), warnings
        if flags:
            assert any(flag in " ".join(warnings) for flag in flags), warnings
        else:
            tier_notes = [w for w in warnings if w.startswith(package_id) and " is " in w]
            assert package_id != "PKG-VERIFIED" or tier_notes == [], warnings  # quietly
        return
    assert len(outcome.stderr.strip().splitlines()) <= 2, outcome.stderr  # the line + a hint
    if code == 3:
        # The denial is ledgered; nothing else is written.
        assert snapshot(tiered, include_ledger=False) == before_outside_ledger
        denial = ledger_entries(tiered)[-1]
        assert len(ledger_entries(tiered)) == entries + 1
        assert denial["result"] == "denied" and denial["action"] == "override"
        assert denial["actor"] == "mona" and "--allow-" in denial["details"]["reason"]
        assert "override" in outcome.stderr
        return
    assert assert_rejection_ledgered(tiered, before)["target"] == package_id
    assert (
        package_id.removeprefix("PKG-").lower() in outcome.stderr or "deprecated" in outcome.stderr
    )


def test_deprecated_refusal_names_the_replacement(tiered: Path, cpctl: CliFn) -> None:
    outcome = run_as(cpctl, tiered, "alice", "install", "--id", "PKG-OLD")
    assert outcome.exit_code == 5
    assert "PKG-OLD is deprecated; use PKG-VERIFIED instead" in outcome.stderr
    assert "cpctl install --id PKG-VERIFIED" in outcome.stderr


def test_untrusted_message_says_never(tiered: Path, cpctl: CliFn) -> None:
    outcome = run_as(cpctl, tiered, "alice", "install", "--id", "PKG-UNTRUSTED", *ALLOW_ALL)
    assert outcome.exit_code == 5
    assert "untrusted tier and is never installed" in outcome.stderr


@pytest.mark.parametrize(
    ("app", "flag", "culprit"),
    [
        ("PKG-APP-EXP", "--allow-experimental", "PKG-EXPERIMENTAL"),
        ("PKG-APP-OLD", "--allow-deprecated", "PKG-OLD"),
    ],
    ids=["experimental-dependency", "deprecated-dependency"],
)
def test_dependencies_obey_the_tier_rules(
    tiered: Path, cpctl: CliFn, app: str, flag: str, culprit: str
) -> None:
    before = snapshot(tiered)
    refused = run_as(cpctl, tiered, "alice", "install", "--id", app)
    assert refused.exit_code == 5 and culprit in refused.stderr
    assert_rejection_ledgered(tiered, before)
    denied = run_as(cpctl, tiered, "mona", "install", "--id", app, flag)
    assert denied.exit_code == 3
    allowed = run_as(cpctl, tiered, "alice", "install", "--id", app, flag)
    assert allowed.exit_code == 0, allowed.stderr
    assert installed(tiered, app) and installed(tiered, culprit)


def test_untrusted_dependency_is_never_installed(tiered: Path, cpctl: CliFn) -> None:
    before = snapshot(tiered)
    outcome = run_as(cpctl, tiered, "alice", "install", "--id", "PKG-APP-UNT", *ALLOW_ALL)
    assert outcome.exit_code == 5 and "PKG-UNTRUSTED" in outcome.stderr
    assert "PKG-UNTRUSTED" in assert_rejection_ledgered(tiered, before)["details"]["reason"]


def test_dry_run_is_refused_the_same_way(tiered: Path, cpctl: CliFn) -> None:
    outcome = run_as(cpctl, tiered, "mona", "install", "--id", "PKG-EXPERIMENTAL", "--dry-run")
    assert outcome.exit_code == 5


def test_an_admin_override_is_a_notice_and_in_the_ledger(tiered: Path, cpctl: CliFn) -> None:
    flags = ("--allow-experimental", "--allow-deprecated")
    outcome = run_as(cpctl, tiered, "alice", "install", "--id", "PKG-EXPERIMENTAL", *flags)
    assert outcome.exit_code == 0
    assert "experimental, installed because of --allow-experimental" in outcome.stderr
    entry = ledger_entries(tiered)[-1]
    assert entry["actor"] == "alice" and entry["action"] == "install"
    assert entry["details"]["overrides"] == list(flags)
    assert run_as(cpctl, tiered, "alice", "install", "--id", "PKG-VERIFIED").exit_code == 0
    assert "overrides" not in ledger_entries(tiered)[-1]["details"]


# -- choosing tiers ---------------------------------------------------------------


def test_pack_defaults_to_community_and_keeps_the_tier_on_repack(root: Path, cpctl: CliFn) -> None:
    pack(root, cpctl, "PKG-NEW")
    assert packages_of(root)["PKG-NEW"].tier is Tier.COMMUNITY
    pack(root, cpctl, "PKG-NEW", "--tier", "experimental")
    pack(root, cpctl, "PKG-NEW", version="1.1.0")
    assert packages_of(root)["PKG-NEW"].tier is Tier.EXPERIMENTAL


@pytest.mark.parametrize("tier", ["verified", "community"])
def test_a_maintainer_may_not_vouch_for_a_package(root: Path, cpctl: CliFn, tier: str) -> None:
    use_hmac(root)
    write(root / "src" / "x" / "file.txt", "x\n")
    before = snapshot(root, include_ledger=False)
    outcome = run_as(cpctl, root, "mona", "pack", "--src", "src/x", "--id", "PKG-X", "--tier", tier)
    assert outcome.exit_code == 3, outcome.stderr
    assert snapshot(root, include_ledger=False) == before
    denial = ledger_entries(root)[-1]
    assert denial["result"] == "denied" and denial["action"] == "override"
    assert f"--tier {tier}" in denial["details"]["reason"]


@pytest.mark.parametrize("tier", ["experimental", "untrusted"])
def test_a_maintainer_may_lower_trust(root: Path, cpctl: CliFn, tier: str) -> None:
    use_hmac(root)
    write(root / "src" / "x" / "file.txt", "x\n")
    outcome = run_as(cpctl, root, "mona", "pack", "--src", "src/x", "--id", "PKG-X", "--tier", tier)
    assert outcome.exit_code == 0, outcome.stderr
    assert packages_of(root)["PKG-X"].tier is Tier(tier)


def test_create_takes_a_tier(root: Path, cpctl: CliFn) -> None:
    pack(root, cpctl, "PKG-A")
    outcome = cpctl(
        "create", "--archive", "packages_store/pkg-a.tar.gz", "--id", "PKG-A", "--force",
        "--tier", "experimental", root=root, cwd=root,
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.stderr
    assert packages_of(root)["PKG-A"].tier is Tier.EXPERIMENTAL


def test_unknown_tier_is_a_usage_error(root: Path, cpctl: CliFn) -> None:
    write(root / "src" / "x" / "file.txt", "x\n")
    before = snapshot(root)
    outcome = cpctl(
        "pack", "--src", "src/x", "--id", "PKG-X", "--tier", "gold", root=root, cwd=root
    )
    assert outcome.exit_code == 2
    assert snapshot(root) == before


# -- deprecate --------------------------------------------------------------------


def test_deprecate_and_undo_are_ledgered_transactions(root: Path, cpctl: CliFn) -> None:
    pack(root, cpctl, "PKG-A")
    pack(root, cpctl, "PKG-B")
    done = cpctl("deprecate", "--id", "PKG-A", "--replacement", "PKG-B", "--json", root=root)
    assert done.exit_code == 0, done.stderr
    assert done.json()["schema"] == "control-plane.deprecate/1"
    assert done.json()["replacement"] == "PKG-B" and done.json()["changed"] is True
    row = packages_of(root)["PKG-A"]
    assert row.deprecated and row.replacement == "PKG-B"
    entry = ledger_entries(root)[-1]
    assert entry["action"] == "deprecate" and entry["target"] == "PKG-A" and entry["txn"]
    assert entry["details"]["replacement"] == "PKG-B"
    before = snapshot(root)
    again = cpctl("deprecate", "--id", "PKG-A", "--replacement", "PKG-B", root=root)
    assert again.exit_code == 0 and "unchanged" in again.stdout
    assert snapshot(root) == before
    undone = cpctl("deprecate", "--id", "PKG-A", "--undo", root=root)
    assert undone.exit_code == 0 and "is not deprecated" in undone.stdout
    row = packages_of(root)["PKG-A"]
    assert not row.deprecated and row.replacement == ""
    assert cpctl("install", "--id", "PKG-A", root=root).exit_code == 0


def test_repacking_keeps_the_deprecation(root: Path, cpctl: CliFn) -> None:
    pack(root, cpctl, "PKG-A")
    assert cpctl("deprecate", "--id", "PKG-A", root=root).exit_code == 0
    pack(root, cpctl, "PKG-A", version="1.0.1")
    assert packages_of(root)["PKG-A"].deprecated
    outcome = cpctl("install", "--id", "PKG-A", root=root)
    assert outcome.exit_code == 5 and "no replacement named" in outcome.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--id", "PKG-NOPE"), "unknown package PKG-NOPE"),
        (("--id", "PKG-A", "--replacement", "PKG-NOPE"), "unknown replacement PKG-NOPE"),
        (("--id", "PKG-A", "--replacement", "PKG-A"), "cannot replace itself"),
        (("--id", "PKG-A", "--replacement", "bad id"), "invalid"),
        (("--id", "PKG-A", "--replacement", "PKG-B", "--undo"), "--undo takes no --replacement"),
        (("--id", "PKG-A", "--replacement", "PKG-C"), "itself deprecated"),
    ],
    ids=["unknown", "unknown-replacement", "self", "bad-replacement", "undo-with", "chain"],
)
def test_deprecate_refusals_write_nothing(
    root: Path, cpctl: CliFn, args: tuple[str, ...], message: str
) -> None:
    for package_id in ("PKG-A", "PKG-B", "PKG-C"):
        pack(root, cpctl, package_id)
    assert cpctl("deprecate", "--id", "PKG-C", root=root).exit_code == 0
    before = snapshot(root)
    outcome = cpctl("deprecate", *args, root=root)
    assert outcome.exit_code == 2, outcome.stderr
    assert message in outcome.stderr
    assert snapshot(root) == before


# -- the registry columns ---------------------------------------------------------


def _as_legacy(root: Path, header: tuple[str, ...] = LEGACY_PACKAGE_COLUMNS) -> None:
    """Rewrite the package registry under an older ``header`` (default: before deprecation)."""
    path = root / "registries/packages_registry.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(PACKAGE_COLUMNS)
    drop = {i for i, name in enumerate(PACKAGE_COLUMNS) if name not in header}
    kept = [",".join(f for i, f in enumerate(line.split(",")) if i not in drop) for line in lines]
    assert kept[0] == ",".join(header)
    path.write_text("".join(line + "\n" for line in kept))


def test_validate_reports_a_replacement_that_is_not_registered(packed: Path, cpctl: CliFn) -> None:
    path = packed / "registries/packages_registry.csv"
    path.write_text(path.read_text().replace(",false,,", ",true,PKG-GONE,"))
    outcome = cpctl("validate", "--json", root=packed)
    assert outcome.exit_code == 1
    [finding] = outcome.json()["findings"]
    assert finding["rule"] == "replacement-unknown" and "PKG-GONE" in finding["message"]


@pytest.mark.parametrize(
    "header", LEGACY_PACKAGE_HEADERS, ids=["before-deprecation", "before-card-ids"]
)
def test_a_legacy_registry_still_reads_and_is_rewritten_in_the_new_form(
    packed: Path, cpctl: CliFn, header: tuple[str, ...]
) -> None:
    _as_legacy(packed, header)
    assert cpctl("validate", root=packed).exit_code == 0
    row = packages_of(packed)["PKG-DOCS"]
    assert not row.deprecated and row.replacement == "" and row.card_id == ""
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    header = (packed / "registries/packages_registry.csv").read_text().splitlines()[0]
    assert header == ",".join(PACKAGE_COLUMNS)


def test_a_legacy_row_without_a_tier_is_community(packed: Path, cpctl: CliFn) -> None:
    _as_legacy(packed)
    path = packed / "registries/packages_registry.csv"
    path.write_text(path.read_text().replace(",community,", ",,"))
    assert packages_of(packed)["PKG-DOCS"].tier is Tier.COMMUNITY
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 0 and "community package" in outcome.stderr


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        ((",false,,", ",yes,,"), "deprecated"),
        ((",false,,", ",true,not an id,"), "replacement"),
        ((",false,,", ",false,PKG-OTHER,"), "replacement"),
        ((",false,,", ",true,PKG-DOCS,"), "replacement"),
        ((",community,", ",gold,"), "tier"),
    ],
    ids=["deprecated-value", "replacement-format", "replacement-not-deprecated", "self", "tier"],
)
def test_validate_checks_the_trust_columns(
    packed: Path, cpctl: CliFn, edit: tuple[str, str], rule: str
) -> None:
    path = packed / "registries/packages_registry.csv"
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(*edit))
    before = snapshot(packed)
    outcome = cpctl("validate", "--json", root=packed)
    assert outcome.exit_code == 1
    assert rule in {finding["rule"] for finding in outcome.json()["findings"]}
    install = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert install.exit_code == 2
    assert snapshot(packed) == before


def test_locked_install_takes_no_allow_flags(packed: Path, cpctl: CliFn) -> None:
    before = snapshot(packed)
    outcome = cpctl("install", "--locked", "--allow-experimental", root=packed)
    assert outcome.exit_code == 2 and "--allow-*" in outcome.stderr
    assert snapshot(packed) == before
