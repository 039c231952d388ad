#!/usr/bin/env python3
"""Makes an ES256 signing key, its JWKS, and tokens, with joserfc (an independent JOSE library).

usage: make_jwt.py DIR ISSUER  -> writes DIR/jwks.json and prints tokens, one per line:
  valid, wrong-audience, unknown-kid, expired, not-a-service-account
"""
import json
import sys
import time

from joserfc import jwt
from joserfc.jwk import ECKey


def main():
    directory, issuer = sys.argv[1], sys.argv[2]
    key = ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256", "use": "sig"})
    other = ECKey.generate_key("P-256", parameters={"kid": "k2", "alg": "ES256", "use": "sig"})
    with open(f"{directory}/jwks.json", "w") as handle:
        json.dump({"keys": [key.as_dict(private=False)]}, handle)
    now = int(time.time())
    base = {"iss": issuer, "sub": "system:serviceaccount:shop:cart", "aud": ["istio-ca"], "iat": now, "exp": now + 600}
    header = {"alg": "ES256", "kid": "k1"}
    tokens = [
        jwt.encode(header, base, key),
        jwt.encode(header, dict(base, aud=["someone-else"]), key),
        jwt.encode({"alg": "ES256", "kid": "k2"}, base, other),
        jwt.encode(header, dict(base, exp=now - 60, iat=now - 700), key),
        jwt.encode(header, dict(base, sub="alice@example.com"), key),
    ]
    print("\n".join(tokens))


if __name__ == "__main__":
    main()
