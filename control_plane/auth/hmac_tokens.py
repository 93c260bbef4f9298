"""Shared-secret tokens: the seed's classic ``user:MAC`` form and an expiring form.

Classic: ``user:HEX`` where ``HEX = hmac_sha256(secret, user)``.  It never
expires, so it is checked against every configured secret (rotation works by
configuring the old and the new secret side by side).

Expiring: ``user:EXPIRY:KID:HEX`` where ``KID`` names the secret and ``HEX``
is an HMAC over a domain-separated message, so a classic MAC can never be
replayed as an expiring one or the other way round.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from control_plane.auth.identity import Identity, user_name_problem
from control_plane.errors import DeniedError, UsageError

MIN_SECRET_BYTES = 16
MAX_TTL_SECONDS = 30 * 24 * 3600
MAX_TOKEN_CHARS = 1024

_KID_DOMAIN = b"control-plane-hmac-kid:"
_TOKEN_DOMAIN = b"control-plane-token-v2\0"
_MAC = re.compile(r"[0-9a-f]{64}")
_KID = re.compile(r"[0-9a-f]{8}")
_EXPIRY = re.compile(r"0|[1-9][0-9]{0,11}")
_TTL = re.compile(r"([1-9][0-9]{0,9})([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def hmac_key_id(secret: bytes) -> str:
    """The public id of ``secret``: 8 hex digits that reveal nothing useful about it."""
    return hashlib.sha256(_KID_DOMAIN + secret).hexdigest()[:8]


def check_hmac_secret(secret: bytes | None, variable: str = "CONTROL_PLANE_SHARED_SECRET") -> bytes:
    """``secret`` when it is usable as a shared secret.

    Raises:
        UsageError: missing, empty or shorter than 16 bytes; the message names
            ``variable``, never the value.
    """
    if secret is None:
        raise UsageError(f"{variable} is not set; the hmac provider needs a shared secret")
    if not secret:
        raise UsageError(f"{variable} is empty; the hmac provider needs a shared secret")
    if len(secret) < MIN_SECRET_BYTES:
        raise UsageError(f"{variable} is too short: use at least {MIN_SECRET_BYTES} bytes")
    return secret


def parse_ttl(text: str) -> int:
    """Seconds in a lifetime such as ``90s``, ``15m``, ``8h``, ``7d`` or ``3600``.

    Raises:
        UsageError: not that form, zero, or more than 30 days.
    """
    match = _TTL.fullmatch(text)
    if match is None:
        raise UsageError(
            f"invalid ttl {text[:32]!r}: use a positive number of seconds, "
            "or a number followed by s, m, h or d"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_TTL_SECONDS:
        raise UsageError(f"ttl {text!r} is longer than the maximum of 30 days")
    return seconds


def _check_user(user: str) -> str:
    problem = user_name_problem(user)
    if problem is None and ":" in user:
        problem = "user name contains ':'"
    if problem is not None:
        raise UsageError(f"cannot mint a token: {problem}")
    return user


def _classic_mac(secret: bytes, user: str) -> str:
    return hmac.new(secret, user.encode("utf-8"), hashlib.sha256).hexdigest()


def _expiring_mac(secret: bytes, user: str, expiry: str, kid: str) -> str:
    message = _TOKEN_DOMAIN + f"{user}:{expiry}:{kid}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def mint_hmac_token(
    secret: bytes, user: str, *, ttl_seconds: int | None = None, now: float | None = None
) -> str:
    """A token for ``user``: classic when ``ttl_seconds`` is ``None``, else expiring.

    Raises:
        UsageError: a bad user name (empty, ``:``, control characters, too long)
            or a ttl outside 1 second .. 30 days.
    """
    _check_user(user)
    if ttl_seconds is None:
        return f"{user}:{_classic_mac(secret, user)}"
    if isinstance(ttl_seconds, bool) or not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise UsageError("cannot mint a token: ttl must be between 1 second and 30 days")
    issued = int(time.time() if now is None else now)
    expiry = str(issued + ttl_seconds)
    kid = hmac_key_id(secret)
    return f"{user}:{expiry}:{kid}:{_expiring_mac(secret, user, expiry, kid)}"


def format_utc(seconds: int) -> str:
    """Unix seconds as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deny(reason: str, *, actor: str | None = None) -> DeniedError:
    return DeniedError(
        f"invalid token: {reason}",
        actor=actor,
        reason=reason,
        hint="mint a token with 'cpctl token mint'; pass it with --token or CONTROL_PLANE_TOKEN",
    )


class HmacProvider:
    """Verifies shared-secret tokens and looks the user's roles up in ``users``."""

    name: str = "hmac"

    def __init__(
        self,
        secrets: Mapping[str, bytes],
        users: Mapping[str, tuple[str, ...]],
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        """``secrets`` maps key id to secret, current secret first.

        Raises:
            UsageError: no secret, a too-short secret, or a key id that is not
                ``hmac_key_id`` of its secret.
        """
        if not secrets:
            raise UsageError("the hmac provider needs at least one shared secret")
        for kid, secret in secrets.items():
            check_hmac_secret(secret, f"shared secret {kid!r}")
            if kid != hmac_key_id(secret):
                raise UsageError(f"shared secret {kid!r} is not listed under its own key id")
        self._secrets = dict(secrets)
        self._users = {user: tuple(roles) for user, roles in users.items()}
        self._now = now

    @property
    def current_key_id(self) -> str:
        """The key id of the secret new tokens are minted with."""
        return next(iter(self._secrets))

    def authenticate(self, token: str | None) -> Identity:
        """The identity a classic or expiring token proves.

        Raises:
            DeniedError: missing, empty, malformed, forged, expired or unknown-key
                token; the message never contains the token.
        """
        if token is None:
            raise _deny("no token given")
        if not token:
            raise _deny("the token is empty")
        if len(token) > MAX_TOKEN_CHARS:
            raise _deny(f"the token is longer than {MAX_TOKEN_CHARS} characters")
        parts = token.split(":")
        if len(parts) == 2:
            user, mac = parts
            self._check_shape(user, mac)
            return self._classic(user, mac)
        if len(parts) == 4:
            user, expiry, kid, mac = parts
            self._check_shape(user, mac)
            return self._expiring(user, expiry, kid, mac)
        raise _deny("expected 'user:mac' or 'user:expiry:key-id:mac'")

    @staticmethod
    def _check_shape(user: str, mac: str) -> None:
        problem = user_name_problem(user)
        if problem is not None:
            raise _deny(problem)
        # Exactly what mint produces: upper-case or truncated MACs are someone else's bytes.
        if _MAC.fullmatch(mac) is None:
            raise _deny("the MAC is not 64 lower-case hex digits")

    def _classic(self, user: str, mac: str) -> Identity:
        matched = False
        for secret in self._secrets.values():
            # No early exit: the time taken must not reveal which secret matched.
            matched |= hmac.compare_digest(_classic_mac(secret, user), mac)
        if not matched:
            raise _deny("the MAC does not match")
        return Identity(user=user, provider=self.name, role_names=self._roles(user))

    def _expiring(self, user: str, expiry: str, kid: str, mac: str) -> Identity:
        secret = self._secrets.get(kid) if _KID.fullmatch(kid) else None
        if secret is None:
            raise _deny("unknown key id (the secret it was minted with is not configured)")
        if _EXPIRY.fullmatch(expiry) is None:
            raise _deny("the expiry is not a plain decimal number of seconds")
        if not hmac.compare_digest(_expiring_mac(secret, user, expiry, kid), mac):
            raise _deny("the MAC does not match")
        expires_at = int(expiry)
        now = self._now()
        if now >= expires_at:
            raise _deny(f"token expired at {format_utc(expires_at)}", actor=user)
        if expires_at > now + MAX_TTL_SECONDS:
            raise _deny("the expiry is more than 30 days ahead", actor=user)
        return Identity(
            user=user, provider=self.name, role_names=self._roles(user), expires_at=expires_at
        )

    def _roles(self, user: str) -> tuple[str, ...]:
        return self._users.get(user, ())
