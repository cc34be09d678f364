"""Interop of issue 29 with clients no one here wrote, against a running Signet.

- Authlib's `PrivateKeyJWT` client authentication (through `requests`), with an RSA key (its
  default RS256) and an EC P-256 key (ES256), each registered as a public key set;
- DPoP proofs made with PyJWT (ES256), the token's `cnf.jkt` checked against joserfc's RFC 7638
  thumbprint, the token verified with PyJWT against Signet's JWKS for its resource audience;
- the attacks a client library would not make: a replayed assertion, a replayed proof, a proof
  for another URL, a bound token's proof carrying the `ath` of another token at the token
  authority route, a resource not registered.

Usage: secretless.py BASE_URL ADMIN_TOKEN. Exits 1 on the first failed check.
"""

import hashlib
import base64
import json
import sys
import time
import uuid

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey

from checks import check, summary

BASE, ADMIN = sys.argv[1].rstrip("/"), sys.argv[2]
TOKEN_URL = BASE + "/oauth/token"
RESOURCE = "https://tools.example/mcp"


def admin(method, path, body=None):
    return requests.request(method, BASE + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


def register(public_jwk, scopes=("read", "credentials:rotate")):
    response = admin("POST", "/v1/agents", {
        "name": f"interop-{uuid.uuid4().hex[:8]}", "owner": "interop", "scopes": list(scopes),
        "jwks": {"keys": [public_jwk]}, "resources": [RESOURCE],
    })
    check(response.status_code == 201, "registration with a public key set", response.text)
    body = response.json()
    check("client_secret" not in body, "no secret for an agent with keys")
    return body


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's PrivateKeyJWT with a one-minute assertion: Authlib's default `exp` is an hour
    ahead, and Signet takes assertions at most five minutes ahead (README, "Agents without a
    secret")."""

    def sign(self, auth, token_endpoint):
        self.claims = {"exp": int(time.time()) + 60}
        return super().sign(auth, token_endpoint)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# 1. Authlib, private_key_jwt with RSA (RS256, its default) and EC (ES256).
for name, private, alg in [
    ("RSA-2048", RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True), "RS256"),
    ("P-256", ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True), "ES256"),
]:
    public = private.as_dict(private=False)
    public.pop("use", None)
    agent = register(public)
    session = OAuth2Session(agent["client_id"], private, token_endpoint_auth_method="private_key_jwt")
    session.register_client_auth_method(PrivateKeyJWT(TOKEN_URL, alg=alg, headers={"kid": public["kid"]}))
    try:
        session.fetch_token(TOKEN_URL, grant_type="client_credentials", scope="read")
        check(False, "Authlib's default hour-long assertion is refused")
    except Exception as error:  # authlib's OAuthError
        check("more than 300 seconds ahead" in str(error), "Authlib's default hour-long assertion is refused, saying why", error)
    session.register_client_auth_method(ShortLivedPrivateKeyJWT(TOKEN_URL, alg=alg, headers={"kid": public["kid"]}))
    token = session.fetch_token(TOKEN_URL, grant_type="client_credentials", scope="read")
    check(token.get("token_type") == "Bearer" and token.get("access_token"), f"Authlib private_key_jwt with {name} ({alg})", token)

# The same assertion twice: Authlib makes a fresh one per request, so send one by hand.
private = ECKey.generate_key("P-256", parameters={"kid": "ec-2"}, private=True)
agent = register(private.as_dict(private=False))
pem = private.as_pem(private=True)
now = int(time.time())
assertion = jwt.encode(
    {"iss": agent["client_id"], "sub": agent["client_id"], "aud": TOKEN_URL, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
    pem, algorithm="ES256", headers={"kid": "ec-2"})
form = {"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion, "scope": "read"}
first = requests.post(TOKEN_URL, data=form, timeout=10)
check(first.status_code == 200, "a PyJWT-made assertion", first.text)
again = requests.post(TOKEN_URL, data=form, timeout=10)
check(again.status_code == 401 and again.json()["error"] == "invalid_client", "the same assertion replayed", again.text)
wrong_aud = jwt.encode(
    {"iss": agent["client_id"], "sub": agent["client_id"], "aud": "https://elsewhere.example/token", "exp": now + 60, "jti": uuid.uuid4().hex},
    pem, algorithm="ES256", headers={"kid": "ec-2"})
refused = requests.post(TOKEN_URL, data={**form, "client_assertion": wrong_aud}, timeout=10)
check(refused.status_code == 401, "an assertion for another audience", refused.text)

# 2. DPoP with PyJWT: a bound token for a registered resource.
dpop_key = ec.generate_private_key(ec.SECP256R1())
public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(dpop_key.public_key()))
thumbprint = ECKey.import_key(public_jwk).thumbprint()


def proof(url, method="POST", access_token=None, jti=None):
    claims = {"htm": method, "htu": url, "iat": int(time.time()), "jti": jti or uuid.uuid4().hex}
    if access_token:
        claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
    return jwt.encode(claims, dpop_key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public_jwk})


def assertion_form(scope, resource=None):
    now = int(time.time())
    signed = jwt.encode(
        {"iss": agent["client_id"], "sub": agent["client_id"], "aud": TOKEN_URL, "exp": now + 60, "jti": uuid.uuid4().hex},
        pem, algorithm="ES256", headers={"kid": "ec-2"})
    body = {"grant_type": "client_credentials", "client_assertion_type": form["client_assertion_type"], "client_assertion": signed,
            "scope": scope}
    if resource:
        body["resource"] = resource
    return body


first_proof = proof(TOKEN_URL)
bound = requests.post(TOKEN_URL, data=assertion_form("read", RESOURCE), headers={"DPoP": first_proof}, timeout=10)
check(bound.status_code == 200 and bound.json()["token_type"] == "DPoP", "a DPoP-bound token (PyJWT proof)", bound.text)
access = bound.json()["access_token"]
jwks = jwt.PyJWKClient(BASE + "/.well-known/jwks.json")
claims = jwt.decode(access, jwks.get_signing_key_from_jwt(access).key, algorithms=["ES256"], audience=RESOURCE, issuer=BASE)
check(claims["cnf"]["jkt"] == thumbprint, "cnf.jkt is joserfc's RFC 7638 thumbprint of the proof key", claims)
replayed = requests.post(TOKEN_URL, data=assertion_form("read"), headers={"DPoP": first_proof}, timeout=10)
check(replayed.status_code == 400 and replayed.json()["error"] == "invalid_dpop_proof", "a replayed proof", replayed.text)
elsewhere = requests.post(TOKEN_URL, data=assertion_form("read"), headers={"DPoP": proof(BASE + "/oauth/introspect")}, timeout=10)
check(elsewhere.status_code == 400, "a proof for another URL", elsewhere.text)
not_registered = requests.post(TOKEN_URL, data=assertion_form("read", "https://other.example/"), timeout=10)
check(not_registered.status_code == 400 and not_registered.json()["error"] == "invalid_target", "a resource not registered",
      not_registered.text)

# 3. The token authority route: a bound token with credentials:rotate and its proof.
rotate_url = f"{BASE}/v1/agents/{agent['id']}/credentials/rotate"
authority = requests.post(TOKEN_URL, data=assertion_form("credentials:rotate"), headers={"DPoP": proof(TOKEN_URL)}, timeout=10)
check(authority.status_code == 200, "a bound token for credential rotation", authority.text)
rotating = authority.json()["access_token"]
next_key = ECKey.generate_key("P-256", parameters={"kid": "ec-3"}, private=True)
body = {"graceSeconds": 60, "jwks": {"keys": [next_key.as_dict(private=False)]}}
as_bearer = requests.post(rotate_url, json=body, headers={"Authorization": f"Bearer {rotating}"}, timeout=10)
check(as_bearer.status_code == 401, "a bound token sent as Bearer", as_bearer.text)
other_ath = requests.post(rotate_url, json=body, headers={"Authorization": f"DPoP {rotating}", "DPoP": proof(rotate_url, access_token=access)},
                          timeout=10)
check(other_ath.status_code == 401 and other_ath.json()["error"] == "invalid_dpop_proof", "an ath for another token", other_ath.text)
rotated = requests.post(rotate_url, json=body, headers={"Authorization": f"DPoP {rotating}", "DPoP": proof(rotate_url, access_token=rotating)},
                        timeout=10)
check(rotated.status_code == 201 and "client_secret" not in rotated.json(), "rotation to a new key set by the bound token", rotated.text)
metadata = requests.get(BASE + "/.well-known/oauth-authorization-server", timeout=10).json()
check("private_key_jwt" in metadata["token_endpoint_auth_methods_supported"] and "ES256" in metadata["dpop_signing_alg_values_supported"],
      "metadata lists private_key_jwt and DPoP algorithms", metadata)
summary("interop checks")
