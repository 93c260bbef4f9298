"""The seed workflow end to end through the CLI: init, pack, install, update, remove, sync, validate."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from conftest import CliFn, run_module, snapshot, write

from control_plane.registry import parse_files, parse_packages


def packages_of(root: Path) -> dict:
    rows = parse_packages((root / "registries/packages_registry.csv").read_bytes()).require_clean()
    return {row.id: row for row in rows}


def files_of(root: Path) -> dict:
    rows = parse_files(
        (root / "registries/control_plane_registry.csv").read_bytes()
    ).require_clean()
    return {row.path: row for row in rows}


def test_init_is_idempotent_and_never_clobbers(root: Path, cpctl: CliFn) -> None:
    config = root / "control_plane.toml"
    config.write_text(config.read_text() + "\n# my edit\n")
    before = snapshot(root)
    outcome = cpctl("init", "--json", root=root)
    assert outcome.exit_code == 0
    assert outcome.json()["created"] == []
    assert snapshot(root) == before


def test_a_fresh_root_validates_and_checks_clean(root: Path, cpctl: CliFn) -> None:
    assert cpctl("validate", root=root).exit_code == 0
    report = cpctl("integrity-check", "--json", root=root).json()
    assert report["ok"] is True
    assert report["orphans"] == [] and report["mismatched"] == [] and report["missing"] == []


def test_pack_writes_archive_sidecar_and_row(packed: Path) -> None:
    store = packed / "packages_store"
    assert (store / "docs.tar.gz").is_file()
    check = subprocess.run(
        ["sha256sum", "-c", "docs.tar.gz.sha256"],
        cwd=store,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    row = packages_of(packed)["PKG-DOCS"]
    assert row.source == "packages_store/docs.tar.gz"
    assert row.source_type.value == "tar"
    assert row.digest.startswith("sha256:")
    with tarfile.open(store / "docs.tar.gz") as archive:
        assert archive.getnames() == ["docs", "docs/guide.md", "docs/sub", "docs/sub/notes.txt"]


def test_pack_is_deterministic_across_mtimes_and_modes(
    root: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    import os

    source = write(root / "a" / "x.txt", "same\n")
    assert cpctl("pack", "--src", "a", "--id", "PKG-A", root=root, cwd=root).exit_code == 0
    first = (root / "packages_store/a.tar.gz").read_bytes()
    os.utime(source, (1, 1))
    os.chmod(source, 0o600)
    assert cpctl("pack", "--src", "a", "--id", "PKG-A", root=root, cwd=root).exit_code == 0
    assert (root / "packages_store/a.tar.gz").read_bytes() == first


def test_install_writes_files_registers_them_and_checks_clean(packed: Path, cpctl: CliFn) -> None:
    outcome = cpctl("install", "--id", "PKG-DOCS", "--json", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    change = outcome.json()["packages"][0]
    assert change["status"] == "installed"
    assert sorted(change["written"]) == ["docs/guide.md", "docs/sub/notes.txt"]
    assert (packed / "docs/guide.md").read_text() == "# Guide\n"
    files = files_of(packed)
    assert files["docs/guide.md"].owner == "PKG-DOCS"
    row = packages_of(packed)["PKG-DOCS"]
    assert row.installed_digest == row.digest
    report = cpctl("integrity-check", "--json", root=packed).json()
    assert report["ok"] is True, report
    assert report["checked"] >= 2
    assert cpctl("ledger", "verify", root=packed).exit_code == 0


def test_reinstalling_the_same_digest_is_a_noop(packed: Path, cpctl: CliFn) -> None:
    assert cpctl("install", "--id", "PKG-DOCS", root=packed).exit_code == 0
    before = snapshot(packed)
    outcome = cpctl("install", "--id", "PKG-DOCS", "--json", root=packed)
    assert outcome.exit_code == 0
    assert outcome.json()["packages"][0]["status"] == "unchanged"
    assert snapshot(packed) == before


def test_install_by_archive_path(packed: Path, cpctl: CliFn) -> None:
    outcome = cpctl("install", "--archive", "packages_store/docs.tar.gz", root=packed, cwd=packed)
    assert outcome.exit_code == 0, outcome.stderr
    assert (packed / "docs/sub/notes.txt").exists()


def test_registry_sources_resolve_against_the_root_not_the_working_directory(
    packed: Path, tmp_path: Path, cpctl: CliFn
) -> None:
    # The caller stands in another root whose store holds an archive of the same name.
    other = tmp_path / "other"
    assert cpctl("init", root=other).exit_code == 0
    write(other / "packages_store" / "docs.tar.gz", b"not this one")
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed, cwd=other)
    assert outcome.exit_code == 0, outcome.stderr
    assert (packed / "docs/guide.md").read_text() == "# Guide\n"


def test_dry_run_plans_without_writing(packed: Path, cpctl: CliFn) -> None:
    before = snapshot(packed)
    outcome = cpctl("install", "--id", "PKG-DOCS", "--dry-run", "--json", root=packed)
    assert outcome.exit_code == 0
    assert outcome.json()["packages"][0]["status"] == "planned"
    assert snapshot(packed) == before


def test_identical_unowned_file_is_adopted_not_a_conflict(root: Path, cpctl: CliFn) -> None:
    write(root / "frameworks" / "f.md", "text\n")
    assert (
        cpctl("pack", "--src", "frameworks/f.md", "--id", "PKG-F", root=root, cwd=root).exit_code
        == 0
    )
    outcome = cpctl("install", "--id", "PKG-F", "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["packages"][0]["adopted"] == ["frameworks/f.md"]
    assert cpctl("integrity-check", root=root).exit_code == 0


def test_conflict_with_unowned_file_then_force(packed: Path, cpctl: CliFn) -> None:
    write(packed / "docs" / "guide.md", "mine\n")
    before = snapshot(packed)
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 4
    assert "docs/guide.md" in outcome.stderr and "--force" in outcome.stderr
    assert snapshot(packed) == before
    assert cpctl("install", "--id", "PKG-DOCS", "--force", root=packed).exit_code == 0
    assert (packed / "docs/guide.md").read_text() == "# Guide\n"


def test_update_installs_new_version_and_drops_files_it_no_longer_has(
    packed: Path, cpctl: CliFn
) -> None:
    assert cpctl("install", "--id", "PKG-DOCS", root=packed).exit_code == 0
    (packed / "docs/sub/notes.txt").unlink()
    (packed / "docs/sub").rmdir()
    write(packed / "docs" / "guide.md", "# Guide v2\n")
    write(packed / "docs" / "new.md", "new\n")
    # The working copy now differs from the installed files: record the edit as the new version.
    outcome = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "2.0.0", root=packed, cwd=packed
    )
    assert outcome.exit_code == 0, outcome.stderr
    write(packed / "docs" / "guide.md", "# Guide\n")  # back to the installed content
    write(packed / "docs" / "sub" / "notes.txt", "notes\n")
    (packed / "docs/new.md").unlink()
    assert cpctl("install", "--id", "PKG-DOCS", root=packed).exit_code == 4  # use update
    outcome = cpctl("update", "--id", "PKG-DOCS", "--json", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    change = outcome.json()["packages"][0]
    assert change["deleted"] == ["docs/sub/notes.txt"]
    assert not (packed / "docs/sub/notes.txt").exists()
    assert (packed / "docs/guide.md").read_text() == "# Guide v2\n"
    assert str(packages_of(packed)["PKG-DOCS"].installed_version) == "2.0.0"
    assert cpctl("integrity-check", root=packed).exit_code == 0


def test_remove_refuses_modified_files_unless_forced(packed: Path, cpctl: CliFn) -> None:
    assert cpctl("install", "--id", "PKG-DOCS", root=packed).exit_code == 0
    write(packed / "docs" / "guide.md", "edited\n")
    before = snapshot(packed)
    outcome = cpctl("remove", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 4
    assert "docs/guide.md" in outcome.stderr
    assert snapshot(packed) == before
    assert cpctl("remove", "--id", "PKG-DOCS", "--force", root=packed).exit_code == 0
    assert not (packed / "docs").exists()
    assert "docs/guide.md" not in files_of(packed)
    assert packages_of(packed)["PKG-DOCS"].installed_digest is None
    assert cpctl("integrity-check", root=packed).exit_code == 0


def test_remove_deletes_unmodified_files(packed: Path, cpctl: CliFn) -> None:
    assert cpctl("install", "--id", "PKG-DOCS", root=packed).exit_code == 0
    outcome = cpctl("remove", "--id", "PKG-DOCS", "--json", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    assert sorted(outcome.json()["packages"][0]["deleted"]) == [
        "docs/guide.md",
        "docs/sub/notes.txt",
    ]
    assert not (packed / "docs").exists()


def test_module_routing_installs_under_modules(root: Path, cpctl: CliFn) -> None:
    write(root / "tool" / "run.py", "print('hi')\n")
    outcome = cpctl(
        "pack", "--src", "tool", "--id", "PKG-TOOL", "--output-type", "module", root=root, cwd=root
    )
    assert outcome.exit_code == 0, outcome.stderr
    (root / "tool/run.py").unlink()
    (root / "tool").rmdir()
    assert cpctl("install", "--id", "PKG-TOOL", root=root).exit_code == 0
    assert (root / "modules/tool/run.py").read_text() == "print('hi')\n"
    assert "modules/tool/run.py" in files_of(root)
    assert cpctl("integrity-check", root=root).exit_code == 0


def test_external_routing_is_ledgered_not_registered(
    root: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    write(root / "ext" / "conf.ini", "[a]\n")
    outcome = cpctl(
        "pack",
        "--src",
        "ext",
        "--id",
        "PKG-EXT",
        "--output-type",
        "external",
        "--output-path",
        str(outside),
        root=root,
        cwd=root,
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert cpctl("install", "--id", "PKG-EXT", root=root).exit_code == 0
    assert (outside / "ext/conf.ini").read_text() == "[a]\n"
    assert not any(path.startswith(str(outside)) or "conf.ini" in path for path in files_of(root))
    entries = cpctl("ledger", "show", "--json", root=root).json()["entries"]
    install = [entry for entry in entries if entry["action"] == "install"][-1]
    paths = install["details"]["packages"][0]["paths"]
    assert paths[0]["path"] == str(outside / "ext/conf.ini")
    assert cpctl("remove", "--id", "PKG-EXT", root=root).exit_code == 0
    assert not (outside / "ext/conf.ini").exists()


def test_dependencies_install_first_and_cycles_are_exit_2(root: Path, cpctl: CliFn) -> None:
    write(root / "base" / "b.txt", "b\n")
    write(root / "app" / "a.txt", "a\n")
    assert (
        cpctl(
            "pack", "--src", "base", "--id", "PKG-BASE", "--version", "1.2.0", root=root, cwd=root
        ).exit_code
        == 0
    )
    outcome = cpctl(
        "pack", "--src", "app", "--id", "PKG-APP", "--depends", "PKG-BASE>=1.0", root=root, cwd=root
    )
    assert outcome.exit_code == 0, outcome.stderr
    outcome = cpctl("install", "--id", "PKG-APP", "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    assert [package["id"] for package in outcome.json()["packages"]] == ["PKG-BASE", "PKG-APP"]
    # A cycle: BASE now depends on APP.
    outcome = cpctl(
        "pack",
        "--src",
        "base",
        "--id",
        "PKG-BASE",
        "--version",
        "1.3.0",
        "--depends",
        "PKG-APP",
        root=root,
        cwd=root,
    )
    assert outcome.exit_code == 0
    assert cpctl("validate", root=root).exit_code == 1
    before = snapshot(root)
    outcome = cpctl("update", "--id", "PKG-BASE", root=root)
    assert outcome.exit_code == 2
    assert "cycle" in outcome.stderr
    assert snapshot(root) == before


def test_sync_writes_a_deterministic_view(packed: Path, cpctl: CliFn) -> None:
    outcome = cpctl("sync", "--json", root=packed)
    assert outcome.exit_code == 0 and outcome.json()["written"] is True
    view = (packed / "registries/compiled/registry.json").read_bytes()
    again = cpctl("sync", "--json", root=packed).json()
    assert again["changed"] is False
    assert (packed / "registries/compiled/registry.json").read_bytes() == view


def test_validate_reports_every_finding(packed: Path, cpctl: CliFn) -> None:
    (packed / "packages_store/docs.tar.gz").write_bytes(b"tampered")
    outcome = cpctl("validate", "--json", root=packed)
    assert outcome.exit_code == 1
    rules = {finding["rule"] for finding in outcome.json()["findings"]}
    assert {"digest-mismatch", "sidecar-mismatch"} <= rules


def test_scripts_accept_the_seed_flags(root: Path) -> None:
    write(root / "frameworks" / "FMWK-1.md", "x\n")
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    env["PYTHONPATH"] = str(scripts.parent)

    def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(scripts / name), *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    packed = script(
        "package_pack.py",
        "--src",
        "frameworks/FMWK-1.md",
        "--id",
        "PKG-FMWK-1",
        "--token",
        "ignored-by-passthrough",
    )
    assert packed.returncode == 0, packed.stderr
    installed = script(
        "package_install.py",
        "--archive",
        "packages_store/FMWK-1.tar.gz",
        "--id",
        "PKG-FMWK-1",
        "--token",
        "t",
        "--force",
    )
    assert installed.returncode == 0, installed.stderr
    assert script("package_sync.py").returncode == 0
    assert script("validate_packages.py", "--json").returncode == 0
    check = script("integrity_check.py", "--json")
    assert check.returncode == 0, check.stdout + check.stderr


def test_python_dash_m_and_no_arguments_show_the_workflow(tmp_path: Path) -> None:
    result = run_module(cwd=tmp_path)
    assert result.returncode == 0
    assert "cpctl pack" in result.stdout and "cpctl install" in result.stdout
    version = run_module("--version", cwd=tmp_path)
    assert version.returncode == 0 and "0.1.0" in version.stdout


def test_commands_outside_a_root_explain_themselves(tmp_path: Path, cpctl: CliFn) -> None:
    outcome = cpctl("validate", root=tmp_path / "nowhere")
    assert outcome.exit_code == 2
    assert "cpctl init" in outcome.stderr
    assert not (tmp_path / "nowhere").exists()


def test_gate_operations_programmatic_example(packed: Path, monkeypatch) -> None:
    from control_plane import GateOperations

    monkeypatch.chdir(packed)
    gate = GateOperations(control_plane_root=Path("."), token=None)
    result = gate.install(package_id="PKG-DOCS")
    assert result.packages[0].status == "installed"
    assert gate.integrity_check().ok
