"""``GateOperations`` methods over the component manifest: export and lint ``plugins.json``."""

from __future__ import annotations

from control_plane.auth import Action
from control_plane.operations import components
from control_plane.operations.gate_core import GateCore


class ComponentsGate(GateCore):
    """The component manifest (``plugins.json``), declared in ``plugins/**/*.py``."""

    def plugins_export(self, out: str | None = None) -> components.PluginsExportResult:
        """Write ``plugins.json`` (or ``out``, a ``.json`` file inside the root) from the
        declarations, read without importing them (maintainer+; ledgered; a no-op when
        unchanged; refused, writing nothing, when a declaration is wrong)."""
        with self._session(Action.UPDATE, out or "plugins.json") as session:
            return components.export(session, out)

    def plugins_lint(self, file: str | None = None) -> components.PluginsLintResult:
        """Findings when ``plugins.json`` (or ``file``) is missing, malformed, or differs from
        what ``plugins_export`` would write; writes nothing."""
        with self._session(Action.VERIFY, file or "plugins.json") as session:
            return components.lint(session, file)
