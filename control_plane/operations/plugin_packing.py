"""plugin pack: a valid plugin directory becomes a ``module`` package carrying its card.

``plugins/KEY/`` is packed as it is (paths preserved), so installing the
package lands it at ``modules/plugins/KEY/``, importable as
``plugins.KEY.src.handler`` with ``modules/`` on ``sys.path``.  The package
takes its version from ``plugin.spec.json`` and records the plugin's
identity card in its registry row; a plugin with findings, or without a
card, is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from control_plane import plugin_spec as ps
from control_plane.errors import CheckFailedError
from control_plane.operations import packing, plugins
from control_plane.operations.results import PackResult
from control_plane.operations.session import Session
from control_plane.registry import Tier
from control_plane.signing import PrivateKey

# Interpreter and test-runner caches: regenerated on the installing machine, never shipped.
CACHE_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})


def package_id_for(key: str) -> str:
    """The default package id of plugin ``key``: ``PKG-PLUGIN-`` and the upper-cased key."""
    return f"PKG-PLUGIN-{key.upper()}"


def pack(
    session: Session,
    key: str,
    package_id: str,
    *,
    depends: Sequence[str],
    force: bool,
    tier: Tier | None,
    signing_key: PrivateKey | None,
) -> PackResult:
    """See ``GateOperations.plugin_pack``."""
    plugin = plugins.existing(session, key)
    findings = plugins.validate_one(session, plugin)
    if findings:
        rules = ", ".join(sorted({finding.rule for finding in findings}))
        raise CheckFailedError(
            f"{plugin.rel} has {len(findings)} problem(s) ({rules}), nothing packed;"
            f" first: {findings[0]}",
            hint=f"cpctl plugin validate {key}",
        )
    spec, _ = ps.check_spec(plugin.read(ps.SPEC_FILE) or b"", plugin.rel, key)
    if spec is None:  # validate_one found nothing, so the spec parses
        raise AssertionError(f"{plugin.rel}: spec invalid after a clean validate")
    return packing.pack(
        session,
        [plugin.path],
        package_id,
        version=spec.version,
        output_type="module",
        output_path="",
        depends=depends,
        name=f"plugin-{key}",
        force=force,
        tier=tier,
        signing_key=signing_key,
        card_required="plugin",
        skip_dirs=CACHE_DIRS,
    )
