"""Verify an authd access token the way a resource server does: with nothing
but the public keys from the JWKS endpoint.

    pip install "pyjwt[crypto]"
    python3 verify_token.py http://localhost:9090/.well-known/jwks.json "$ACCESS_TOKEN"

Prints the verified claims as JSON, or exits non-zero. The test suite runs
this file against a live server (tests/api/tokens.rs, token_hardening.rs),
so it stays true.
"""

import json
import sys

import jwt  # PyJWT >= 2.4

ISSUER = "http://localhost:9090"  # authd's server.public_url
AUDIENCE = "authd"  # authd's tokens.audience


def verify(token: str, jwks_url: str) -> dict:
    # authd signs ID tokens with the same keys: only the header typ tells an
    # access token (RFC 9068: "at+jwt") from an ID token ("JWT").
    typ = str(jwt.get_unverified_header(token).get("typ", "")).lower()
    if typ.removeprefix("application/") != "at+jwt":
        raise jwt.InvalidTokenError("not an access token: typ is not at+jwt")
    signing_key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256", "EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "nbf", "sub", "sid"]},
    )


if __name__ == "__main__":
    print(json.dumps(verify(sys.argv[2], sys.argv[1])))
