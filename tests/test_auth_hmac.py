"""Shared-secret tokens: minting, verification, rotation and every malformed input."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.auth import (
    Action,
    HmacProvider,
    Identity,
    authorize,
    check_hmac_secret,
    hmac_key_id,
    mint_hmac_token,
    parse_ttl,
)
from control_plane.errors import DeniedError, UsageError

NOW = 1_800_000_000
OLD = b"old-secret-0123456789"
NEW = b"new-secret-9876543210"
STRANGER = b"never-configured-secret"
USERS = {"alice": ("admin",), "bob": ("reader",)}
DAY = 86400


def provider(*secrets: bytes, now: float = NOW) -> HmacProvider:
    keyed = {hmac_key_id(secret): secret for secret in secrets}
    return HmacProvider(keyed, USERS, now=lambda: now)


def classic_mac(secret: bytes, user: str) -> str:
    return hmac.new(secret, user.encode(), hashlib.sha256).hexdigest()


def classic(user: str, secret: bytes = NEW) -> str:
    return f"{user}:{classic_mac(secret, user)}"


def expiring(user: str, expiry: str, secret: bytes, *, kid: str | None = None) -> str:
    kid = hmac_key_id(secret) if kid is None else kid
    message = b"control-plane-token-v2\0" + f"{user}:{expiry}:{kid}".encode()
    return f"{user}:{expiry}:{kid}:{hmac.new(secret, message, hashlib.sha256).hexdigest()}"


# --- vectors (checked against `openssl dgst -sha256 -hmac`) -----------------------------------

VECTOR_SECRET = b"0123456789abcdef"


def test_classic_vector() -> None:
    assert mint_hmac_token(VECTOR_SECRET, "alice") == (
        "alice:fdbf8b1cacd3d578e062d0e41104357d06aa63eca39f80b6fd7c83afedf1d44a"
    )


def test_expiring_vector() -> None:
    token = mint_hmac_token(VECTOR_SECRET, "alice", ttl_seconds=3600, now=1_700_000_000.5)
    assert token == (
        "alice:1700003600:5b697086:e4605825b96aeebca6db1af519ab754db3266fe0bddab84d7507e15952ea93cd"
    )
    assert hmac_key_id(VECTOR_SECRET) == "5b697086"


# --- accepted tokens --------------------------------------------------------------------------


def test_classic_token_authenticates() -> None:
    identity = provider(NEW).authenticate(mint_hmac_token(NEW, "alice"))
    assert identity == Identity(user="alice", provider="hmac", role_names=("admin",))
    assert authorize(identity, Action.CREATE).value == "admin"


def test_expiring_token_authenticates() -> None:
    token = mint_hmac_token(NEW, "bob", ttl_seconds=900, now=NOW)
    identity = provider(NEW, now=NOW + 899).authenticate(token)
    assert identity == Identity("bob", "hmac", ("reader",), expires_at=NOW + 900)


def test_unlisted_user_authenticates_without_roles() -> None:
    identity = provider(NEW).authenticate(mint_hmac_token(NEW, "mallory"))
    assert identity.role_names == ()
    with pytest.raises(DeniedError, match=r"no role in \[authz.users\]"):
        authorize(identity, Action.VERIFY)


def test_unicode_user_names_work() -> None:
    token = mint_hmac_token(NEW, "zoë")
    assert provider(NEW).authenticate(token).user == "zoë"


# --- refused tokens ---------------------------------------------------------------------------

TokenFactory = Callable[[], "str | None"]

BAD_TOKENS: list[tuple[str, TokenFactory, str]] = [
    ("no-token", lambda: None, "no token given"),
    ("empty-token", lambda: "", "the token is empty"),
    ("wrong-hmac", lambda: f"alice:{classic_mac(STRANGER, 'alice')}", "MAC does not match"),
    ("another-users-hmac", lambda: f"alice:{classic_mac(NEW, 'bob')}", "MAC does not match"),
    ("truncated-hex", lambda: f"alice:{classic_mac(NEW, 'alice')[:63]}", "64 lower-case hex"),
    ("short-hex", lambda: f"alice:{classic_mac(NEW, 'alice')[:32]}", "64 lower-case hex"),
    ("upper-cased-hex", lambda: f"alice:{classic_mac(NEW, 'alice').upper()}", "64 lower-case"),
    ("extra-hex", lambda: f"alice:{classic_mac(NEW, 'alice')}0", "64 lower-case hex"),
    ("non-hex", lambda: "alice:" + "g" * 64, "64 lower-case hex"),
    ("colon-in-user", lambda: f"al:ice:{classic_mac(NEW, 'al:ice')}", "expected 'user:mac'"),
    ("no-colon", lambda: classic_mac(NEW, "alice"), "expected 'user:mac'"),
    ("five-parts", lambda: expiring("alice", str(NOW + 60), NEW) + ":x", "expected 'user:mac'"),
    ("empty-user", lambda: f":{classic_mac(NEW, '')}", "user name is empty"),
    ("newline-in-user", lambda: classic("al\nice"), "control characters"),
    ("bidi-in-user", lambda: classic("\u202ealice"), "control char"),
    ("long-user", lambda: f"{'a' * 129}:{classic_mac(NEW, 'a' * 129)}", "longer than 128"),
    ("huge-token", lambda: "a" * 5000, "longer than 1024"),
    (
        "expired",
        lambda: expiring("alice", str(NOW - 1), NEW),
        "token expired at 2027-01-15T07:59:59Z",
    ),
    ("expires-now", lambda: expiring("alice", str(NOW), NEW), "token expired at"),
    ("unknown-key-id", lambda: mint_hmac_token(STRANGER, "alice", ttl_seconds=60, now=NOW), "un"),
    ("malformed-key-id", lambda: expiring("alice", str(NOW + 60), NEW, kid="XYZ"), "unknown key"),
    ("expiry-leading-zero", lambda: expiring("alice", f"0{NOW + 60}", NEW), "plain decimal"),
    ("expiry-plus-sign", lambda: expiring("alice", f"+{NOW + 60}", NEW), "plain decimal"),
    ("expiry-not-number", lambda: expiring("alice", "soon", NEW), "plain decimal"),
    ("expiry-too-far", lambda: expiring("alice", str(NOW + 31 * DAY), NEW), "30 days ahead"),
    (
        "tampered-expiry",
        lambda: mint_hmac_token(NEW, "alice", ttl_seconds=60, now=NOW).replace(
            str(NOW + 60), str(NOW + 7200)
        ),
        "MAC does not match",
    ),
    (
        "tampered-user",
        lambda: "bob" + mint_hmac_token(NEW, "alice", ttl_seconds=60, now=NOW)[5:],
        "MAC does not match",
    ),
    (
        "classic-mac-in-expiring-form",
        lambda: f"alice:{NOW + 60}:{hmac_key_id(NEW)}:{classic_mac(NEW, 'alice')}",
        "MAC does not match",
    ),
    (
        "mac-without-domain-separation",
        lambda: (
            f"alice:{NOW + 60}:{hmac_key_id(NEW)}:"
            + classic_mac(NEW, f"alice:{NOW + 60}:{hmac_key_id(NEW)}")
        ),
        "MAC does not match",
    ),
]


@pytest.mark.parametrize(
    ("factory", "reason"),
    [(factory, reason) for _, factory, reason in BAD_TOKENS],
    ids=[name for name, _, _ in BAD_TOKENS],
)
def test_bad_tokens_are_denied(factory: TokenFactory, reason: str) -> None:
    token = factory()
    with pytest.raises(DeniedError) as caught:
        provider(NEW).authenticate(token)
    error = caught.value
    assert reason in str(error)
    assert error.exit_code == 3
    rendered = f"{error} {error.reason} {error.hint}"
    assert "\n" not in rendered
    for part in (token or "").split(":"):
        if len(part) >= 32:
            assert part not in rendered, "a MAC leaked into the message"
    assert NEW.decode() not in rendered


def test_expiry_boundary() -> None:
    token = mint_hmac_token(NEW, "alice", ttl_seconds=60, now=NOW)
    assert provider(NEW, now=NOW + 59.999).authenticate(token).expires_at == NOW + 60
    with pytest.raises(DeniedError, match="expired"):
        provider(NEW, now=NOW + 60).authenticate(token)


def test_classic_token_never_expires() -> None:
    token = mint_hmac_token(NEW, "alice")
    assert provider(NEW, now=NOW + 10 * 365 * DAY).authenticate(token).expires_at is None


# --- rotation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [None, 3600], ids=["classic", "expiring"])
def test_rotation(ttl: int | None) -> None:
    token = mint_hmac_token(OLD, "alice", ttl_seconds=ttl, now=NOW)
    rotated = provider(NEW, OLD)
    assert rotated.current_key_id == hmac_key_id(NEW)
    assert rotated.authenticate(token).user == "alice"
    assert rotated.authenticate(mint_hmac_token(NEW, "alice", ttl_seconds=ttl, now=NOW))
    with pytest.raises(DeniedError, match="MAC does not match" if ttl is None else "unknown key"):
        provider(NEW).authenticate(token)


def test_key_ids_must_belong_to_their_secrets() -> None:
    with pytest.raises(UsageError, match="not listed under its own key id"):
        HmacProvider({hmac_key_id(OLD): NEW}, USERS)
    with pytest.raises(UsageError, match="at least one"):
        HmacProvider({}, USERS)
    with pytest.raises(UsageError, match="too short"):
        HmacProvider({hmac_key_id(b"short"): b"short"}, USERS)


# --- secrets, users and ttls ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "message"),
    [(None, "is not set"), (b"", "is empty"), (b"fifteen-bytes!!", "too short")],
    ids=["missing", "empty", "fifteen-bytes"],
)
def test_check_hmac_secret_refuses(secret: bytes | None, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_hmac_secret(secret, "MY_SECRET")
    assert "MY_SECRET" in str(caught.value)
    assert message in str(caught.value)
    if secret:
        assert secret.decode() not in str(caught.value)


def test_check_hmac_secret_accepts_sixteen_bytes() -> None:
    assert check_hmac_secret(b"x" * 16) == b"x" * 16


@pytest.mark.parametrize(
    "user",
    ["", "a:b", "a\nb", "tab\there", "\u202eevil", "x" * 129],
    ids=["empty", "colon", "newline", "tab", "bidi-override", "129-chars"],
)
def test_mint_refuses_bad_user_names(user: str) -> None:
    with pytest.raises(UsageError, match="cannot mint a token"):
        mint_hmac_token(NEW, user)


@pytest.mark.parametrize("ttl", [0, -1, 30 * DAY + 1], ids=["zero", "negative", "over-30-days"])
def test_mint_refuses_bad_ttls(ttl: int) -> None:
    with pytest.raises(UsageError, match="ttl"):
        mint_hmac_token(NEW, "alice", ttl_seconds=ttl)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("8h", 28800), ("7d", 604800), ("3600", 3600), ("30d", 30 * DAY)],
    ids=["seconds", "minutes", "hours", "days", "plain", "max"],
)
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "0", "0s", "-5", "+5", "05", "1w", "5S", "1.5h", " 5", "5 ", "h", "31d", "2592001", "٣"],
    ids=[
        "empty", "zero", "zero-s", "negative", "plus", "leading-zero", "weeks", "upper-unit",
        "fraction", "leading-space", "trailing-space", "unit-only", "31-days", "over-max",
        "arabic-digit",
    ],
)  # fmt: skip
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ttl(text)


# --- properties -------------------------------------------------------------------------------

user_names = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"), blacklist_characters=":"
    ),
    min_size=1,
    max_size=128,
)


@given(user=user_names, ttl=st.one_of(st.none(), st.integers(1, 30 * DAY)))
def test_round_trip(user: str, ttl: int | None) -> None:
    token = mint_hmac_token(NEW, user, ttl_seconds=ttl, now=NOW)
    identity = provider(NEW).authenticate(token)
    assert identity.user == user
    assert identity.expires_at == (None if ttl is None else NOW + ttl)


@given(token=st.text(max_size=300))
def test_arbitrary_text_is_only_ever_denied(token: str) -> None:
    with pytest.raises(DeniedError):
        provider(NEW).authenticate(token)


@given(data=st.data(), ttl=st.one_of(st.none(), st.integers(1, 3600)))
def test_any_single_character_change_is_denied(data: st.DataObject, ttl: int | None) -> None:
    token = mint_hmac_token(NEW, "alice", ttl_seconds=ttl, now=NOW)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[index]))
    with pytest.raises(DeniedError):
        provider(NEW).authenticate(token[:index] + replacement + token[index + 1 :])
