"""``GateOperations`` methods over plugin directories: new, build, validate."""

from __future__ import annotations

from control_plane.auth import Action
from control_plane.operations import plugins
from control_plane.operations.gate_core import GateCore


class PluginsGate(GateCore):
    """Plugins (``plugins/KEY/``): scaffold, derive the generated files, validate."""

    def plugin_new(self, key: str, ops: list[str] | None = None) -> plugins.PluginNewResult:
        """Scaffold ``plugins/KEY/`` (maintainer+: the ``update`` action) with the nine baseline
        artifacts and, per operation, its schemas, examples and test; one transaction, ledgered.

        Raises:
            UsageError: invalid key or operation token (nothing written).
            ConflictError: ``plugins/KEY`` already exists (nothing written).
        """
        with self._session(Action.UPDATE, f"plugins/{key}") as session:
            return plugins.new(session, key, list(ops or []))

    def plugin_build(self, key: str) -> plugins.PluginBuildResult:
        """Regenerate the derived files of ``plugins/KEY`` from its spec (deterministic;
        ledgered only when something changed).  An invalid spec or broken fence refuses
        with findings (exit 1) and writes nothing."""
        with self._session(Action.UPDATE, f"plugins/{key}") as session:
            return plugins.build(session, key)

    def plugin_validate(
        self, key: str | None = None, *, every: bool = False
    ) -> plugins.PluginValidateResult:
        """Check one plugin (or ``every`` plugin under ``plugins/``) against every rule."""
        with self._session(Action.VERIFY, f"plugins/{key or '*'}") as session:
            return plugins.validate(session, key, every)
