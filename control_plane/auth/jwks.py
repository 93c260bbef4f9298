"""Signing keys for OIDC: a JWKS from a configured file or URL, never from a token.

The location comes from the root's config only.  Headers a token may carry
to point elsewhere (``jku``, ``x5u``, ``jwk``, ``x5c``) are never consulted:
``kid`` is merely a look-up key into this set.  URL documents are cached on
disk for ``cache_seconds`` so that each command does not refetch them; the
parsed key objects are kept for the life of the ``JwksSource``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWTError

from control_plane.auth.identity import shown
from control_plane.errors import DeniedError, UsageError
from control_plane.fsutil import atomic_write_text

if TYPE_CHECKING:
    from http.client import HTTPMessage

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

MAX_JWKS_BYTES = 1 << 20
MIN_RSA_BITS = 2048
CACHE_SCHEMA = "control-plane.jwks-cache/1"

_EC_CURVES: Mapping[str, type[ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
SUPPORTED_ALGORITHMS = frozenset(_RSA_ALGORITHMS | _EC_CURVES.keys() | {"EdDSA"})
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def key_fits(key: PublicKey, alg: str) -> bool:
    """True when ``key`` is of the family ``alg`` signs with (RSA, the right EC curve, Ed25519)."""
    if alg in _RSA_ALGORITHMS:
        return isinstance(key, rsa.RSAPublicKey)
    if alg in _EC_CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _EC_CURVES[alg])
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey)
    return False


@dataclass(frozen=True)
class Jwk:
    """One usable verification key from a JWKS."""

    kid: str | None
    alg: str | None
    key: PublicKey


@dataclass(frozen=True)
class KeySet:
    """A parsed JWKS: the usable keys and, by key id, why the others were skipped."""

    keys: tuple[Jwk, ...]
    skipped: Mapping[str, str]


def _public(key: object) -> PublicKey | None:
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        key = key.public_key()
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return key
    return None


def _parse_key(entry: Mapping[str, Any]) -> PublicKey:
    """One JWK as a public key; ``ValueError`` says why it cannot be used."""
    kty = entry.get("kty")
    use = entry.get("use")
    if use is not None and use != "sig":
        raise ValueError(f"key use {use!r} is not 'sig'")
    loaders: Mapping[object, Callable[[Any], object]] = {
        "RSA": RSAAlgorithm.from_jwk,
        "EC": ECAlgorithm.from_jwk,
        "OKP": OKPAlgorithm.from_jwk,
    }
    loader = loaders.get(kty) if isinstance(kty, str) else None  # a list is unhashable
    if loader is None:
        # "oct" lands here on purpose: a symmetric key must never verify anything.
        raise ValueError(f"key type {kty!r} is not supported")
    try:
        key = _public(loader(dict(entry)))
    except (PyJWTError, ValueError, TypeError) as exc:
        raise ValueError(f"malformed {kty} key: {exc}") from None
    if key is None:
        raise ValueError(f"unsupported {kty} key")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA key has {key.key_size} bits, fewer than {MIN_RSA_BITS}")
    return key


def parse_jwks(data: bytes) -> KeySet:
    """The usable signing keys of a JWKS document.

    Keys of unsupported types, non-signature keys and weak RSA keys are
    skipped (remembered by key id so a denial can say why).

    Raises:
        ValueError: not JSON, not an object with a ``keys`` list, or no usable key.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS: expected an object with a 'keys' list")
    keys: list[Jwk] = []
    skipped: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        alg = entry.get("alg")
        if not isinstance(kid, str | None) or not isinstance(alg, str | None):
            continue
        try:
            key = _parse_key(entry)
        except ValueError as exc:
            if kid is not None:
                skipped[kid] = str(exc)
            continue
        keys.append(Jwk(kid=kid, alg=alg, key=key))
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return KeySet(keys=tuple(keys), skipped=skipped)


def _is_url(location: str) -> bool:
    return location.startswith(("https://", "http://"))


def _plain_http_allowed(url: str) -> bool:
    # Plain http lets anyone on the path swap the keys: loopback only (tests, a local IdP).
    return urllib.parse.urlsplit(url).hostname in _LOOPBACK_HOSTS


def display_location(location: str) -> str:
    """``location`` without URL credentials, query or fragment, for messages."""
    if not _is_url(location):
        return location
    parts = urllib.parse.urlsplit(location)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class _NoDowngradeRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(  # noqa: PLR0917 - the base class fixes this signature
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not (newurl.startswith("https://") or _plain_http_allowed(newurl)):
            raise urllib.error.URLError("redirected to a non-https URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_url(url: str, timeout: float) -> bytes:
    """The body of ``url``, at most ``MAX_JWKS_BYTES``; ``ValueError`` says why not."""
    handlers: list[urllib.request.BaseHandler] = [_NoDowngradeRedirect()]
    if _plain_http_allowed(url):
        # A proxy from the environment must not intercept a loopback address.
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    # The scheme was checked by JwksSource: https, or http to a loopback host.
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        with opener.open(request, timeout=timeout) as response:
            size = 0
            while chunk := response.read(65536):
                size += len(chunk)
                if size > MAX_JWKS_BYTES:
                    raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise ValueError(f"timed out after {timeout:g}s")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise ValueError(f"timed out after {timeout:g}s") from None
        raise ValueError(str(reason)) from None
    except TimeoutError:
        raise ValueError(f"timed out after {timeout:g}s") from None
    except OSError as exc:
        raise ValueError(exc.strerror or type(exc).__name__) from None
    return b"".join(chunks)


class JwksSource:
    """The JWKS at ``location`` (a file path or an http(s) URL), loaded on first use."""

    def __init__(
        self,
        location: str,
        *,
        cache_dir: Path | None,
        cache_seconds: int,
        timeout: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        """Check the location and limits; nothing is read or fetched until ``key_for``.

        Raises:
            UsageError: an empty location, a plain-http URL to a non-loopback host,
                a negative cache time or a non-positive timeout.
        """
        if not location:
            raise UsageError("the JWKS location is empty")
        if location.startswith("http://") and not _plain_http_allowed(location):
            raise UsageError(
                f"JWKS URL {display_location(location)} must use https "
                "(plain http is allowed for loopback hosts only)"
            )
        if cache_seconds < 0:
            raise UsageError("jwks_cache_seconds must not be negative")
        if not timeout > 0:
            raise UsageError("the JWKS fetch timeout must be positive")
        self._location = location
        self._cache_dir = cache_dir
        self._cache_seconds = cache_seconds
        self._timeout = timeout
        self._now = now
        self._keys: KeySet | None = None
        self._loaded_at = 0.0

    @property
    def location(self) -> str:
        """Where the keys come from, as configured."""
        return self._location

    def key_for(self, kid: str | None, alg: str) -> PublicKey:
        """The key that verifies a token with header ``kid`` and ``alg``.

        Raises:
            DeniedError: the JWKS cannot be loaded, the key id is unknown, the
                token names no key id while several keys exist, or the key does
                not fit ``alg``.
        """
        keys = self._key_set()
        if kid is None:
            if len(keys.keys) != 1:
                raise DeniedError(
                    "invalid token: it names no key id and the JWKS holds several keys",
                    reason="no key id",
                )
            candidates: tuple[Jwk, ...] = keys.keys
        else:
            candidates = tuple(jwk for jwk in keys.keys if jwk.kid == kid)
            if not candidates:
                why = keys.skipped.get(kid)
                reason = f"unknown key id {shown(kid)}" + (f" ({why})" if why else "")
                raise DeniedError(f"invalid token: {reason}", reason=reason)
        for jwk in candidates:
            if (jwk.alg is None or jwk.alg == alg) and key_fits(jwk.key, alg):
                return jwk.key
        reason = f"the key for this token does not fit algorithm {alg}"
        raise DeniedError(f"invalid token: {reason}", reason=reason)

    def _key_set(self) -> KeySet:
        now = self._now()
        if self._keys is not None and (
            not _is_url(self._location) or 0 <= now - self._loaded_at < self._cache_seconds
        ):
            return self._keys
        try:
            keys, self._loaded_at = self._load(now)
        except ValueError as exc:
            reason = f"could not load JWKS from {display_location(self._location)}: {exc}"
            raise DeniedError(reason, reason=reason) from None
        self._keys = keys
        return keys

    def _load(self, now: float) -> tuple[KeySet, float]:
        """The key set and when it was fetched."""
        if not _is_url(self._location):
            return parse_jwks(self._read_file(Path(self._location))), now
        cached = self._read_cache(now)
        if cached is not None:
            return cached
        document = _fetch_url(self._location, self._timeout)
        keys = parse_jwks(document)
        self._write_cache(document, now)
        return keys, now

    @staticmethod
    def _read_file(path: Path) -> bytes:
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_JWKS_BYTES + 1)
        except OSError as exc:
            raise ValueError(exc.strerror or type(exc).__name__) from None
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
        return data

    def _cache_path(self) -> Path | None:
        if self._cache_dir is None or self._cache_seconds == 0:
            return None
        name = hashlib.sha256(self._location.encode("utf-8")).hexdigest()[:16]
        return self._cache_dir / f"jwks-{name}.json"

    def _read_cache(self, now: float) -> tuple[KeySet, float] | None:
        path = self._cache_path()
        if path is None:
            return None
        try:
            entry = json.loads(path.read_bytes())
            fetched_at = entry["fetched_at"]
            fresh = (
                entry["schema"] == CACHE_SCHEMA
                and entry["url"] == self._location
                and isinstance(fetched_at, int | float)
                and 0 <= now - fetched_at < self._cache_seconds
            )
            # A damaged or stale cache is only a reason to fetch again.
            if not fresh:
                return None
            return parse_jwks(entry["document"].encode("utf-8")), float(fetched_at)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None

    def _write_cache(self, document: bytes, now: float) -> None:
        path = self._cache_path()
        if path is None:
            return
        entry = {
            "schema": CACHE_SCHEMA,
            "url": self._location,
            "fetched_at": now,
            "document": document.decode("utf-8"),
        }
        # A read-only root still authenticates; it just fetches every time.
        with contextlib.suppress(OSError):
            atomic_write_text(path, json.dumps(entry, sort_keys=True) + "\n")
