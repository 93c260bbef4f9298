"""Who a token says the caller is, and the shape every authentication provider has.

An ``Identity`` is the only thing authentication hands to authorisation: the
user, the provider that vouched for them, the raw role names the provider
resolved, and when the credential stops being valid.  Role names stay raw
strings here so that ``authorize`` can refuse unknown ones (fail closed)
instead of a provider silently dropping them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Protocol

MAX_USER_CHARS = 128

# Categories that could forge a second line or hide text in a one-line message or a ledger entry.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class Identity:
    """An authenticated caller.

    ``expires_at`` is the credential's expiry in Unix seconds, ``None`` when it
    does not expire (classic HMAC tokens, passthrough).
    """

    user: str
    provider: str
    role_names: tuple[str, ...]
    expires_at: int | None = None


class AuthProvider(Protocol):
    """Turns a token (or its absence) into an ``Identity``, or refuses."""

    name: str

    def authenticate(self, token: str | None) -> Identity:
        """The identity ``token`` proves.

        Raises:
            DeniedError: the token is missing, malformed, expired or forged; the
                message never contains the token.
        """
        ...


def user_name_problem(user: str, *, max_chars: int = MAX_USER_CHARS) -> str | None:
    """Why ``user`` is not an acceptable user name, or ``None`` when it is.

    Names must be non-empty, at most ``max_chars`` characters and free of control,
    format and line-separator characters (they end up in one-line messages and
    in the ledger).
    """
    if not user:
        return "user name is empty"
    if len(user) > max_chars:
        return f"user name is longer than {max_chars} characters"
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in user):
        return "user name contains control characters"
    return None


def shown(text: str, *, limit: int = 64) -> str:
    """``text`` quoted for a one-line message: escaped like ``repr`` and truncated."""
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)
