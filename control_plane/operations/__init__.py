"""The operations layer: ``GateOperations`` and the results it returns."""

from control_plane.operations.gate import GateOperations

__all__ = ["GateOperations"]
