"""``GateOperations``: the only way in.  Every interface goes through it.

Each public method authenticates the token, authorises the action, takes the
root lock, repairs whatever an interrupted command left, then does its work
(in a transaction when it writes) and appends to the ledger.  Denials are
ledgered too.  The shared session lives in ``gate_core.py``; groups of methods
live in ``gate_*.py`` mixins composed here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from control_plane.auth import ROLE_ACTIONS, Action, Role, allowed_actions
from control_plane.errors import ConflictError, ControlPlaneError, DeniedError
from control_plane.ledger import LedgerRecord
from control_plane.operations import (
    checks,
    doctor,
    installing,
    manifest_trust,
    manifesting,
    packing,
    plugin_packing,
    removing,
    signatures,
    views,
)
from control_plane.operations.gate_components import ComponentsGate
from control_plane.operations.gate_ids import IdsGate
from control_plane.operations.gate_keys import KeysGate
from control_plane.operations.gate_ledger import LedgerGate
from control_plane.operations.gate_lock import LockGate
from control_plane.operations.gate_plugins import PluginsGate
from control_plane.operations.gate_tiers import TiersGate
from control_plane.operations.gate_trust import TrustGate
from control_plane.operations.initialising import create_ledger_key, initialise
from control_plane.operations.results import (
    ChangeResult,
    CreateResult,
    DoctorResult,
    HashUpdateResult,
    InitResult,
    IntegrityResult,
    ManifestResult,
    PackResult,
    SyncResult,
    ValidateResult,
    WhoamiResult,
)
from control_plane.operations.session import Session
from control_plane.registry import Tier
from control_plane.signing import PrivateKey
from control_plane.trust_policy import NO_ALLOWANCES, Allowances, may_choose_tier, parse_tier


class GateOperations(
    LedgerGate, KeysGate, TrustGate, IdsGate, LockGate, TiersGate, PluginsGate, ComponentsGate
):
    """Authenticated, authorised, ledgered operations on one control plane root.

    ``GateOperations(control_plane_root=Path('.'), token=token)``; the token may
    be None for the passthrough provider.  ``env`` defaults to ``os.environ``
    (provider choice and the HMAC secret come from there).

    Raises (from every method): ``ControlPlaneError`` subclasses, each with its exit code.
    """

    def init(self) -> InitResult:
        """Create the root's skeleton (idempotent; never overwrites a file)."""
        with self._session(Action.CREATE, "root", new_root=True) as session:
            created = initialise(self.layout)
            created += create_ledger_key(self.layout)
            if created:
                self.ledger.append(
                    LedgerRecord(
                        actor=session.identity.user,
                        role=session.role.value,
                        action="init",
                        target="root",
                        result="ok",
                        digests={},
                        details={"created": created},
                    )
                )
            return InitResult(
                root=str(self.layout.root), created=tuple(created), warnings=tuple(session.warnings)
            )

    # -- packages -----------------------------------------------------------------

    def pack(
        self,
        sources: Sequence[Path],
        package_id: str,
        *,
        version: str | None = None,
        output_type: str = "extension",
        output_path: str = "",
        depends: Sequence[str] = (),
        name: str | None = None,
        force: bool = False,
        tier: str | None = None,
        sign: Path | None = None,
        passphrase_file: Path | None = None,
        card: str | None = None,
    ) -> PackResult:
        """Pack files/directories under the root into ``packages_store/NAME.tar.gz`` and register it.

        ``sign`` (a PEM private key) also writes ``NAME.tar.gz.sig``.  ``tier`` defaults to
        the registered row's, else ``community``; choosing ``community`` or ``verified``
        explicitly vouches for the package (admin).  The row's ``card_id`` is ``card`` (a
        ULID whose card's path is a source or inside one), else the card of a source.
        """

        def work(session: Session, chosen: Tier | None, key: PrivateKey | None) -> PackResult:
            return packing.pack(
                session,
                sources,
                package_id,
                version=version,
                output_type=output_type,
                output_path=output_path,
                depends=depends,
                name=name,
                force=force,
                tier=chosen,
                signing_key=key,
                card=card,
            )

        return self._pack(package_id, tier, sign, passphrase_file, work)

    def plugin_pack(
        self,
        key: str,
        *,
        package_id: str | None = None,
        depends: Sequence[str] = (),
        force: bool = False,
        tier: str | None = None,
        sign: Path | None = None,
        passphrase_file: Path | None = None,
    ) -> PackResult:
        """Pack ``plugins/KEY`` as a ``module`` package (default id ``PKG-PLUGIN-KEY``) at its
        spec's version, recording its identity card; refused while ``plugin validate`` has
        findings (exit 1) or the plugin has no card (exit 2).  Options as ``pack``."""
        chosen_id = package_id or plugin_packing.package_id_for(key)

        def work(session: Session, chosen: Tier | None, signer: PrivateKey | None) -> PackResult:
            return plugin_packing.pack(
                session,
                key,
                chosen_id,
                depends=depends,
                force=force,
                tier=chosen,
                signing_key=signer,
            )

        return self._pack(chosen_id, tier, sign, passphrase_file, work)

    def _pack(
        self,
        package_id: str,
        tier: str | None,
        sign: Path | None,
        passphrase_file: Path | None,
        work: Callable[[Session, Tier | None, PrivateKey | None], PackResult],
    ) -> PackResult:
        """Authorise a pack (an explicit vouching tier needs the override), load the signing
        key, and run ``work`` in the session."""
        chosen = None if tier is None else parse_tier(tier)
        if chosen is not None and not may_choose_tier(chosen, can_override=False):
            self._authorise_override(package_id, (f"--tier {chosen.value}",))
        with self._session(Action.PACK, package_id) as session:
            signing_key = (
                None
                if sign is None
                else signatures.load_signing_key(sign, passphrase_file, self.env)
            )
            return work(session, chosen, signing_key)

    def create(
        self,
        archive: Path,
        package_id: str,
        *,
        version: str = "0.1.0",
        output_type: str = "extension",
        output_path: str = "",
        depends: Sequence[str] = (),
        force: bool = False,
        tier: str | None = None,
    ) -> CreateResult:
        """Admit an archive already in ``packages_store/`` as a registry row."""
        chosen = None if tier is None else parse_tier(tier)
        with self._session(Action.CREATE, package_id) as session:
            return packing.create(
                session,
                archive,
                package_id,
                version=version,
                output_type=output_type,
                output_path=output_path,
                depends=depends,
                force=force,
                tier=chosen,
            )

    def install(
        self,
        *,
        package_id: str | None = None,
        archive: Path | None = None,
        force: bool = False,
        dry_run: bool = False,
        allow: Allowances = NO_ALLOWANCES,
        manifest: Path | None = None,
    ) -> ChangeResult:
        """Install a registered package (and its missing dependencies) atomically; with
        ``manifest``, only as a signed registry manifest lists it (see ``registry_verify``).

        ``allow`` lifts the experimental, deprecated and downgrade refusals (admin only).
        """
        target = package_id or (str(archive) if archive else "")
        self._authorise_override(target, allow.flags())
        with self._session(Action.INSTALL, target) as session:
            if manifest is not None:
                session.manifest = manifest_trust.pin_manifest(session, manifest, package_id)
            return installing.install(
                session,
                package_id=package_id,
                archive=archive,
                force=force,
                dry_run=dry_run,
                allow=allow,
            )

    def update(
        self,
        package_id: str,
        *,
        force: bool = False,
        dry_run: bool = False,
        allow: Allowances = NO_ALLOWANCES,
    ) -> ChangeResult:
        """Install the registered (newer) version of an installed package; see ``install``."""
        self._authorise_override(package_id, allow.flags())
        with self._session(Action.UPDATE, package_id) as session:
            return installing.update(session, package_id, force=force, dry_run=dry_run, allow=allow)

    def remove(
        self, package_id: str, *, force: bool = False, dry_run: bool = False
    ) -> ChangeResult:
        """Delete an installed package's files and drop its file rows."""
        with self._session(Action.REMOVE, package_id) as session:
            return removing.remove(session, package_id, force=force, dry_run=dry_run)

    # -- registries -----------------------------------------------------------------

    def sync(self, *, dry_run: bool = False) -> SyncResult:
        """Compile the registries into ``registries/compiled/registry.json``."""
        action = Action.VERIFY if dry_run else Action.UPDATE
        with self._session(action, "registries") as session:
            return views.sync(session, dry_run=dry_run)

    def compiled_view(self) -> dict[str, object]:
        """The compiled registry document (read-only)."""
        with self._session(Action.VERIFY, "registries") as session:
            return views.compiled_document(session)

    def validate(self) -> ValidateResult:
        """Every schema, id, digest, routing and dependency problem in the registries."""
        with self._session(Action.VERIFY, "registries") as session:
            return views.validate(session)

    # -- integrity ------------------------------------------------------------------

    def integrity_check(self, *, fast: bool = False) -> IntegrityResult:
        """Compare registries, store and files on disk; compute the installed-state Merkle root.

        ``fast`` trusts the stat cache of the last full check for governed files
        whose size, mtime, inode and ctime are unchanged; archives are always hashed.
        """
        with self._session(Action.VERIFY, "root") as session:
            return checks.integrity_check(session, fast=fast)

    def doctor(self) -> DoctorResult:
        """Check config, auth, the ledger key, the ledger, registries, store and files at once;
        each finding comes with the fix."""
        try:
            self.config  # noqa: B018 -- loading it is the first check
        except ControlPlaneError as error:
            return doctor.early_failure("config", error)
        try:
            with self._session(Action.VERIFY, "root") as session:
                return doctor.diagnose(session, doctor.Subjects(self.ledger, self.ledger_key))
        except (DeniedError, ConflictError):
            raise
        except ControlPlaneError as error:  # probes catch their own: this is opening the root
            return doctor.early_failure("open", error)

    def manifest(self) -> ManifestResult:
        """Regenerate ``MANIFEST.json`` from the registries (ledgered; a no-op when unchanged)."""
        with self._session(Action.UPDATE, "MANIFEST.json") as session:
            return manifesting.write_manifest(session)

    def verify(self, package_id: str | None = None) -> IntegrityResult:
        """Check installed packages (or one) against their archives and recorded hashes."""
        with self._session(Action.VERIFY, package_id or "packages") as session:
            return checks.verify_packages(session, package_id)

    def hash_update(self, path: str) -> HashUpdateResult:
        """Re-record the hash of a governed file after an intentional change."""
        with self._session(Action.HASH_UPDATE, path) as session:
            return checks.hash_update(session, path)

    # -- identity -----------------------------------------------------------------

    def whoami(self) -> WhoamiResult:
        """Who the token says you are, and what you may do."""
        identity = self.provider.authenticate(self.token)
        actions = allowed_actions(identity)
        strongest = next((role for role in Role if actions and ROLE_ACTIONS[role] <= actions), None)
        return WhoamiResult(
            user=identity.user,
            provider=identity.provider,
            roles=identity.role_names,
            actions=tuple(sorted(action.value for action in actions)),
            expires_at=identity.expires_at,
            role=None if strongest is None else strongest.value,
        )
