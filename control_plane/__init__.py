"""Control Plane: verifiable archives, authenticated installs, an append-only ledger.

The public entry point is ``GateOperations``::

    from pathlib import Path
    from control_plane import GateOperations

    gate = GateOperations(control_plane_root=Path("."), token=token)
    gate.install(package_id="PKG-FMWK-100")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["GateOperations", "__version__"]

if TYPE_CHECKING:
    from control_plane.operations import GateOperations


def __getattr__(name: str) -> Any:
    # Imported lazily so domain modules can be used without loading the operations layer.
    if name == "GateOperations":
        return importlib.import_module("control_plane.operations").GateOperations
    raise AttributeError(name)
