"""Re-export of the role policy (``control_plane.auth``)."""

from control_plane.auth import ROLE_ACTIONS, Action, Role, authorize

__all__ = ["ROLE_ACTIONS", "Action", "Role", "authorize"]
