"""Authentication providers and the authorisation policy.

Providers turn a token into an ``Identity``; ``authorize`` decides whether
that identity may perform an ``Action``.  Nothing here reads the environment:
the operations layer passes secrets, users and settings in.

The OIDC names load on first use: PyJWT, ``cryptography`` and ``urllib``
cost tens of milliseconds that HMAC and passthrough commands need not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from control_plane.auth.authz import ROLE_ACTIONS, Action, Role, allowed_actions, authorize
from control_plane.auth.hmac_tokens import (
    MAX_TTL_SECONDS,
    HmacProvider,
    check_hmac_secret,
    hmac_key_id,
    mint_hmac_token,
    parse_ttl,
)
from control_plane.auth.identity import AuthProvider, Identity
from control_plane.auth.providers import PassthroughProvider

if TYPE_CHECKING:
    from control_plane.auth.jwks import SUPPORTED_ALGORITHMS, JwksSource
    from control_plane.auth.oidc import OidcProvider, OidcSettings

_LAZY = {
    "SUPPORTED_ALGORITHMS": "control_plane.auth.jwks",
    "JwksSource": "control_plane.auth.jwks",
    "OidcProvider": "control_plane.auth.oidc",
    "OidcSettings": "control_plane.auth.oidc",
}

__all__ = [
    "MAX_TTL_SECONDS",
    "ROLE_ACTIONS",
    "SUPPORTED_ALGORITHMS",
    "Action",
    "AuthProvider",
    "HmacProvider",
    "Identity",
    "JwksSource",
    "OidcProvider",
    "OidcSettings",
    "PassthroughProvider",
    "Role",
    "allowed_actions",
    "authorize",
    "check_hmac_secret",
    "hmac_key_id",
    "mint_hmac_token",
    "parse_ttl",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
