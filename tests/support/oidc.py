"""A test OIDC identity provider: signing keys made with ``cryptography``, their JWKS,
and tokens (the validation under test is Vallum's; this only issues)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.iam import uid


class Provider:
    """An issuer with one RSA (RS256) and one EC P-256 (ES256) signing key."""

    def __init__(self, client_id: str = "vallum-app") -> None:
        self.host = f"idp-{uuid.uuid4().hex[:8]}.test.example"
        self.url = f"https://{self.host}/realms/ops"
        self.name = f"{self.host}/realms/ops"
        self.client_id = client_id
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.kids = {"RS256": uid("rsa"), "ES256": uid("ec")}

    def jwks(self) -> dict[str, Any]:
        keys = []
        for alg, key, algo in (("RS256", self.rsa, jwt.algorithms.RSAAlgorithm),
                               ("ES256", self.ec, jwt.algorithms.ECAlgorithm)):
            jwk = json.loads(algo.to_jwk(key.public_key()))
            jwk.update(kid=self.kids[alg], use="sig", alg=alg)
            keys.append(jwk)
        return {"keys": keys}

    def claims(self, sub: str = "alice", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        out = {"iss": self.url, "sub": sub, "aud": self.client_id, "iat": now,
               "nbf": now, "exp": now + 600, "amr": ["pwd", "hwk"]}
        out.update(extra)
        return {k: v for k, v in out.items() if v is not None}

    def token(self, sub: str = "alice", alg: str = "RS256", kid: str | None = None,
              **extra: Any) -> str:
        key = self.rsa if alg == "RS256" else self.ec
        return jwt.encode(self.claims(sub, **extra), key, algorithm=alg,
                          headers={"kid": kid or self.kids[alg]})

    def register(self, admin, *, root=None, account: str | None = None, **more: Any) -> str:
        """Register with ``admin`` (or, for root-only fields, ``root`` in ``account``):
        the provider ARN."""
        args = dict(url=self.url, client_ids=[self.client_id], jwks=self.jwks(), **more)
        if root is not None:
            return root.call("CreateOpenIDConnectProvider", account=account, **args)["arn"]
        return admin.call("CreateOpenIDConnectProvider", **args)["arn"]


def trust(provider_arn: str, name: str, sub: str = "alice", **conditions: Any) -> dict:
    """A web-identity trust policy: the provider, with ``sub`` (and more) as conditions."""
    cond = {"StringEquals": {f"{name}:sub": sub, f"{name}:aud": "vallum-app",
                             **conditions.pop("equals", {})}, **conditions}
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity", "Condition": cond}]}
