"""STS AssumeRoleWithCertificate (MinIO's form): the client certificate of the TLS
connection is the credential; the request itself is unsigned.

``POST /`` with ``Action=AssumeRoleWithCertificate&Version=2011-06-15`` and optional
``DurationSeconds``, ``RoleArn`` (must be the role the rules map to) and ``Policy`` (a
session policy), in the body or the query. The certificate must pass certauth's checks,
a mapping rule (certmap) must name a role or a user; a role's trust policy must allow
``{"Federated": "cert"}`` for ``sts:AssumeRoleWithCertificate`` (the certificate's subject,
issuer, serial and fingerprint are its condition keys ``vallum:Certificate*``; for a user
the root's rule is the authorization), and the certificate's clearance must be within
the rule's cap. The keys never outlive the
certificate, and unless the rule says ``bind = false`` they work only over a connection
presenting the same certificate. Errors are MinIO's codes for certificate problems
(MissingParameter, InvalidClientCertificate) and AWS's for the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from vallum.iam import certauth, certmap, sts
from vallum.iam.evaluate import Caller
from vallum.iam.identity import parsed, role_arn, user_arn
from vallum.iam.policy import MalformedPolicy
from vallum.iam.principal import Principal
from vallum.iam.sts_api import (
    STSError,
    _credentials,
    _duration,
    _response,
    assumed_user,
    trusted_by,
)
from vallum.security.mac.labels import LabelError

ACTION = "AssumeRoleWithCertificate"
_NOT_IN_NAME = re.compile(r"[^\w+=,.@\-]")   # a session name's alphabet (sts_api)
FEDERATED = "cert"        # the trust policy's {"Federated": "cert"} names certificate logins


@dataclass(frozen=True)
class CertificateCaller(Principal):
    """The caller of AssumeRoleWithCertificate as a trust policy sees it: matched only by
    ``Principal: {"Federated": "cert"}``."""

    @cached_property
    def _caller(self) -> Caller:
        return Caller(FEDERATED, self.account, "", False, federated=True)

    @cached_property
    def _context_keys(self) -> dict[str, Any]:
        return {"aws:principaltype": "Certificate"}


def assume_role_with_certificate(iam: Any, config: Any, connection: Any, params: dict[str, str],
                                 rid: str, keys: dict[str, Any], audit: dict[str, Any],
                                 now: float) -> bytes:
    """``connection`` is what certauth.of_connection made of the connection's certificate:
    a ClientCertificate, a CertificateError, or None (no certificate, or plain HTTP)."""
    if certauth.authority(config.tls_client_ca, config.tls_crl) is None:
        raise STSError("InvalidParameterValue", "Client certificates are not enabled on this "
                       "server (vallum serve --tls-client-ca)", 400, "cert: not configured")
    if connection is None:
        raise STSError("MissingParameter", "No client certificate provided", 400,
                       "cert: no client certificate")
    if isinstance(connection, certauth.CertificateError):
        audit["principal"] = f"cert:{connection.claimed}"
        raise STSError(connection.code, connection.message, connection.status,
                       f"cert: {connection.message} ({connection.claimed})")
    cert: certauth.ClientCertificate = connection
    who = cert.identity()
    audit["principal"] = who
    policy_text = params.get("Policy")
    if policy_text:
        try:
            parsed(policy_text, "session")
        except MalformedPolicy as exc:
            raise STSError("MalformedPolicyDocument", str(exc)) from None

    def denied(rule: str) -> STSError:
        return STSError("AccessDenied", f"Not authorized to perform sts:{ACTION}", 403,
                        f"{rule} ({who})")

    rule = certmap.rules(config.tls_client_map).match(cert)
    if rule is None:
        raise denied("cert: no mapping rule matches the certificate")
    account = rule.account
    arn = user_arn(account, rule.user) if rule.user else role_arn(account, rule.role or "")
    audit.update(account=account, target=arn)
    asked = params.get("RoleArn")
    if asked and asked != arn:
        raise denied(f"cert: RoleArn is not the role rule {rule.index} maps to")
    if rule.user:
        if iam.store.get("user", account=account, name=rule.user) is None:
            raise denied("cert: no such user")
        allowed_by, max_session, role = f"mapping rule {rule.index}", sts.MAX_DURATION, None
    else:
        role = iam.store.get("role", account=account, name=rule.role)
        if role is None:
            raise denied("sts: no such role")
        allowed_by = f"{_trusted(role, cert, arn, keys, denied)} and mapping rule {rule.index}"
        max_session = int(role.get("max_session", 3600))
    try:
        ceiling = certmap.clearance_of(rule, cert)
    except LabelError as exc:
        raise denied(f"clearance: the certificate's clearance is not a label: {exc}") from None
    except ValueError as exc:
        raise denied(f"clearance: {exc}") from None
    duration = _duration(params, sts.DEFAULT_ROLE_DURATION, max_session)
    duration = min(duration, int(cert.not_after - now))        # never outlive the certificate
    if duration < 1:
        raise STSError("InvalidClientCertificate", "The client certificate expires now", 400,
                       f"cert: expiring ({who})")
    name = _NOT_IN_NAME.sub("-", cert.common_name)[:64]
    name = name if len(name) >= 2 else cert.serial[:64]
    if role is not None:
        session = sts.new_session(account=account, duration=duration, role=rule.role,
                                  session_name=name, policy=policy_text or None,
                                  role_id=role.get("id") or None, ceiling=ceiling, now=now,
                                  source_identity=cert.identity())
        assumed = assumed_user(role, account, rule.role or "", name)
    else:       # the user's own rights (GetSessionToken-like), from the certificate
        session = sts.new_session(account=account, duration=duration, user=rule.user,
                                  source_key=sts.CERT_SOURCE + cert.fingerprint,
                                  session_name=name, policy=policy_text or None,
                                  ceiling=ceiling, now=now, source_identity=cert.identity())
        assumed = ""
    if rule.bind:
        session = replace(session, certificate=cert.fingerprint)
    audit["rule"] = (f"sts: allowed by {allowed_by} ({who}; session {session.access_key_id}"
                     f"{', bound to the certificate' if rule.bind else ''}, clearance ceiling "
                     f"{ceiling})")
    return _response(ACTION, _credentials(iam, session) + assumed, rid)


def _trusted(role: dict[str, Any], cert: certauth.ClientCertificate, arn: str,
             keys: dict[str, Any], denied: Any) -> str:
    """What in the role's trust policy allows the certificate; ``denied`` otherwise."""
    caller = CertificateCaller("", role["account"], False, arn=FEDERATED, user_id=cert.subject)
    decision = trusted_by(role, caller, f"sts:{ACTION}", arn, role["account"],
                          {**keys, **cert.condition_keys()}, denied)
    return decision.policy or "trust-policy"
