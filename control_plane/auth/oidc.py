"""OIDC: JWTs verified with PyJWT against keys from a configured JWKS.

What a token says about itself is untrusted until its signature checks out:
the header's ``alg`` must be one the root allows (never ``none``, never an
HMAC algorithm, so a public key can never act as a shared secret), its
``kid`` only selects a key from the configured JWKS, and the key's type must
fit the algorithm.  Expiry, not-before and issued-at are checked here against
the injected clock; signature, issuer, audience and required claims by PyJWT.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from control_plane.auth.authz import Role
from control_plane.auth.hmac_tokens import format_utc
from control_plane.auth.identity import Identity, shown, user_name_problem
from control_plane.auth.jwks import SUPPORTED_ALGORITHMS, JwksSource
from control_plane.errors import DeniedError, UsageError

MAX_LEEWAY_SECONDS = 60
MAX_JWT_CHARS = 16 * 1024
MAX_SUBJECT_CHARS = 255
MAX_ROLE_VALUES = 256

_YEAR_10000 = 253_402_300_800
_ALG_TEXT = re.compile(r"[A-Za-z0-9]{1,16}")


@dataclass(frozen=True)
class OidcSettings:
    """How a root trusts an OpenID Connect issuer.

    ``jwks`` is a file path or an http(s) URL.  With an empty ``role_map`` the
    values of ``roles_claim`` are role names; with a map, values missing from it
    are ignored.

    Raises (on construction):
        UsageError: empty issuer, audience or JWKS location; an empty, unknown,
            ``none`` or HMAC algorithm; leeway outside 0..60; a role map naming an
            unknown role; a negative cache time or a non-positive timeout.
    """

    issuer: str
    audience: str
    jwks: str
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_seconds: int = 0
    roles_claim: str = "roles"
    role_map: Mapping[str, str] = field(default_factory=dict, hash=False)
    jwks_cache_seconds: int = 300
    fetch_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        for name in ("issuer", "audience", "jwks", "roles_claim"):
            if not getattr(self, name):
                raise UsageError(f"auth.oidc.{name} must not be empty")
        if not self.algorithms:
            raise UsageError("auth.oidc.algorithms must list at least one algorithm")
        for alg in self.algorithms:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise UsageError(
                    f"auth.oidc.algorithms: {alg!r} is not allowed; only public-key "
                    "algorithms can verify tokens from an identity provider"
                )
            if alg not in SUPPORTED_ALGORITHMS:
                known = ", ".join(sorted(SUPPORTED_ALGORITHMS))
                raise UsageError(
                    f"auth.oidc.algorithms: unknown algorithm {alg!r} (known: {known})"
                )
        if isinstance(self.leeway_seconds, bool) or not (
            0 <= self.leeway_seconds <= MAX_LEEWAY_SECONDS
        ):
            raise UsageError(f"auth.oidc.leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS}")
        for claim_value, role in self.role_map.items():
            if role not in {known.value for known in Role}:
                raise UsageError(
                    f"auth.oidc.role_map: {claim_value!r} maps to unknown role {role!r}"
                )
        if self.jwks_cache_seconds < 0:
            raise UsageError("auth.oidc.jwks_cache_seconds must not be negative")
        if not self.fetch_timeout_seconds > 0:
            raise UsageError("auth.oidc.fetch_timeout_seconds must be positive")
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        object.__setattr__(self, "role_map", MappingProxyType(dict(self.role_map)))


def _deny(reason: str, *, actor: str | None = None) -> DeniedError:
    return DeniedError(f"invalid token: {reason}", actor=actor, reason=reason)


def _decode_reason(exc: jwt_errors.PyJWTError) -> str:
    """A short, token-free reason for a PyJWT failure."""
    if isinstance(exc, jwt_errors.InvalidSignatureError):
        return "signature verification failed"
    if isinstance(exc, jwt_errors.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt_errors.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return f"missing claim {shown(exc.claim)}"
    if isinstance(exc, jwt_errors.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt_errors.InvalidSubjectError):
        return "the subject is not a string"
    if isinstance(exc, jwt_errors.DecodeError):
        return "malformed token"
    return "the token was refused"


def _timestamp(payload: Mapping[str, Any], claim: str) -> float | None:
    value = payload.get(claim)
    if value is None:
        return None
    # Past year 9999 a timestamp cannot be shown or compared meaningfully; refuse it.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value < _YEAR_10000
    ):
        raise _deny(f"claim {claim!r} is not a number of seconds")
    return float(value)


class OidcProvider:
    """Verifies ID/access tokens from one issuer and maps a claim to role names."""

    name: str = "oidc"

    def __init__(
        self, settings: OidcSettings, jwks: JwksSource, *, now: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._jwks = jwks
        self._now = now

    def authenticate(self, token: str | None) -> Identity:
        """The identity (``user`` = ``sub``) a signed, current token proves.

        Raises:
            DeniedError: missing, malformed, expired, not yet valid or forged token;
                a disallowed algorithm; an unknown key id; wrong issuer or
                audience; a missing or malformed role claim; a JWKS that cannot
                be loaded.  The message never contains the token.
        """
        if token is None:
            raise _deny("no token given")
        if not token:
            raise _deny("the token is empty")
        if len(token) > MAX_JWT_CHARS:
            raise _deny(f"the token is longer than {MAX_JWT_CHARS} characters")
        alg, kid = self._header(token)
        key = self._jwks.key_for(kid, alg)
        settings = self._settings
        try:
            payload = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=settings.audience,
                issuer=settings.issuer,
                # Time claims are checked below against the injected clock.
                options={
                    "require": ["exp", "iat", "sub"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt_errors.PyJWTError as exc:
            raise _deny(_decode_reason(exc)) from None
        if not isinstance(payload, dict):
            raise _deny("malformed token")
        user = payload["sub"]
        problem = (
            user_name_problem(user, max_chars=MAX_SUBJECT_CHARS)
            if isinstance(user, str)
            else "the subject is not a string"
        )
        if problem is not None:
            raise _deny(problem.replace("user name", "subject"))
        expires_at = self._check_times(payload, user)
        return Identity(
            user=user,
            provider=self.name,
            role_names=self._role_names(payload, user),
            expires_at=expires_at,
        )

    def _header(self, token: str) -> tuple[str, str | None]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise _deny("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise _deny("the header names no algorithm")
        named = repr(alg) if _ALG_TEXT.fullmatch(alg) else "in the header"
        if alg.lower() == "none":
            raise _deny("algorithm 'none' is not allowed")
        if alg.upper().startswith("HS"):
            raise _deny(f"algorithm {named} is not allowed (HMAC algorithms are never accepted)")
        if alg not in self._settings.algorithms:
            allowed = ", ".join(self._settings.algorithms)
            raise _deny(f"algorithm {named} is not allowed (allowed: {allowed})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _deny("the key id is not a string")
        return alg, kid

    def _check_times(self, payload: Mapping[str, Any], user: str) -> int:
        now = self._now()
        leeway = self._settings.leeway_seconds
        expires = _timestamp(payload, "exp")
        issued = _timestamp(payload, "iat")
        not_before = _timestamp(payload, "nbf")
        if expires is None or issued is None:
            raise _deny("missing claim 'exp' or 'iat'")
        if expires <= now - leeway:
            raise _deny(f"token expired at {format_utc(int(expires))}", actor=user)
        if not_before is not None and not_before > now + leeway:
            raise _deny("token not yet valid (nbf is in the future)", actor=user)
        if issued > now + leeway:
            raise _deny("token issued in the future (iat)", actor=user)
        return int(expires)

    def _role_names(self, payload: Mapping[str, Any], user: str) -> tuple[str, ...]:
        claim = self._settings.roles_claim
        if claim not in payload:
            raise _deny(f"the token has no {claim!r} claim", actor=user)
        value = payload[claim]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
            raise _deny(f"claim {claim!r} must be a string or a list of strings", actor=user)
        if len(values) > MAX_ROLE_VALUES:
            raise _deny(f"claim {claim!r} has more than {MAX_ROLE_VALUES} values", actor=user)
        role_map = self._settings.role_map
        names = [role_map[item] for item in values if item in role_map] if role_map else values
        return tuple(dict.fromkeys(names))
