"""Writes the request bodies of ci/bench's delegation runs (issue 30).

Usage: delegation.py BASE ADMIN_TOKEN COUNT OUT_DIR
Registers agents A and B (A lets B act for it) and fetches a token for each, then writes, one
form body per file: OUT_DIR/secret.txt (B's client credentials grant, client_secret_post),
OUT_DIR/delegation.txt (B exchanges A's token with its own as actor token) and
OUT_DIR/narrowing.txt (A exchanges its own token for one with fewer scopes). Then trusts an issuer
with a static P-256 key set, registers an agent with a federated subject, and writes
OUT_DIR/assertions.txt: COUNT one-time JWT-bearer assertions (PyJWT) for it, issued now.
"""

import json
import sys
import time
import urllib.parse
import urllib.request
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

base, admin, count, out = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3]), sys.argv[4]
token_url = base + "/oauth/token"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


def call(method, path, body=None, headers=None, form=None):
    data = json.dumps(body).encode() if body is not None else urllib.parse.urlencode(form).encode() if form else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {
        "Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))


def register(**extra):
    return call("POST", "/v1/agents", {"name": f"bench-{uuid.uuid4().hex[:8]}", "owner": "bench", "scopes": ["read", "write"], **extra})


def token(agent, scope="read write"):
    form = {"grant_type": "client_credentials", "client_id": agent["client_id"], "client_secret": agent["client_secret"], "scope": scope}
    return call("POST", "/oauth/token", headers={"Content-Type": "application/x-www-form-urlencoded"}, form=form)["access_token"]


a, b = register(), register()
call("PATCH", f"/v1/agents/{a['id']}", {"may_act": [b["id"]]})
token_a, token_b = token(a), token(b)
secret = {"grant_type": "client_credentials", "client_id": b["client_id"], "client_secret": b["client_secret"]}
delegation = {"grant_type": EXCHANGE, "client_id": b["client_id"], "client_secret": b["client_secret"], "subject_token": token_a,
              "subject_token_type": ACCESS_TOKEN, "actor_token": token_b, "actor_token_type": ACCESS_TOKEN}
narrowing = {"grant_type": EXCHANGE, "client_id": a["client_id"], "client_secret": a["client_secret"], "subject_token": token_a,
             "subject_token_type": ACCESS_TOKEN, "scope": "read"}
for name, form in [("secret", secret), ("delegation", delegation), ("narrowing", narrowing)]:
    with open(f"{out}/{name}.txt", "w") as file:
        file.write(urllib.parse.urlencode(form) + "\n")

key = ec.generate_private_key(ec.SECP256R1())
public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
public["kid"] = "bench-issuer-1"
issuer = f"https://bench-{uuid.uuid4().hex[:6]}.example.org"
audience = call("GET", "/.well-known/oauth-authorization-server")["issuer"]
call("POST", "/v1/trusted-issuers", {"issuer": issuer, "jwks": {"keys": [public]}, "audience": audience})
register(federated_subject={"issuer": issuer, "subject": "spiffe://bench/worker"})
now = int(time.time())
with open(f"{out}/assertions.txt", "w") as lines:
    for _ in range(count):
        claims = {"iss": issuer, "sub": "spiffe://bench/worker", "aud": audience, "iat": now, "exp": now + 240, "jti": uuid.uuid4().hex}
        lines.write(jwt.encode(claims, key, algorithm="ES256", headers={"kid": "bench-issuer-1"}) + "\n")
