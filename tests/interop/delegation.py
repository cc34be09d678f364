"""Interop of issue 30 with clients and JOSE libraries no one here wrote, against a running Signet.

- Token exchange (RFC 8693) through Authlib's OAuth2Session (client_secret_basic): a narrowing,
  a delegation A → B and B → C; every token verified with PyJWT against Signet's JWKS, the
  nested `act` read from it; a revocation (RFC 7009, by A's own client through Authlib) that ends
  the derived tokens at introspection;
- the JWT-bearer grant (RFC 7523 §2.1): an issuer whose keys joserfc made and a Python
  http.server publishes, assertions signed by joserfc, tokens fetched through Authlib;
- the attacks: widening scopes, an actor not in may_act, another client's token, a replayed
  assertion, an expired one, a kid the issuer never published, an unknown issuer, a JWKS answer
  of 10 MB.

Usage: delegation.py BASE_URL ADMIN_TOKEN (the Signet must run with TRUSTED_ISSUER_ALLOW_HTTP=true).
Exits 1 on the first failed check.
"""

import http.server
import json
import sys
import threading
import time
import uuid

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt as josejwt
from joserfc.jwk import ECKey, KeySet

from checks import check, summary

BASE, ADMIN = sys.argv[1].rstrip("/"), sys.argv[2]
TOKEN_URL = BASE + "/oauth/token"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


def admin(method, path, body=None):
    return requests.request(method, BASE + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


def register(scopes, **extra):
    response = admin("POST", "/v1/agents", {"name": f"interop-{uuid.uuid4().hex[:8]}", "owner": "interop", "scopes": scopes, **extra})
    check(response.status_code == 201, "registration", response.text)
    return response.json()


def session(agent):
    return OAuth2Session(agent["client_id"], agent["client_secret"], token_endpoint_auth_method="client_secret_basic")


def token(agent, scope=None):
    extra = {"scope": scope} if scope else {}
    return session(agent).fetch_token(TOKEN_URL, grant_type="client_credentials", **extra)["access_token"]


def exchange(agent, subject, actor=None, **extra):
    params = {"subject_token": subject, "subject_token_type": ACCESS_TOKEN, **extra}
    if actor:
        params.update(actor_token=actor, actor_token_type=ACCESS_TOKEN)
    return session(agent).fetch_token(TOKEN_URL, grant_type=EXCHANGE, **params)


def refused(agent, subject, actor=None, **extra):
    data = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN, **extra}
    if actor:
        data.update(actor_token=actor, actor_token_type=ACCESS_TOKEN)
    return requests.post(TOKEN_URL, data=data, auth=(agent["client_id"], agent["client_secret"]), timeout=10)


metadata = requests.get(BASE + "/.well-known/oauth-authorization-server", timeout=10).json()
ISSUER = metadata["issuer"]
check(EXCHANGE in metadata["grant_types_supported"] and JWT_BEARER in metadata["grant_types_supported"],
      "metadata lists both grants", metadata)
jwks = jwt.PyJWKClient(BASE + "/.well-known/jwks.json")


def verified(access):
    return jwt.decode(access, jwks.get_signing_key_from_jwt(access).key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)


def active(access):
    response = requests.post(BASE + "/oauth/introspect", data={"token": access}, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    return response.json()


# 1. Token exchange through Authlib.
a = register(["read", "write"])
b = register(["read", "write"])
c = register(["read"])
mallory = register(["read", "write"])
check(admin("PATCH", f"/v1/agents/{a['id']}", {"may_act": [b["id"]]}).status_code == 200, "A lets B act")
check(admin("PATCH", f"/v1/agents/{b['id']}", {"may_act": [c["id"]]}).status_code == 200, "B lets C act")
token_a = token(a, "read write")
narrowed = exchange(a, token_a, scope="read")
check(narrowed["issued_token_type"] == ACCESS_TOKEN and narrowed["scope"] == "read", "Authlib: A narrows its own token", narrowed)
check("act" not in verified(narrowed["access_token"]), "a narrowing has no act")
ab = exchange(b, token_a, token(b))
claims = verified(ab["access_token"])
check(claims["sub"] == a["id"] and claims["act"] == {"sub": b["id"]} and claims["client_id"] == b["client_id"],
      "Authlib: B acts for A (PyJWT reads sub, act, client_id)", claims)
abc = exchange(c, ab["access_token"], token(c))
claims = verified(abc["access_token"])
check(claims["act"] == {"sub": c["id"], "act": {"sub": b["id"]}} and claims["scope"] == "read",
      "C acts for A through B: nested act, the common scope", claims)
check(claims["exp"] <= verified(token_a)["exp"], "the chain never outlives A's token")
check(active(abc["access_token"]).get("act") == {"sub": c["id"], "act": {"sub": b["id"]}}, "introspection shows the chain")

widened = refused(a, token_a, scope="read write admin")
check(widened.status_code == 400 and widened.json()["error"] == "invalid_scope", "a widened scope", widened.text)
not_listed = refused(mallory, token_a, token(mallory))
check(not_listed.status_code == 400 and not_listed.json()["error"] == "invalid_request", "an actor A does not name", not_listed.text)
not_own = refused(mallory, token_a)
check(not_own.status_code == 400, "another client exchanging A's token", not_own.text)

revoked = session(a).revoke_token(BASE + "/oauth/revoke", token_a, token_type_hint="access_token")
check(revoked.status_code == 200, "A revokes its token through Authlib (RFC 7009)", revoked.text)
check(not active(ab["access_token"])["active"] and not active(abc["access_token"])["active"], "both derived tokens die with it")

# 2. The JWT-bearer grant: joserfc's keys, published by a Python http.server; 10 MB at /big.json.
published = ECKey.generate_key("P-256", parameters={"kid": "spire-1", "alg": "ES256"}, private=True)
never_published = ECKey.generate_key("P-256", parameters={"kid": "spire-2", "alg": "ES256"}, private=True)
keyset = json.dumps(KeySet([published]).as_dict(private=False)).encode()


class Keys(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = keyset if self.path == "/jwks.json" else b'{"keys":[],"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keys)
threading.Thread(target=server.serve_forever, daemon=True).start()
keys_url = f"http://127.0.0.1:{server.server_address[1]}"
spire = f"https://spire-{uuid.uuid4().hex[:6]}.example.org"
trusted = admin("POST", "/v1/trusted-issuers", {"issuer": spire, "jwks_uri": keys_url + "/jwks.json", "audience": ISSUER})
check(trusted.status_code == 201, "trusting the issuer", trusted.text)
workload = "spiffe://example.org/ns/prod/sa/worker"
agent = register(["read"], federated_subject={"issuer": spire, "subject": workload})


def assertion(key=published, **edit):
    now = int(time.time())
    claims = {"iss": spire, "sub": workload, "aud": ISSUER, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex, **edit}
    return josejwt.encode({"alg": "ES256", "kid": key.kid}, {k: v for k, v in claims.items() if v is not None}, key)


def bearer(signed):
    return requests.post(TOKEN_URL, data={"grant_type": JWT_BEARER, "assertion": signed}, timeout=10)


fetched = OAuth2Session().fetch_token(TOKEN_URL, grant_type=JWT_BEARER, assertion=assertion())
claims = verified(fetched["access_token"])
check(claims["sub"] == agent["id"] and claims["client_id"] == agent["client_id"], "Authlib: a joserfc assertion gets the agent's token",
      claims)
used = assertion()
check(bearer(used).status_code == 200, "a fresh assertion")
check(bearer(used).json().get("error") == "invalid_grant", "the same assertion replayed")
check(bearer(assertion(exp=int(time.time()) - 5)).json().get("error") == "invalid_grant", "an expired assertion")
check(bearer(assertion(never_published)).json().get("error") == "invalid_grant", "a kid the issuer never published")
check(bearer(assertion(iss="https://nobody.example.org")).json().get("error") == "invalid_grant", "an unknown issuer")
check(bearer(assertion(aud="https://elsewhere.example")).json().get("error") == "invalid_grant", "another audience")

bomb = f"https://bomb-{uuid.uuid4().hex[:6]}.example.org"
check(admin("POST", "/v1/trusted-issuers", {"issuer": bomb, "jwks_uri": keys_url + "/big.json", "audience": ISSUER}).status_code == 201,
      "trusting an issuer whose JWKS is 10 MB")
register(["read"], federated_subject={"issuer": bomb, "subject": workload})
started = time.monotonic()
big = bearer(assertion(iss=bomb))
check(big.status_code == 503 and "Retry-After" in big.headers and time.monotonic() - started < 3, "a 10 MB JWKS is refused at its cap",
      f"{big.status_code} {big.text} in {time.monotonic() - started:.2f} s")
server.shutdown()
summary("interop checks")
