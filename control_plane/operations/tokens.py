"""token mint: issue HMAC tokens from the shared secret in the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from control_plane.auth import check_hmac_secret, hmac_key_id, mint_hmac_token, parse_ttl
from control_plane.operations.results import Result
from control_plane.operations.session import SECRET_VARIABLE


@dataclass(frozen=True)
class TokenResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.token/1"
    user: str
    token: str
    expires_at: int | None
    key_id: str | None

    def payload(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "token": self.token,
            "expires_at": self.expires_at,
            "key_id": self.key_id,
        }


def mint(env: Mapping[str, str], user: str, ttl: str | None) -> TokenResult:
    """A token for ``user`` (expiring when ``ttl`` is given), signed with the current secret.

    Raises:
        UsageError: no usable secret, a bad user name or a bad ttl.
    """
    raw = env.get(SECRET_VARIABLE)
    secret = check_hmac_secret(None if raw is None else raw.encode("utf-8"), SECRET_VARIABLE)
    seconds = None if ttl is None else parse_ttl(ttl)
    token = mint_hmac_token(secret, user, ttl_seconds=seconds)
    expires = int(token.split(":")[1]) if seconds is not None else None
    return TokenResult(
        user=user,
        token=token,
        expires_at=expires,
        key_id=hmac_key_id(secret) if seconds is not None else None,
    )
