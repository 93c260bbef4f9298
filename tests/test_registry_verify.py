"""registry verify: --threshold (stricter only) and the version checks against the last
accepted manifest (rollback, fast-forward, a forked version), read-only; and the paths the
registry commands print (root-relative inside the root, absolute outside it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import test_registry_manifest as manifest_tests
from tests.conftest import CliFn, Outcome, assert_refused, ledger_entries, snapshot, write
from tests.test_registry_manifest import MANIFEST, KeyMaker, export, install, set_policy

make_key = manifest_tests.make_key  # fixtures: a private key maker, a signed root
signed = manifest_tests.signed


def verify(cpctl: CliFn, root: Path, *args: str, manifest: str = MANIFEST) -> Outcome:
    return cpctl("registry", "verify", manifest, *args, root=root, cwd=root)


def verified(cpctl: CliFn, root: Path, *args: str, manifest: str = MANIFEST) -> dict:
    """A successful ``registry verify --json`` that wrote nothing; its document."""
    before = snapshot(root)
    outcome = verify(cpctl, root, *args, "--json", manifest=manifest)
    assert outcome.exit_code == 0, outcome.stderr
    assert snapshot(root) == before
    return outcome.json()


def refused(cpctl: CliFn, root: Path, code: int, *words: str, args: tuple[str, ...] = (), **kw):
    """``registry verify`` refuses with ``code`` naming ``words`` and writes nothing (no
    ledgered rejection either: verify is read-only)."""
    before = snapshot(root)
    outcome = verify(cpctl, root, *args, **kw)
    assert_refused(outcome, code, before, root, *words, rejection=False)


def add_package(cpctl: CliFn, root: Path, package_id: str = "PKG-B") -> None:
    write(root / "extra" / "b.txt", "b\n")
    outcome = cpctl("pack", "--src", "extra", "--id", package_id, root=root, cwd=root)
    assert outcome.exit_code == 0, outcome.stderr
    shutil.rmtree(root / "extra")


def alpha(root: Path) -> str:
    return str(root.parent / "private" / "alpha.key")


# -- --threshold ------------------------------------------------------------------------------


def test_a_raised_threshold_passes_when_enough_keys_signed(
    signed: Path, cpctl: CliFn, make_key: KeyMaker
) -> None:
    beta = make_key("beta", trust_in=signed)
    assert (
        cpctl("registry", "sign", MANIFEST, "--key", str(beta), root=signed, cwd=signed).exit_code
        == 0
    )
    document = verified(cpctl, signed, "--threshold", "2")
    assert document["threshold"] == 2 and len(document["signers"]) == 2
    assert verified(cpctl, signed)["threshold"] == 1  # the policy's, without --threshold


def test_a_raised_threshold_fails_when_too_few_keys_signed(signed: Path, cpctl: CliFn) -> None:
    refused(
        cpctl,
        signed,
        5,
        "signed by 1 distinct trusted key(s); --threshold requires 2",
        args=("--threshold", "2"),
    )


def test_a_threshold_equal_to_the_policy_is_accepted(signed: Path, cpctl: CliFn) -> None:
    assert verified(cpctl, signed, "--threshold", "1")["threshold"] == 1


def test_a_threshold_below_the_policy_is_a_usage_error(
    signed: Path, cpctl: CliFn, make_key: KeyMaker
) -> None:
    set_policy(signed, manifest_threshold=2)
    refused(
        cpctl,
        signed,
        2,
        "--threshold 1 is below policy.manifest_threshold (2)",
        args=("--threshold", "1"),
    )
    before = snapshot(signed)
    outcome = verify(cpctl, signed, "--threshold", "1", "--json")
    assert outcome.exit_code == 2 and outcome.json()["error"]["kind"] == "UsageError"
    assert snapshot(signed) == before


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_threshold_that_is_not_a_positive_integer_is_a_usage_error(
    signed: Path, cpctl: CliFn, value: str
) -> None:
    refused(cpctl, signed, 2, "--threshold", args=("--threshold", value, "--json"))


# -- the version against the last accepted manifest ----------------------------------------------


def test_the_accepted_manifest_still_verifies_after_install(signed: Path, cpctl: CliFn) -> None:
    assert verified(cpctl, signed)["last_accepted"] == 0
    assert install(cpctl, signed).exit_code == 0
    document = verified(cpctl, signed)
    assert document["version"] == 1 and document["last_accepted"] == 1
    text = verify(cpctl, signed)
    assert text.exit_code == 0 and "last accepted version 1" in text.stdout


def test_an_older_manifest_than_the_accepted_one_is_refused(signed: Path, cpctl: CliFn) -> None:
    add_package(cpctl, signed)
    export(cpctl, signed, "--out", "v2.json", "--sign", alpha(signed))
    export(cpctl, signed, "--out", "v3.json", "--sign", alpha(signed))
    assert verified(cpctl, signed, manifest="v2.json")["last_accepted"] == 0
    assert install(cpctl, signed, manifest="v3.json").exit_code == 0
    refused(
        cpctl,
        signed,
        5,
        "version 2 is older than the last accepted 3; refusing a rollback",
        manifest="v2.json",
    )
    assert verified(cpctl, signed, manifest="v3.json")["last_accepted"] == 3


def test_the_accepted_version_with_other_bytes_is_refused(signed: Path, cpctl: CliFn) -> None:
    assert install(cpctl, signed).exit_code == 0
    add_package(cpctl, signed)
    export(cpctl, signed, "--version", "1", "--out", "fork.json", "--sign", alpha(signed))
    refused(
        cpctl,
        signed,
        5,
        "version 1 was already accepted with other contents",
        args=("--json",),
        manifest="fork.json",
    )


def test_an_implausible_version_jump_is_refused(signed: Path, cpctl: CliFn) -> None:
    set_policy(signed, max_manifest_version_jump=10)
    export(cpctl, signed, "--version", "11", "--sign", alpha(signed))
    refused(cpctl, signed, 5, "refusing a fast-forward")


# -- paths in results ----------------------------------------------------------------------------


def test_export_and_sign_print_root_relative_paths_inside_the_root(
    signed: Path, cpctl: CliFn, make_key: KeyMaker, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    document = export(cpctl, signed, "--sign", alpha(signed))
    assert document["path"] == MANIFEST
    assert document["signatures_path"] == MANIFEST + ".sigs"
    assert ledger_entries(signed)[-1]["details"]["path"] == MANIFEST
    # --out is relative to the working directory; the result is relative to the root
    out = str(signed / "sub" / "m.json")
    (signed / "sub").mkdir()
    moved = cpctl("registry", "export", "--out", out, "--json", root=signed, cwd=outside)
    assert moved.exit_code == 0, moved.stderr
    assert moved.json()["path"] == "sub/m.json" and moved.json()["signatures_path"] is None
    beta = str(make_key("beta", trust_in=signed))
    sign = cpctl("registry", "sign", out, "--key", beta, "--json", root=signed, cwd=outside)
    assert sign.exit_code == 0, sign.stderr
    assert (sign.json()["path"], sign.json()["signatures_path"]) == (
        "sub/m.json",
        "sub/m.json.sigs",
    )
    checked = cpctl("registry", "verify", out, "--json", root=signed, cwd=outside)
    assert checked.exit_code == 0, checked.stderr
    assert checked.json()["path"] == "sub/m.json"


def test_export_and_sign_print_absolute_paths_outside_the_root(
    signed: Path, cpctl: CliFn, make_key: KeyMaker, tmp_path: Path
) -> None:
    target = tmp_path / "published" / "m.json"
    target.parent.mkdir()
    document = export(cpctl, signed, "--out", "../published/m.json", "--sign", alpha(signed))
    assert document["path"] == str(target.resolve())
    assert document["signatures_path"] == str(target.resolve()) + ".sigs"
    beta = str(make_key("beta", trust_in=signed))
    sign = cpctl("registry", "sign", str(target), "--key", beta, "--json", root=signed, cwd=signed)
    assert sign.exit_code == 0, sign.stderr
    assert sign.json()["path"] == str(target.resolve())
    assert sign.json()["signatures_path"] == str(target.resolve()) + ".sigs"
    checked = cpctl("registry", "verify", "../published/m.json", "--json", root=signed, cwd=signed)
    assert checked.exit_code == 0, checked.stderr
    assert checked.json()["path"] == str(target.resolve())
