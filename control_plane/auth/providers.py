"""The development-only passthrough provider."""

from __future__ import annotations

from control_plane.auth.authz import Role
from control_plane.auth.identity import Identity
from control_plane.errors import DeniedError


class PassthroughProvider:
    """Trusts the operating-system user and makes them admin: development only.

    The token is ignored.  A root whose config sets ``[auth] require = true``
    passes ``require_auth=True`` and then every authentication is refused, so a
    production root cannot fall back to it by accident.
    """

    name: str = "passthrough"

    def __init__(self, os_user: str, *, require_auth: bool = False) -> None:
        self._user = os_user
        self._require_auth = require_auth

    def authenticate(self, token: str | None) -> Identity:
        """The OS user as an admin.

        Raises:
            DeniedError: the root requires real authentication.
        """
        del token
        if self._require_auth:
            raise DeniedError(
                "authentication is required by this root's config; passthrough is not allowed",
                reason="passthrough not allowed",
                hint="set CONTROL_PLANE_AUTH_PROVIDER (or [auth] provider) to hmac or oidc",
            )
        return Identity(user=self._user, provider=self.name, role_names=(Role.ADMIN.value,))
