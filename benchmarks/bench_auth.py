"""How much authentication adds to a command: HMAC tokens and JWTs with a cached JWKS.

Target (issue 3): under 1 ms per command for each. Run:

    python benchmarks/bench_auth.py

"Warm" reuses one provider (keys already parsed); "cold" builds a new provider per
call from the on-disk JWKS cache, as a new ``cpctl`` process would.
"""

from __future__ import annotations

import json
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from control_plane.auth import (
    Action,
    HmacProvider,
    JwksSource,
    OidcProvider,
    OidcSettings,
    authorize,
    hmac_key_id,
    mint_hmac_token,
)

TARGET_US = 1000.0


def per_call_us(function: object, number: int) -> float:
    return timeit.timeit(function, number=number) / number * 1e6  # type: ignore[arg-type]


def row(label: str, micros: float) -> None:
    verdict = "PASS" if micros < TARGET_US else "MISS"
    print(f"{label:<44} {micros:>9.1f} us  (target < {TARGET_US:.0f} us) {verdict}")


def hmac_figures() -> None:
    secret = b"benchmark-secret-of-32-bytes-len"
    provider = HmacProvider({hmac_key_id(secret): secret}, {"alice": ("admin",)})
    classic = mint_hmac_token(secret, "alice")
    expiring = mint_hmac_token(secret, "alice", ttl_seconds=3600)
    row(
        "hmac classic token: authenticate+authorize",
        per_call_us(lambda: authorize(provider.authenticate(classic), Action.INSTALL), 20000),
    )
    row(
        "hmac expiring token: authenticate+authorize",
        per_call_us(lambda: authorize(provider.authenticate(expiring), Action.INSTALL), 20000),
    )


def oidc_figures() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    keys = []
    for key, kid, algorithm in (
        (rsa_key, "r", RSAAlgorithm),
        (ec_key, "e", ECAlgorithm),
        (ed_key, "d", OKPAlgorithm),
    ):
        jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
        jwk["kid"] = kid
        keys.append(jwk)
    jwks_file = Path(tempfile.mkdtemp()) / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": keys}))
    settings = OidcSettings(issuer="https://idp.test", audience="cpctl", jwks=str(jwks_file))
    now = int(time.time())
    claims = {
        "iss": "https://idp.test",
        "aud": "cpctl",
        "sub": "alice",
        "iat": now,
        "exp": now + 600,
        "roles": ["admin"],
    }

    def source() -> JwksSource:
        return JwksSource(str(jwks_file), cache_dir=None, cache_seconds=300, timeout=1.0)

    for alg, key, kid in (("RS256", rsa_key, "r"), ("ES256", ec_key, "e"), ("EdDSA", ed_key, "d")):
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
        warm = OidcProvider(settings, source())
        warm.authenticate(token)
        row(f"oidc {alg}: keys parsed (warm)", per_call_us(verifier(lambda p=warm: p, token), 2000))
        cold = verifier(lambda: OidcProvider(settings, source()), token)
        row(f"oidc {alg}: new provider per call (cold)", per_call_us(cold, 300))


def verifier(provider: Callable[[], OidcProvider], token: str) -> Callable[[], object]:
    """One authenticate + authorize with the provider the factory returns."""
    return lambda: authorize(provider().authenticate(token), Action.INSTALL)


if __name__ == "__main__":
    hmac_figures()
    oidc_figures()
