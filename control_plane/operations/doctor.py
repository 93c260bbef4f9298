"""``cpctl doctor``: one pass over everything that can be wrong with a root, and what to do.

Each probe looks at one area (config and auth, the ledger key, the ledger,
the registries, the store, the installed files ...) and returns one
``DoctorCheck``: ``ok``, ``warn`` (works, but not as a careful admin would
leave it) or ``fail`` (a command or an audit will refuse), with the fix.
A refusal raised inside a probe becomes that probe's failure, so one broken
area never hides the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from control_plane.errors import ControlPlaneError
from control_plane.ledger import Ledger
from control_plane.operations import checks, ledger_ops, views
from control_plane.operations.doctor_lock import probe_lock
from control_plane.operations.doctor_trust import probe_keys, probe_policy, probe_trust_state
from control_plane.operations.results import DoctorCheck, DoctorResult
from control_plane.operations.revoking import probe_revocations
from control_plane.operations.session import Session

_SHOWN = 3  # findings quoted in one summary line


@dataclass(frozen=True)
class Subjects:
    """What the probes inspect besides the session."""

    ledger: Ledger
    ledger_key: ledger_ops.LedgerKeySource


Probe = Callable[[Session, Subjects], DoctorCheck]


def _quote(items: list[str]) -> str:
    shown = "; ".join(items[:_SHOWN])
    return shown + (f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def probe_auth(session: Session, _subjects: Subjects) -> DoctorCheck:
    config = session.config
    provider = config.auth.provider
    if provider == "passthrough":
        return DoctorCheck(
            "auth",
            "warn",
            "auth is off (passthrough provider): every local user acts as admin",
            'set [auth] provider = "hmac" or "oidc" and require = true in control_plane.toml',
        )
    if provider == "hmac" and not config.users:
        return DoctorCheck(
            "auth",
            "warn",
            "hmac provider with no users in [authz.users]: every token is denied",
            'map users to roles, e.g. [authz.users] alice = "admin"',
        )
    if provider == "oidc" and not config.oidc.role_map:
        return DoctorCheck(
            "auth",
            "warn",
            "oidc provider with an empty role_map: every token is denied",
            "map claim values to roles in [auth.oidc] role_map",
        )
    return DoctorCheck("auth", "ok", f"{provider} provider; {len(config.users)} user(s) mapped")


def probe_ledger_key(_session: Session, subjects: Subjects) -> DoctorCheck:
    if subjects.ledger_key() is not None:  # raises when exposed, unreadable or not the pair
        return DoctorCheck("ledger-key", "ok", f"ledger signing key {subjects.ledger_key.path}")
    try:
        subjects.ledger_key.require()
    except ControlPlaneError as error:
        # A clone kept for auditing has only the public key: reads work, changes refuse.
        return DoctorCheck(
            "ledger-key",
            "warn",
            f"{error}: read-only commands work, mutating commands will refuse",
            error.hint,
        )
    raise AssertionError("require() passes only when the key loads")  # pragma: no cover


def probe_ledger(session: Session, subjects: Subjects) -> DoctorCheck:
    result = ledger_ops.verify(subjects.ledger, session.layout, None)
    return DoctorCheck(
        "ledger",
        "ok",
        f"{result.entries} entr{'y' if result.entries == 1 else 'ies'} chained; "
        f"{result.checkpoints} signed checkpoint(s) match",
    )


def probe_registries(session: Session, _subjects: Subjects) -> DoctorCheck:
    result = views.validate(session)
    if result.ok:
        return DoctorCheck(
            "registries", "ok", f"{result.packages} package(s) and {result.files} file(s) validate"
        )
    return DoctorCheck(
        "registries",
        "fail",
        f"{len(result.findings)} problem(s): " + _quote([str(f) for f in result.findings]),
        "cpctl validate lists them all",
    )


def probe_store(session: Session, _subjects: Subjects) -> DoctorCheck:
    store = session.layout.store
    if not store.is_dir():
        return DoctorCheck("store", "fail", "packages_store/ does not exist", "cpctl init")
    sources = {row.source for row in session.packages().values()}
    strays = []
    for path in sorted(store.iterdir()):
        rel = session.layout.relative(path)
        base = rel.removesuffix(".sha256").removesuffix(".sig")
        if path.name.startswith("."):
            continue
        if not base.endswith(".tar.gz") or path.is_dir() or path.is_symlink():
            strays.append(f"{rel} is not an archive or its sidecar")
        elif base not in sources:
            strays.append(f"{rel} belongs to no registered package")
    if strays:
        return DoctorCheck(
            "store",
            "warn",
            _quote(strays),
            "register archives with cpctl create, or delete what is not needed",
        )
    return DoctorCheck("store", "ok", f"{len(sources)} registered archive(s), nothing stray")


def probe_files(session: Session, _subjects: Subjects) -> DoctorCheck:
    result = checks.integrity_check(session, fast=True)
    problems = (
        [f"mismatched: {path}" for path in result.mismatched]
        + [f"missing: {path}" for path in result.missing]
        + [f"orphan: {path}" for path in result.orphans]
        + [str(finding) for finding in result.findings]
    )
    if problems:
        return DoctorCheck(
            "files",
            "fail",
            f"{len(problems)} problem(s): " + _quote(problems),
            "cpctl integrity-check for the full list; cpctl hash-update --path P records an "
            "intentional change",
        )
    return DoctorCheck(
        "files", "ok", f"{result.checked} file(s) and archive(s) match; root {result.merkle_root}"
    )


PROBES: tuple[Probe, ...] = (
    probe_auth,
    probe_ledger_key,
    probe_ledger,
    probe_registries,
    probe_store,
    probe_files,
    probe_keys,
    probe_policy,
    probe_revocations,
    probe_trust_state,
    probe_lock,
)


def _name(probe: Probe) -> str:
    return probe.__name__.removeprefix("probe_").replace("_", "-")


def diagnose(
    session: Session, subjects: Subjects, probes: tuple[Probe, ...] = PROBES
) -> DoctorResult:
    """Run every probe; a refusal inside one is that probe's failure."""
    results = []
    for probe in probes:
        try:
            results.append(probe(session, subjects))
        except ControlPlaneError as error:
            results.append(DoctorCheck(_name(probe), "fail", str(error), error.hint))
    return DoctorResult(checks=tuple(results), warnings=tuple(session.warnings))


_EARLY_FIXES = {
    "config": "fix control_plane.toml (unknown keys and wrong types are errors)",
    "open": "restore the named file from version control or a backup; never edit ledger/ by hand",
}


def early_failure(name: str, error: ControlPlaneError) -> DoctorResult:
    """The report when the root cannot even be opened (``config`` unreadable, or the
    recovery of an interrupted command failing): nothing else can be checked."""
    return DoctorResult(
        checks=(DoctorCheck(name, "fail", str(error), error.hint or _EARLY_FIXES[name]),)
    )
