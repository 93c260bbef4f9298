"""The one path every operation takes: authenticate, authorise, lock, recover.

``Session`` is what an operation body receives: the root's layout and config,
the authenticated identity and role, the ledger, and the warnings to show.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from control_plane import auth
from control_plane.archive import ArchiveLimits
from control_plane.auth import (
    Action,
    AuthProvider,
    HmacProvider,
    Identity,
    PassthroughProvider,
    Role,
    authorize,
    check_hmac_secret,
    hmac_key_id,
)
from control_plane.config import Config
from control_plane.errors import (
    ControlPlaneError,
    DeniedError,
    LockTimeoutError,
    RejectedContentError,
    UsageError,
)
from control_plane.layout import RootLayout
from control_plane.ledger import Ledger, LedgerRecord
from control_plane.registry import (
    FileRow,
    PackageRow,
    RegistryLimits,
    dump_files,
    dump_packages,
    parse_files,
    parse_packages,
)
from control_plane.registry_manifest import PinnedManifest
from control_plane.transaction import Transaction, recover

# Names of environment variables, not secrets.
SECRET_VARIABLE = "CONTROL_PLANE_SHARED_SECRET"  # noqa: S105
PREVIOUS_SECRET_VARIABLE = "CONTROL_PLANE_SHARED_SECRET_PREVIOUS"  # noqa: S105

ProgressFactory = Callable[[str, int], "contextlib.AbstractContextManager[Callable[[int], None]]"]


@contextlib.contextmanager
def no_progress(_label: str, _total: int) -> Iterator[Callable[[int], None]]:
    """The default progress reporter: silent."""
    yield lambda _n: None


def os_user() -> str:
    """The operating-system user running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def build_provider(config: Config, env: Mapping[str, str], layout: RootLayout) -> AuthProvider:
    """The configured authentication provider, with its secrets taken from ``env``.

    Raises:
        UsageError: the provider's settings or secrets are missing or invalid.
    """
    name = config.auth.provider
    if name == "passthrough":
        return PassthroughProvider(os_user(), require_auth=config.auth.require)
    if name == "hmac":
        current = check_hmac_secret(_env_bytes(env, SECRET_VARIABLE), SECRET_VARIABLE)
        secrets = {"current": current}
        previous = _env_bytes(env, PREVIOUS_SECRET_VARIABLE)
        if previous:
            secrets["previous"] = check_hmac_secret(previous, PREVIOUS_SECRET_VARIABLE)
        keyed = {hmac_key_id(secret): secret for secret in secrets.values()}
        return HmacProvider(keyed, config.users)
    oidc = config.oidc
    if not (oidc.issuer and oidc.audience and oidc.jwks):
        raise UsageError("auth.oidc needs issuer, audience and jwks in control_plane.toml")
    # Attribute access keeps the OIDC stack (PyJWT, urllib) unloaded for other providers.
    settings = auth.OidcSettings(
        issuer=oidc.issuer,
        audience=oidc.audience,
        jwks=_resolve_jwks(oidc.jwks, layout.root),
        algorithms=oidc.algorithms,
        leeway_seconds=oidc.leeway_seconds,
        roles_claim=oidc.roles_claim,
        role_map=dict(oidc.role_map),
        jwks_cache_seconds=oidc.jwks_cache_seconds,
        fetch_timeout_seconds=oidc.fetch_timeout_seconds,
    )
    jwks = auth.JwksSource(
        settings.jwks,
        cache_dir=layout.state / "jwks-cache",
        cache_seconds=settings.jwks_cache_seconds,
        timeout=settings.fetch_timeout_seconds,
    )
    return auth.OidcProvider(settings, jwks)


def _env_bytes(env: Mapping[str, str], name: str) -> bytes | None:
    value = env.get(name)
    return None if value is None else value.encode("utf-8")


def _resolve_jwks(location: str, root: Path) -> str:
    if location.startswith(("https://", "http://")):
        return location
    path = Path(location)
    return str(path if path.is_absolute() else root / path)


@dataclass
class Session:
    """An authorised, locked view of one root for the duration of one operation."""

    layout: RootLayout
    config: Config
    identity: Identity
    role: Role
    action: Action
    ledger: Ledger
    progress: ProgressFactory = no_progress
    warnings: list[str] = field(default_factory=list)
    manifest: PinnedManifest | None = None  # install --manifest: every package must match it

    @property
    def archive_limits(self) -> ArchiveLimits:
        limits = self.config.limits
        return ArchiveLimits(
            max_entries=limits.max_entries,
            max_total_bytes=limits.max_total_bytes,
            max_file_bytes=limits.max_file_bytes,
            max_ratio=limits.max_ratio,
            max_name_bytes=limits.max_name_bytes,
            max_component_bytes=limits.max_component_bytes,
        )

    @property
    def registry_limits(self) -> RegistryLimits:
        limits = self.config.limits
        return RegistryLimits(
            max_file_bytes=limits.registry_max_bytes,
            max_field_bytes=limits.registry_max_field_bytes,
        )

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageError(f"cannot read {self.layout.relative(path)}: {exc.strerror}") from exc

    def packages(self) -> dict[str, PackageRow]:
        """The package registry, strictly parsed (any problem is exit 2)."""
        data = self._read(self.layout.packages_registry)
        if data is None:
            return {}
        rows = parse_packages(data, limits=self.registry_limits).require_clean()
        return {row.id: row for row in rows}

    def files(self) -> dict[str, FileRow]:
        """The control registry keyed by path, strictly parsed."""
        data = self._read(self.layout.control_registry)
        if data is None:
            return {}
        rows = parse_files(data, limits=self.registry_limits).require_clean()
        return {row.path: row for row in rows}

    def stage_registries(
        self,
        txn: Transaction,
        packages: Mapping[str, PackageRow] | None = None,
        files: Mapping[str, FileRow] | None = None,
    ) -> None:
        """Add new registry contents to a transaction."""
        if packages is not None:
            txn.put_bytes(self.layout.packages_registry, dump_packages(packages.values()))
        if files is not None:
            txn.put_bytes(self.layout.control_registry, dump_files(files.values()))

    def begin(self) -> Transaction:
        """A new transaction staged inside this root."""
        return Transaction.begin(self.layout.transactions)

    def record(
        self,
        target: str,
        *,
        digests: Mapping[str, str] | None = None,
        details: Mapping[str, object] | None = None,
        txn: Transaction | None = None,
    ) -> LedgerRecord:
        """The ledger record of this session's action on ``target``."""
        return LedgerRecord(
            actor=self.identity.user,
            role=self.role.value,
            action=self.action.value,
            target=target,
            result="ok",
            digests=dict(digests or {}),
            details=dict(details or {}),
            txn=None if txn is None else txn.id,
        )

    def commit(self, txn: Transaction, record: LedgerRecord) -> None:
        """Commit ``txn`` and ledger ``record`` as one atomic step."""
        txn.commit(self.ledger, record)


@contextlib.contextmanager
def root_lock(layout: RootLayout, timeout: float) -> Iterator[None]:
    """Hold the root's one lock; a timeout is a conflict (exit 4)."""
    shown = layout.relative(layout.lock)
    try:
        layout.state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create {layout.relative(layout.state)}/ for the root lock: {exc.strerror}"
        ) from None
    lock = FileLock(layout.lock, timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise LockTimeoutError(
            f"another command holds the root lock ({shown}) for more than {timeout:g}s",
            hint="retry when it finishes, or raise limits.lock_timeout_seconds",
        ) from exc
    except OSError as exc:  # a directory or a link in its place (filelock never follows one)
        why = "a symbolic link" if layout.lock.is_symlink() else exc.strerror
        raise UsageError(
            f"cannot take the root lock {shown}: {why}",
            hint=f"remove {shown} (per-machine state; recreated on the next command)",
        ) from None
    try:
        yield
    finally:
        lock.release()


def restore_consistency(layout: RootLayout, ledger: Ledger, *, sign: bool = True) -> list[str]:
    """Repair what an interrupted command left (lock held): a partial ledger or checkpoint
    line, a Merkle store out of step, an unfinished transaction, a missing checkpoint.

    ``sign`` False (read-only commands) never signs entries no checkpoint covers: a
    verifier must report them, not bless them (they may be forged).
    """
    messages = [ledger.repair_tail(), ledger.checkpoints.log.repair_tail()]
    messages.append(ledger.reconcile_tree())
    messages.extend(recover(layout.transactions, ledger))
    newest = ledger.checkpoints.newest()
    count = ledger.count()
    if sign and count and (newest is None or newest.tree_size < count):
        # Without a usable key this stays unsigned, and ledger verify says so.
        with contextlib.suppress(UsageError):
            if ledger.checkpoint() is not None:
                messages.append(f"ledger: signed the checkpoint of {count} entries")
    return [message for message in messages if message]


def record_denial(
    layout: RootLayout, ledger: Ledger, timeout: float, error: DeniedError, target: str
) -> None:
    """Ledger a denial (best effort under the lock; the denial stands either way)."""
    record = LedgerRecord(
        actor=error.actor or "unknown",
        role="",
        action=error.action or "",
        target=target,
        result="denied",
        digests={},
        details={"reason": error.reason},
    )
    with contextlib.suppress(LockTimeoutError, OSError, UsageError), root_lock(layout, timeout):
        restore_consistency(layout, ledger)
        ledger.append(record)


REJECTION_REASON_CHARS = 500  # a rejection entry's reason is cut to this many characters


def record_rejection(session: Session, target: str, error: RejectedContentError) -> None:
    """Ledger refused content (exit 5) while the session still holds the root lock.

    Best effort: the operation's own transaction is already aborted, and the
    refusal stands (and propagates unchanged) even when this append fails.
    """
    reason = str(error).encode("utf-8", "backslashreplace").decode("utf-8")
    if len(reason) > REJECTION_REASON_CHARS:
        reason = reason[: REJECTION_REASON_CHARS - 3] + "..."
    record = LedgerRecord(
        actor=session.identity.user,
        role=session.role.value,
        action=session.action.value,
        target=target,
        result="rejected",
        digests={},
        details={"kind": type(error).__name__, "reason": reason},
    )
    with contextlib.suppress(ControlPlaneError, OSError, ValueError):
        restore_consistency(session.layout, session.ledger)
        session.ledger.append(record)


def authorise(provider: AuthProvider, token: str | None, action: Action) -> tuple[Identity, Role]:
    """Authenticate ``token`` and check ``action``; raises DeniedError (with actor/action set)."""
    try:
        identity = provider.authenticate(token)
    except DeniedError as error:
        error.action = action.value
        raise
    return identity, authorize(identity, action)
