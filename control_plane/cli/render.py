"""The one place results become output: text for people, a versioned JSON document for tools."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from functools import singledispatch

import click

from control_plane.errors import ControlPlaneError
from control_plane.operations.results import (
    ChangeResult,
    CreateResult,
    DoctorResult,
    DocumentResult,
    HashUpdateResult,
    InitResult,
    IntegrityResult,
    LedgerShowResult,
    LedgerVerifyResult,
    ManifestResult,
    PackResult,
    ProofCheckResult,
    Result,
    SyncResult,
    ValidateResult,
    WhoamiResult,
)
from control_plane.operations.tokens import TokenResult

PROGRESS_THRESHOLD = 4 * 1024 * 1024  # bytes; smaller jobs finish before a bar helps


def progress_factory(
    enabled: bool,
) -> Callable[[str, int], contextlib.AbstractContextManager[Callable[[int], None]]]:
    """A progress reporter drawing a bar on stderr for big jobs on a terminal."""

    @contextlib.contextmanager
    def factory(label: str, total: int) -> Iterator[Callable[[int], None]]:
        if not enabled or total < PROGRESS_THRESHOLD or not sys.stderr.isatty():
            yield lambda _n: None
            return
        with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=False) as bar:
            yield bar.update

    return factory


def emit(result: Result, as_json: bool) -> int:
    """Print ``result``; return the exit code (1 when a check found problems)."""
    for warning in result.warnings:
        click.echo(f"cpctl: note: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in text(result):
            click.echo(line)
    return 0 if result.ok else 1


def emit_error(error: ControlPlaneError, as_json: bool) -> int:
    """One line on stderr naming what was refused and why, and the next step when obvious.

    Under ``--json`` stdout still gets its one document, describing the error.
    """
    message = str(error).replace("\n", " ")
    if error.hint:
        message += f" (next: {error.hint})"
    if as_json:
        document = {
            "schema": "control-plane.error/1",
            "ok": False,
            "error": {
                "exit_code": error.exit_code,
                "kind": type(error).__name__,
                "message": message,
            },
        }
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    click.echo(f"cpctl: error: {message}", err=True)
    return error.exit_code


@singledispatch
def text(result: Result) -> list[str]:
    """Human-readable lines for a result."""
    return [json.dumps(result.to_json())]


@text.register
def _(result: InitResult) -> list[str]:
    if not result.created:
        return [f"root {result.root} is already initialised; nothing to do"]
    return [f"initialised {result.root}", *(f"  created {path}" for path in result.created)]


@text.register
def _(result: PackResult) -> list[str]:
    lines = [
        f"packed {result.id} {result.version}: {result.archive} ({result.files} files)",
        f"  digest {result.digest}",
    ]
    if result.signer:
        lines.append(f"  signed {result.archive}.sig with key {result.signer}")
    if result.card_id:
        lines.append(f"  identity card {result.card_id}")
    return lines


@text.register
def _(result: CreateResult) -> list[str]:
    lines = [
        f"registered {result.id} {result.version}: {result.archive}",
        f"  digest {result.digest}",
    ]
    if result.sidecar_written:
        lines.append(f"  wrote {result.archive}.sha256")
    return lines


@text.register
def _(result: ChangeResult) -> list[str]:
    lines = []
    prefix = "would " if result.dry_run else ""
    for package in result.packages:
        if package.status == "unchanged":
            lines.append(f"{package.id} {package.version}: unchanged")
            continue
        verb = {
            "planned": result.action,
            "installed": "installed",
            "updated": "updated",
            "removed": "removed",
        }
        lines.append(
            f"{prefix}{verb.get(package.status, package.status)} {package.id} {package.version} -> {package.destination}"
        )
        if package.signer:
            lines.append(f"  signature verified: key {package.signer}")
        for label, paths in (
            ("write", package.written),
            ("adopt (identical)", package.adopted),
            ("overwrite", package.overwritten),
            ("delete", package.deleted),
        ):
            if paths:
                lines.append(f"  {label}: {len(paths)} file(s)")
                if result.dry_run:
                    lines.extend(f"    {path}" for path in paths)
    return lines


@text.register
def _(result: SyncResult) -> list[str]:
    if result.written:
        state = "written"
    elif result.changed:
        state = "out of date (not written: --dry-run)"
    else:
        state = "up to date"
    return [f"{result.path}: {state} ({result.packages} packages, {result.files} files)"]


@text.register
def _(result: ValidateResult) -> list[str]:
    if result.ok:
        return [f"ok: {result.packages} packages and {result.files} files validate"]
    return [str(finding) for finding in result.findings] + [
        f"{len(result.findings)} problem(s) found"
    ]


@text.register
def _(result: IntegrityResult) -> list[str]:
    lines = [f"mismatched: {path}" for path in result.mismatched]
    lines += [f"missing: {path}" for path in result.missing]
    lines += [f"orphan: {path}" for path in result.orphans]
    lines += [str(finding) for finding in result.findings]
    lines.append(f"merkle root: {result.merkle_root}")
    if result.mode == "fast":
        lines.append(
            f"fast: {result.cached:,} of {result.files_checked:,} files trusted from the stat "
            "cache of the last full check"
        )
    if result.manifest is not None:
        lines.append(f"manifest: {result.manifest}")
    status = "ok" if result.ok else "FAILED"
    lines.append(
        f"{status}: {result.checked} checked, {len(result.mismatched)} mismatched, "
        f"{len(result.missing)} missing, {len(result.orphans)} orphans"
    )
    return lines + _integrity_next_steps(result)


def _integrity_next_steps(result: IntegrityResult) -> list[str]:
    """What to run next for each kind of finding, naming the first file as the example."""
    steps = []
    changed = [path for path in result.mismatched if not path.startswith("packages_store/")]
    if changed:
        steps.append(
            f"next: restore {changed[0]}, or after an intentional change: "
            f"cpctl hash-update --path {changed[0]}"
        )
    if result.missing:
        steps.append(
            f"next: restore {result.missing[0]} (cpctl install --id ID --force puts back "
            "a package's files)"
        )
    if result.orphans:
        steps.append(
            f"next: cpctl hash-update --path {result.orphans[0]} to govern it, delete it, "
            "or add it to [integrity] exclude"
        )
    if result.manifest == "stale":
        steps.append("next: cpctl manifest")
    return steps


@text.register
def _(result: ManifestResult) -> list[str]:
    state = "written" if result.changed else "unchanged"
    return [
        f"{result.path}: {state} ({result.files} files, {result.packages} packages)",
        f"  merkle root {result.merkle_root}",
    ]


@text.register
def _(result: HashUpdateResult) -> list[str]:
    old = f"sha256:{result.old}" if result.old else "(not governed)"
    return [f"{result.path}: {old} -> sha256:{result.new}"]


@text.register
def _(result: WhoamiResult) -> list[str]:
    roles = ", ".join(result.roles) or "(none)"
    actions = ", ".join(result.actions) or "(none)"
    return [
        f"user: {result.user}",
        f"provider: {result.provider}",
        f"roles: {roles}",
        f"actions: {actions}",
    ]


@text.register
def _(result: LedgerVerifyResult) -> list[str]:
    lines = [
        f"ok: {result.entries} ledger entries, chain intact"
        + (f", head {result.head}" if result.head else ""),
        f"merkle root {result.root}; {result.checkpoints} signed checkpoint(s), each a prefix "
        f"of this ledger (key {result.key_id})",
    ]
    if result.against is not None:
        lines.append(
            f"extends the saved checkpoint of tree size {result.against['tree_size']}: "
            "no rollback, no fork"
        )
    return lines


@text.register
def _(result: DocumentResult) -> list[str]:
    # The document itself, so that `> file` saves exactly what verify-proof reads.
    return [json.dumps(result.document, indent=2, sort_keys=True)]


@text.register
def _(result: ProofCheckResult) -> list[str]:
    return [f"ok: {result.statement} (checkpoint signed by {result.key_id})"]


@text.register
def _(result: LedgerShowResult) -> list[str]:
    lines = []
    for entry in result.entries:
        lines.append(
            f"{entry['seq']:>6} {entry['time']} {entry['result']:<6} {entry['actor']} "
            f"{entry['action']} {entry['target']}"
        )
    return lines or ["(ledger is empty)"]


@text.register
def _(result: TokenResult) -> list[str]:
    # Only the token on stdout, so that $(cpctl token mint alice) works.
    return [result.token]


@text.register
def _(result: DoctorResult) -> list[str]:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for check in result.checks:
        lines.append(f"{marks.get(check.status, check.status)} {check.name}: {check.summary}")
        if check.fix and check.status != "ok":
            lines.append(f"     fix: {check.fix}")
    failed = sum(check.status == "fail" for check in result.checks)
    warned = sum(check.status == "warn" for check in result.checks)
    lines.append(
        "doctor: all good"
        if not (failed or warned)
        else f"doctor: {failed} failing, {warned} warning"
    )
    return lines
