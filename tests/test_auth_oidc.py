"""OIDC: JWTs against a configured JWKS, every forgery we know of, and the JWKS cache.

Keys are made here with ``cryptography``; URL mode uses a local ``http.server``
on 127.0.0.1.  Nothing touches the network.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

from control_plane.auth import (
    Action,
    Identity,
    JwksSource,
    OidcProvider,
    OidcSettings,
    authorize,
)
from control_plane.auth import jwks as jwks_module
from control_plane.errors import DeniedError, UsageError

NOW = 1_800_000_000
ISSUER = "https://idp.example.test"
AUDIENCE = "control-plane"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
# Deliberately weak: the JWKS loader must refuse it.
WEAK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def jwk(key: Any, kid: str | None, **extra: str) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        entry = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        entry = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        entry = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        entry["kid"] = kid
    entry.update(extra)
    return entry


JWKS = {"keys": [jwk(RSA_KEY, "rsa-1"), jwk(EC_KEY, "ec-1"), jwk(ED_KEY, "ed-1")]}
SIGNERS = {"RS256": (RSA_KEY, "rsa-1"), "ES256": (EC_KEY, "ec-1"), "EdDSA": (ED_KEY, "ed-1")}


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": NOW - 10,
        "exp": NOW + 600,
        "roles": ["admin"],
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(alg: str = "RS256", key: Any = None, kid: str | None = "", **overrides: Any) -> str:
    default_key, default_kid = SIGNERS[alg if alg in SIGNERS else "RS256"]
    headers = {"kid": default_kid if kid == "" else kid}
    if headers["kid"] is None:
        del headers["kid"]
    return jwt.encode(claims(**overrides), key or default_key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: Mapping[str, Any], payload: Mapping[str, Any], secret: bytes | None) -> str:
    """A JWT built by hand, for what PyJWT refuses to create."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b"" if secret is None else hmac.digest(secret, signing_input.encode(), "sha256")
    return f"{signing_input}.{b64(signature)}"


def tamper(token: str, **overrides: Any) -> str:
    header, _payload, signature = token.split(".")
    return f"{header}.{b64(json.dumps(claims(**overrides)).encode())}.{signature}"


def rsa_public_pem() -> bytes:
    return RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_jwks(path: Path, document: Any) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def make_provider(
    location: str,
    *,
    now: float = NOW,
    cache_dir: Path | None = None,
    **settings: Any,
) -> OidcProvider:
    config = OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks=location, **settings)
    source = JwksSource(
        location,
        cache_dir=cache_dir,
        cache_seconds=config.jwks_cache_seconds,
        timeout=config.fetch_timeout_seconds,
        now=lambda: now,
    )
    return OidcProvider(config, source, now=lambda: now)


@pytest.fixture
def jwks_file(tmp_path: Path) -> str:
    return write_jwks(tmp_path / "jwks.json", JWKS)


# --- a local JWKS server ----------------------------------------------------------------------


@dataclass
class Server:
    base: str
    routes: dict[str, tuple[int, bytes, dict[str, str]]]
    hits: list[str] = field(default_factory=list)
    delay: float = 0.0

    def url(self, path: str = "/jwks.json") -> str:
        return self.base + path


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="", routes={"/jwks.json": (200, json.dumps(JWKS).encode(), {})})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            if state.delay:
                time.sleep(state.delay)
            status, body, headers = state.routes.get(self.path, (404, b"not found", {}))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # Clients that give up (too large, timed out) close early; that is the point.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- accepted tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_each_algorithm_authenticates(jwks_file: str, alg: str) -> None:
    identity = make_provider(jwks_file).authenticate(sign(alg))
    assert identity == Identity("alice", "oidc", ("admin",), expires_at=NOW + 600)
    assert authorize(identity, Action.CREATE).value == "admin"


def test_single_key_without_kid(tmp_path: Path) -> None:
    location = write_jwks(tmp_path / "one.json", {"keys": [jwk(RSA_KEY, None)]})
    assert make_provider(location).authenticate(sign(kid=None)).user == "alice"


def test_role_map_and_groups_claim(jwks_file: str) -> None:
    provider = make_provider(
        jwks_file, roles_claim="groups", role_map={"cp-admins": "admin", "cp-ops": "maintainer"}
    )
    token = sign(roles=None, groups=["staff", "cp-ops", "cp-admins", "cp-ops"])
    assert provider.authenticate(token).role_names == ("maintainer", "admin")
    assert provider.authenticate(sign(roles=None, groups="cp-ops")).role_names == ("maintainer",)


def test_role_not_in_map_leaves_no_role(jwks_file: str) -> None:
    provider = make_provider(jwks_file, role_map={"cp-admins": "admin"})
    identity = provider.authenticate(sign(roles=["admin", "staff"]))
    assert identity.role_names == ()
    with pytest.raises(DeniedError, match="has no role"):
        authorize(identity, Action.VERIFY)


def test_unknown_role_without_map_fails_closed(jwks_file: str) -> None:
    identity = make_provider(jwks_file).authenticate(sign(roles=["admin", "wizard"]))
    with pytest.raises(DeniedError, match="unknown role 'wizard'"):
        authorize(identity, Action.VERIFY)


def test_leeway(jwks_file: str) -> None:
    token = sign(exp=NOW - 30, iat=NOW - 600)
    with pytest.raises(DeniedError, match="expired"):
        make_provider(jwks_file).authenticate(token)
    assert make_provider(jwks_file, leeway_seconds=60).authenticate(token).user == "alice"


def test_audience_list_containing_ours(jwks_file: str) -> None:
    token = sign(aud=["other", AUDIENCE])
    assert make_provider(jwks_file).authenticate(token).user == "alice"


# --- refused tokens ---------------------------------------------------------------------------

TokenFactory = Callable[[], "str | None"]

BAD_TOKENS: list[tuple[str, TokenFactory, str]] = [
    ("no-token", lambda: None, "no token given"),
    ("empty-token", lambda: "", "the token is empty"),
    ("garbage", lambda: "not-a-jwt", "malformed token"),
    ("three-dots-of-junk", lambda: "a.b.c", "malformed token"),
    ("huge", lambda: "a" * 20000, "longer than"),
    ("alg-none", lambda: craft({"alg": "none", "kid": "rsa-1"}, claims(), None), "'none' is not"),
    ("alg-None", lambda: craft({"alg": "None", "kid": "rsa-1"}, claims(), None), "'none' is not"),
    (
        "hs256-with-rsa-public-key-as-secret",
        lambda: craft({"alg": "HS256", "kid": "rsa-1"}, claims(), rsa_public_pem()),
        "algorithm 'HS256' is not allowed",
    ),
    (
        "hs256-without-kid",
        lambda: craft({"alg": "HS256"}, claims(), rsa_public_pem()),
        "algorithm 'HS256' is not allowed",
    ),
    ("alg-not-in-allow-list", lambda: sign("PS256", RSA_KEY, kid="rsa-1"), "'PS256' is not allow"),
    ("alg-missing", lambda: craft({"kid": "rsa-1"}, claims(), None), "names no algorithm"),
    (
        "alg-key-family-mismatch",
        lambda: sign("ES256", EC_KEY, kid="rsa-1"),
        "does not fit algorithm ES256",
    ),
    ("expired", lambda: sign(exp=NOW - 1), "token expired at 2027-01-15T07:59:59Z"),
    ("expires-now", lambda: sign(exp=NOW), "token expired"),
    ("nbf-in-future", lambda: sign(nbf=NOW + 120), "not yet valid"),
    ("iat-in-future", lambda: sign(iat=NOW + 120), "issued in the future"),
    ("exp-not-a-number", lambda: sign(exp="tomorrow"), "'exp' is not a number"),
    ("exp-negative-huge", lambda: sign(exp=-(10**20)), "'exp' is not a number"),
    ("exp-boolean", lambda: sign(exp=True), "'exp' is not a number"),
    ("too-many-roles", lambda: sign(roles=["reader"] * 257), "more than 256 values"),
    ("wrong-audience", lambda: sign(aud="someone-else"), "wrong audience"),
    ("wrong-issuer", lambda: sign(iss="https://evil.example.test"), "wrong issuer"),
    ("missing-exp", lambda: sign(exp=None), "missing claim 'exp'"),
    ("missing-iat", lambda: sign(iat=None), "missing claim 'iat'"),
    ("missing-sub", lambda: sign(sub=None), "missing claim 'sub'"),
    ("sub-not-string", lambda: sign(sub=42), "subject is not a string"),
    ("sub-with-newline", lambda: sign(sub="alice\nadmin"), "subject contains control"),
    ("sub-empty", lambda: sign(sub=""), "subject is empty"),
    ("unknown-kid", lambda: sign(kid="rsa-9"), "unknown key id 'rsa-9'"),
    (
        "kid-not-string",
        lambda: craft({"alg": "RS256", "kid": 7}, claims(), None),
        "malformed token",
    ),
    ("tampered-payload", lambda: tamper(sign(roles=["reader"])), "signature verification failed"),
    (
        "signed-by-key-not-in-jwks",
        lambda: sign(key=ATTACKER_KEY, kid="rsa-1"),
        "signature verification failed",
    ),
    (
        "embedded-jwk-header",
        lambda: jwt.encode(
            claims(),
            ATTACKER_KEY,
            algorithm="RS256",
            headers={"kid": "rsa-1", "jwk": jwk(ATTACKER_KEY, "rsa-1")},
        ),
        "signature verification failed",
    ),
    ("missing-roles-claim", lambda: sign(roles=None), "has no 'roles' claim"),
    ("roles-not-strings", lambda: sign(roles=["admin", 1]), "string or a list of strings"),
    ("roles-object", lambda: sign(roles={"admin": True}), "string or a list of strings"),
    (
        "unknown-critical-header",
        lambda: jwt.encode(
            claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1", "crit": ["x"], "x": 1}
        ),
        "malformed token",
    ),
]


@pytest.mark.parametrize(
    ("factory", "reason"),
    [(factory, reason) for _, factory, reason in BAD_TOKENS],
    ids=[name for name, _, _ in BAD_TOKENS],
)
def test_bad_tokens_are_denied(jwks_file: str, factory: TokenFactory, reason: str) -> None:
    token = factory()
    with pytest.raises(DeniedError) as caught:
        make_provider(jwks_file).authenticate(token)
    error = caught.value
    rendered = f"{error} {error.reason} {error.hint}"
    assert reason in str(error)
    assert error.exit_code == 3
    assert "\n" not in rendered
    for segment in (token or "").split("."):
        if len(segment) >= 16:
            assert segment not in rendered, "part of the token leaked into the message"


def test_no_kid_with_several_keys(jwks_file: str) -> None:
    with pytest.raises(DeniedError, match="names no key id"):
        make_provider(jwks_file).authenticate(sign(kid=None))


@pytest.mark.filterwarnings("ignore:The RSA key is 1024 bits")
def test_weak_rsa_key_in_jwks_is_refused(tmp_path: Path) -> None:
    location = write_jwks(
        tmp_path / "weak.json", {"keys": [jwk(WEAK_KEY, "weak"), JWKS["keys"][0]]}
    )
    with pytest.raises(DeniedError, match="fewer than 2048"):
        make_provider(location).authenticate(sign(key=WEAK_KEY, kid="weak"))


def test_symmetric_jwk_is_never_a_key(tmp_path: Path) -> None:
    secret = rsa_public_pem()
    oct_key = {"kty": "oct", "kid": "shared", "k": b64(secret)}
    location = write_jwks(tmp_path / "oct.json", {"keys": [oct_key, JWKS["keys"][0]]})
    provider = make_provider(location, algorithms=("RS256",))
    with pytest.raises(DeniedError, match="unknown key id 'shared' \\(key type 'oct'"):
        provider.authenticate(sign(kid="shared"))
    with pytest.raises(DeniedError, match="HS256"):
        provider.authenticate(craft({"alg": "HS256", "kid": "shared"}, claims(), secret))


def test_key_alg_pins_the_algorithm(tmp_path: Path) -> None:
    pinned = jwk(RSA_KEY, "rsa-1", alg="PS256")
    location = write_jwks(tmp_path / "pinned.json", {"keys": [pinned]})
    provider = make_provider(location, algorithms=("RS256", "PS256"))
    with pytest.raises(DeniedError, match="does not fit algorithm RS256"):
        provider.authenticate(sign("RS256"))
    assert provider.authenticate(sign("PS256", RSA_KEY, kid="rsa-1")).user == "alice"


@pytest.mark.parametrize("header", ["jku", "x5u"])
def test_url_headers_are_never_fetched(jwks_file: str, server: Server, header: str) -> None:
    attacker_jwks = json.dumps({"keys": [jwk(ATTACKER_KEY, "evil")]}).encode()
    server.routes["/evil.json"] = (200, attacker_jwks, {})
    for kid, reason in (("evil", "unknown key id"), ("rsa-1", "signature verification failed")):
        token = jwt.encode(
            claims(),
            ATTACKER_KEY,
            algorithm="RS256",
            headers={"kid": kid, header: server.url("/evil.json")},
        )
        with pytest.raises(DeniedError, match=reason):
            make_provider(jwks_file).authenticate(token)
    assert server.hits == []
    # Control: the same token verifies against the attacker's JWKS when that is the configured
    # one, so only the refusal to follow the header stopped it above.
    token = jwt.encode(
        claims(), ATTACKER_KEY, algorithm="RS256", headers={"kid": "evil", header: "x"}
    )
    assert make_provider(server.url("/evil.json")).authenticate(token).user == "alice"


def test_hs256_attack_token_is_genuine() -> None:
    """The forged token really is HMAC-valid under the public PEM: only the allow-list stops it."""
    token = craft({"alg": "HS256", "kid": "rsa-1"}, claims(), rsa_public_pem())
    signing_input, _, signature = token.rpartition(".")
    # PyJWT's own HMAC verifier, fed the PEM directly (its prepare_key would refuse a PEM).
    verifier = HMACAlgorithm(HMACAlgorithm.SHA256)
    raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert verifier.verify(signing_input.encode(), rsa_public_pem(), raw_signature)
    with pytest.raises(UsageError, match="HS256"):
        OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks="x", algorithms=("RS256", "HS256"))


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algorithms": ("HS256",)}, "'HS256' is not allowed"),
        ({"algorithms": ("RS256", "hs512")}, "'hs512' is not allowed"),
        ({"algorithms": ("none",)}, "'none' is not allowed"),
        ({"algorithms": ("RS1",)}, "unknown algorithm 'RS1'"),
        ({"algorithms": ()}, "at least one algorithm"),
        ({"leeway_seconds": 61}, "between 0 and 60"),
        ({"leeway_seconds": -1}, "between 0 and 60"),
        ({"role_map": {"ops": "root"}}, "unknown role 'root'"),
        ({"issuer": ""}, "issuer must not be empty"),
        ({"audience": ""}, "audience must not be empty"),
        ({"roles_claim": ""}, "roles_claim must not be empty"),
        ({"jwks_cache_seconds": -1}, "must not be negative"),
        ({"fetch_timeout_seconds": 0}, "must be positive"),
    ],
    ids=[
        "hs256", "hs-lowercase", "none", "unknown-alg", "no-algs", "leeway-61", "leeway-negative",
        "map-to-unknown-role", "no-issuer", "no-audience", "no-roles-claim", "negative-cache",
        "zero-timeout",
    ],
)  # fmt: skip
def test_bad_settings(overrides: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "jwks": "jwks.json"}
    values.update(overrides)
    with pytest.raises(UsageError, match=message):
        OidcSettings(**values)


def test_plain_http_jwks_only_for_loopback() -> None:
    with pytest.raises(UsageError, match="must use https"):
        JwksSource("http://idp.example.test/jwks", cache_dir=None, cache_seconds=0, timeout=1)


# --- loading the JWKS -------------------------------------------------------------------------


def test_file_jwks_is_parsed_once(jwks_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = jwks_module.parse_jwks

    def counting(data: bytes) -> jwks_module.KeySet:
        calls.append(data)
        return real(data)

    monkeypatch.setattr(jwks_module, "parse_jwks", counting)
    provider = make_provider(jwks_file)
    for alg in ("RS256", "ES256", "EdDSA", "RS256"):
        provider.authenticate(sign(alg))
    assert len(calls) == 1


def test_url_jwks_is_cached_on_disk(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = make_provider(server.url(), cache_dir=cache)
    first.authenticate(sign())
    first.authenticate(sign("ES256"))
    assert server.hits == ["/jwks.json"]
    [cached] = cache.iterdir()
    entry = json.loads(cached.read_text())
    assert entry["fetched_at"] == NOW
    assert entry["url"] == server.url()
    # A new command (a new source) within the cache time reads the disk, not the server.
    make_provider(server.url(), now=NOW + 299, cache_dir=cache).authenticate(sign())
    assert server.hits == ["/jwks.json"]
    make_provider(server.url(), now=NOW + 300, cache_dir=cache).authenticate(sign(exp=NOW + 900))
    assert server.hits == ["/jwks.json", "/jwks.json"]


def test_damaged_cache_is_refetched(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    make_provider(server.url(), cache_dir=cache).authenticate(sign())
    [cached] = cache.iterdir()
    cached.write_text("{not json")
    make_provider(server.url(), cache_dir=cache).authenticate(sign())
    assert len(server.hits) == 2


def test_cache_time_zero_always_fetches(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    provider = make_provider(server.url(), cache_dir=cache, jwks_cache_seconds=0)
    provider.authenticate(sign())
    provider.authenticate(sign())
    assert len(server.hits) == 2
    assert not cache.exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ((404, b"nope", {}), "HTTP 404"),
        ((200, b"{not json", {}), "not valid JSON"),
        ((200, b"[" * 100_000, {}), "nested too deeply"),
        ((200, b'{"keys": "no"}', {}), "expected an object with a 'keys' list"),
        ((200, b"\xff\xfe", {}), "not UTF-8"),
        ((200, json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).encode(), {}), "no usable"),
        ((200, b" " * (1 << 20) + b"{}", {}), "larger than"),
        ((302, b"", {"Location": "http://idp.example.test/jwks"}), "non-https"),
    ],
    ids=[
        "http-404",
        "malformed-json",
        "hostile-nesting",
        "keys-not-list",
        "not-utf8",
        "only-oct",
        "huge",
        "downgrade",
    ],
)
def test_bad_jwks_url_denies(
    server: Server, tmp_path: Path, route: tuple[int, bytes, dict[str, str]], reason: str
) -> None:
    server.routes["/jwks.json"] = route
    with pytest.raises(DeniedError) as caught:
        make_provider(server.url(), cache_dir=tmp_path).authenticate(sign())
    assert str(caught.value).startswith(f"could not load JWKS from {server.url()}: ")
    assert reason in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_jwks_denies() -> None:
    location = f"http://127.0.0.1:{free_port()}/jwks.json"
    with pytest.raises(DeniedError, match=r"could not load JWKS from http://127\.0\.0\.1"):
        make_provider(location).authenticate(sign())


def test_slow_jwks_times_out(server: Server) -> None:
    server.delay = 1.0
    started = time.monotonic()
    with pytest.raises(DeniedError, match=r"could not load JWKS.*timed out"):
        make_provider(server.url(), fetch_timeout_seconds=0.2).authenticate(sign())
    assert time.monotonic() - started < 0.9


def test_missing_jwks_file_denies(tmp_path: Path) -> None:
    with pytest.raises(DeniedError, match=r"could not load JWKS from .*missing\.json"):
        make_provider(str(tmp_path / "missing.json")).authenticate(sign())


def test_url_credentials_are_not_shown(server: Server) -> None:
    location = server.url().replace("http://", "http://user:hunter2@") + "?token=abc"
    server.routes["/jwks.json"] = (500, b"", {})
    with pytest.raises(DeniedError) as caught:
        make_provider(location).authenticate(sign())
    assert "hunter2" not in str(caught.value)
    assert "abc" not in str(caught.value)


def test_jwks_hashes_differ_per_location(tmp_path: Path, server: Server) -> None:
    cache = tmp_path / "cache"
    make_provider(server.url(), cache_dir=cache).authenticate(sign())
    server.routes["/other.json"] = server.routes["/jwks.json"]
    make_provider(server.url("/other.json"), cache_dir=cache).authenticate(sign())
    names = sorted(path.name for path in cache.iterdir())
    assert len(names) == 2
    assert hashlib.sha256(server.url().encode()).hexdigest()[:16] in names[0] + names[1]
