"""Re-export of ``GateOperations``, the only way in."""

from control_plane.operations import GateOperations

__all__ = ["GateOperations"]
