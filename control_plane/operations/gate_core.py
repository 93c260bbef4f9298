"""The part of ``GateOperations`` every method shares: config, auth provider and the session.

``GateCore._session`` authenticates the token, authorises the action, takes the
root lock and repairs whatever an interrupted command left.  Feature groups of
``GateOperations`` (``gate_ledger.py`` and the like) subclass ``GateCore`` and
compose in ``gate.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from control_plane.auth import Action, AuthProvider
from control_plane.config import Config, load_config
from control_plane.errors import DeniedError, RejectedContentError, UsageError
from control_plane.layout import RootLayout
from control_plane.ledger import Ledger
from control_plane.operations import ledger_ops
from control_plane.operations.session import (
    ProgressFactory,
    Session,
    authorise,
    build_provider,
    no_progress,
    record_denial,
    record_rejection,
    restore_consistency,
    root_lock,
)


class GateCore:
    """Construction and the authenticated session; see ``GateOperations``."""

    def __init__(
        self,
        control_plane_root: Path = Path(),
        token: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        config_overrides: Mapping[tuple[str, str], object] | None = None,
        progress: ProgressFactory = no_progress,
    ) -> None:
        self.layout = RootLayout(Path(control_plane_root).resolve())
        self.token = token
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._overrides = dict(config_overrides or {})
        self.progress = progress
        self.ledger_key = ledger_ops.LedgerKeySource(self.layout, self.env)
        self.ledger = Ledger(
            self.layout.ledger, tree_dir=self.layout.merkle_store, signing_key=self.ledger_key
        )
        self._config: Config | None = None
        self._provider: AuthProvider | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.layout.config, self.env, self._overrides)
        return self._config

    @property
    def provider(self) -> AuthProvider:
        if self._provider is None:
            self._provider = build_provider(self.config, self.env, self.layout)
        return self._provider

    @contextlib.contextmanager
    def _session(self, action: Action, target: str, *, new_root: bool = False) -> Iterator[Session]:
        is_root = self.layout.config.is_file()
        if not (is_root or new_root):
            raise UsageError(
                f"{self.layout.root} is not a control plane root (no control_plane.toml)",
                hint="cpctl init, or pass --root",
            )
        linked = self.layout.linked_machinery()
        if linked is not None:
            raise UsageError(
                f"{linked} is a symbolic link: cpctl never reads or writes the root's own "
                "files through a link",
                hint=f"replace {linked} with the directory it points to",
            )
        timeout = self.config.limits.lock_timeout_seconds
        try:
            identity, role = authorise(self.provider, self.token, action)
        except DeniedError as error:
            if is_root:
                record_denial(self.layout, self.ledger, timeout, error, target)
            raise
        session = Session(
            layout=self.layout,
            config=self.config,
            identity=identity,
            role=role,
            action=action,
            ledger=self.ledger,
            progress=self.progress,
        )
        if identity.provider == "passthrough" and action is not Action.VERIFY:
            session.warnings.append(
                "auth is off (passthrough provider, development only): "
                "set CONTROL_PLANE_AUTH_PROVIDER=hmac or oidc"
            )
        mutating = action is not Action.VERIFY and not new_root
        with root_lock(self.layout, timeout):
            if mutating:
                self.ledger_key.require()
            session.warnings.extend(
                restore_consistency(self.layout, self.ledger, sign=action is not Action.VERIFY)
            )
            try:
                yield session
            except RejectedContentError as error:
                # Refused content is ledgered like a denial; read-only sessions write nothing.
                if mutating:
                    record_rejection(session, target, error)
                raise
