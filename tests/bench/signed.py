"""Writes one-time client assertions and DPoP proofs for ci/bench's secretless runs (issue 29):
each line is used once, as a real client makes a fresh one per request.

Usage: signed.py BASE ADMIN_TOKEN COUNT OUT_DIR
Registers an agent with a P-256 public key set, then writes OUT_DIR/assertions.txt (client
assertions for it, one minute of lifetime) and OUT_DIR/proofs.txt (DPoP proofs for POST
BASE/oauth/token, one key), COUNT lines each; prints the key agent's client id.
"""

import json
import sys
import time
import urllib.request
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

base, admin, count, out = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3]), sys.argv[4]
token_url = base + "/oauth/token"

client_key = ec.generate_private_key(ec.SECP256R1())
public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(client_key.public_key()))
public["kid"] = "bench-1"
body = json.dumps({"name": f"bench-keys-{uuid.uuid4().hex[:8]}", "owner": "bench", "scopes": ["read", "write"],
                   "jwks": {"keys": [public]}}).encode()
request = urllib.request.Request(base + "/v1/agents", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
client_id = json.load(urllib.request.urlopen(request, timeout=10))["client_id"]

now = int(time.time())
with open(f"{out}/assertions.txt", "w") as lines:
    for _ in range(count):
        claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "jti": uuid.uuid4().hex}
        lines.write(jwt.encode(claims, client_key, algorithm="ES256", headers={"kid": "bench-1"}) + "\n")

proof_key = ec.generate_private_key(ec.SECP256R1())
proof_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(proof_key.public_key()))
with open(f"{out}/proofs.txt", "w") as lines:
    for _ in range(count):
        claims = {"htm": "POST", "htu": token_url, "iat": now, "jti": uuid.uuid4().hex}
        lines.write(jwt.encode(claims, proof_key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": proof_jwk}) + "\n")
print(client_id)
