"""STS actions (AssumeRole, GetSessionToken, GetCallerIdentity, AssumeRoleWith{WebIdentity,
LDAPIdentity}): checks, then a session.

Answers are rendered as the STS query-protocol XML boto3's sts client parses.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from vallum import authz
from vallum.iam import clearance, ldap, ldap_directories, oidc, sts
from vallum.iam.identity import parsed, role_arn, session_arn
from vallum.iam.policy import MalformedPolicy
from vallum.iam.principal import Principal
from vallum.s3.xml import escape

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_ROLE_ARN = re.compile(r"arn:aws:iam::([0-9]{12}):role/([A-Za-z0-9+=,.@_\-/]+)")
_SESSION_NAME = re.compile(r"[\w+=,.@\-]{2,64}")


class STSError(Exception):
    """``rule`` is what decided a refusal, for the audit record only (never sent)."""

    def __init__(self, code: str, message: str, status: int = 400, rule: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.rule = rule or f"sts: {code}"

    def xml(self, request_id: str) -> bytes:
        kind = "Sender" if self.status < 500 else "Receiver"
        return (f'<ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type><Code>{self.code}</Code>'
                f"<Message>{escape(self.message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(params: dict[str, str], default: int, hi: int) -> int:
    raw = params.get("DurationSeconds")
    if raw is None:
        return min(default, hi)
    if not raw.isdigit() or not sts.MIN_DURATION <= int(raw) <= hi:
        raise STSError("ValidationError", f"1 validation error detected: Value '{raw}' at "
                       f"'durationSeconds' failed to satisfy constraint: Member must have value "
                       f"between {sts.MIN_DURATION} and {hi}")
    return int(raw)


def _response(action: str, result: str, request_id: str) -> bytes:
    return (f'<{action}Response xmlns="{NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            f"</{action}Response>").encode()


def _credentials(iam: Any, session: sts.Session) -> str:
    token = sts.encode(iam.master_key, session)
    return (f"<Credentials><AccessKeyId>{session.access_key_id}</AccessKeyId>"
            f"<SecretAccessKey>{escape(session.secret)}</SecretAccessKey>"
            f"<SessionToken>{token}</SessionToken>"
            f"<Expiration>{_iso(session.expires)}</Expiration></Credentials>")


def get_caller_identity(iam: Any, who: Principal, params: dict[str, str], rid: str) -> bytes:
    user_id = who.user_id or who.access_key or ""
    if who.role:
        user_id = f"{who.user_id}:{who.session_name}"
    return _response("GetCallerIdentity", f"<Arn>{escape(who.arn)}</Arn><UserId>{escape(user_id)}"
                     f"</UserId><Account>{escape(who.account)}</Account>", rid)


def get_session_token(iam: Any, who: Principal, params: dict[str, str], rid: str) -> bytes:
    if who.role or (who.access_key or "").startswith(sts.TEMP_PREFIX):
        raise STSError("AccessDenied", "Cannot call GetSessionToken with session credentials", 403)
    duration = _duration(params, sts.DEFAULT_TOKEN_DURATION, 3600 if who.is_root else 129600)
    session = sts.new_session(account=who.account, duration=duration, user=who.user,
                              source_key=who.access_key)
    return _response("GetSessionToken", _credentials(iam, session), rid)


def _role_request(params: dict[str, str]) -> tuple[str, str, str, str, str | None]:
    """The parameters every AssumeRole* call shares, checked: (role ARN, session name,
    account, role name, session policy text)."""
    arn = params.get("RoleArn", "")
    name = params.get("RoleSessionName", "")
    m = _ROLE_ARN.fullmatch(arn)
    if not m:
        raise STSError("ValidationError", f"{arn!r} is not a valid role ARN")
    if not _SESSION_NAME.fullmatch(name):
        raise STSError("ValidationError", "RoleSessionName must be 2-64 of [\\w+=,.@-]")
    account, role_name = m.groups()
    policy_text = params.get("Policy")
    if policy_text:
        try:
            parsed(policy_text, "session")
        except MalformedPolicy as exc:
            raise STSError("MalformedPolicyDocument", str(exc)) from None
    return arn, name, account, role_name, policy_text


def trusted_by(role: dict[str, Any], caller: Any, action: str, arn: str, account: str,
               keys: dict[str, Any], denied: Any) -> Any:
    """The decision letting ``caller`` take ``role`` on (its trust policy must allow even
    inside the account); ``denied(reason)`` is raised otherwise."""
    try:
        trust = parsed(role["trust_policy"], "trust")
    except MalformedPolicy:
        raise denied("sts: the role's trust policy cannot be read") from None
    decision = authz.decide(caller, action, arn,
                            authz.Context(keys=keys, resource_owner=account, trust_policy=trust))
    if not decision.allowed:
        raise denied(decision.reason)
    return decision


def assumed_user(role: dict[str, Any], account: str, role_name: str, session_name: str) -> str:
    """The AssumedRoleUser element of an answer that took a role on."""
    return (f"<AssumedRoleUser><AssumedRoleId>{role.get('id', '')}:{escape(session_name)}"
            f"</AssumedRoleId><Arn>{escape(session_arn(account, role_name, session_name))}"
            "</Arn></AssumedRoleUser>")


def assume_role(iam: Any, who: Principal, params: dict[str, str], rid: str,
                keys: dict[str, Any]) -> bytes:
    arn, name, account, role_name, policy_text = _role_request(params)
    # One answer for a missing role, a trust policy that refuses, and a clearance the
    # caller's does not dominate: another tenant learns nothing of what exists.
    def denied(rule: str) -> STSError:
        return STSError("AccessDenied", f"User: {who.arn} is not authorized to perform: "
                        f"sts:AssumeRole on resource: {arn}", 403, rule)

    role = iam.store.get("role", account=account, name=role_name)
    if role is None:
        raise denied("sts: no such role")
    if not who.is_root:
        # The decision function every API uses: identity, session policy and boundary of
        # the caller, and the trust policy.
        trusted_by(role, who, "sts:AssumeRole", role_arn(account, role_name), account,
                   {**keys, "sts:rolesessionname": name}, denied)
        if not clearance.may_take_on(who, role.get("clearance")):
            raise denied("clearance: the role's clearance is not dominated by the caller's")
    duration = _duration(params, sts.DEFAULT_ROLE_DURATION, int(role.get("max_session", 3600)))
    try:
        level = clearance.issued_level(who, role.get("clearance"), sts.requested_level(params))
    except clearance.IAMError as exc:
        raise STSError("AccessDenied" if exc.status == 403 else "ValidationError", str(exc),
                       exc.status if exc.status == 403 else 400, f"clearance: {exc}") from None
    session = sts.new_session(account=account, duration=duration, role=role_name,
                              session_name=name, policy=policy_text or None,
                              role_id=role.get("id") or None, ceiling=clearance.ceiling_of(who),
                              session_level=level)
    return _response("AssumeRole", _credentials(iam, session)
                     + assumed_user(role, account, role_name, name)
                     + "<PackedPolicySize>0</PackedPolicySize>", rid)



def assume_role_with_web_identity(iam: Any, params: dict[str, str], rid: str,
                                  keys: dict[str, Any], audit: dict[str, Any]) -> bytes:
    """AssumeRoleWithWebIdentity: the token is the credential (the request is unsigned).
    The token must verify against a provider of the role's account (iam/oidc.py), the
    role's trust policy must allow its provider with the claims as condition keys, and the
    session's clearance is the role's capped by the claim the provider maps (and the cap
    the root set for it). ``audit`` receives the external identity once verified."""
    arn, name, account, role_name, policy_text = _role_request(params)
    try:
        verified = oidc.verify(iam.directory, account, params.get("WebIdentityToken", ""))
    except oidc.WebIdentityError as exc:
        raise STSError(exc.code, exc.message, exc.status, f"oidc: {exc.message}") from None
    who = f"{verified.provider['url']}#{verified.subject}"
    audit.update(principal=f"oidc:{who}", account=account)

    def denied(rule: str) -> STSError:
        return STSError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                        403, f"{rule} ({who})")

    role = iam.store.get("role", account=account, name=role_name)
    if role is None:
        raise denied("sts: no such role")
    decision = trusted_by(role, oidc.caller_of(verified), "sts:AssumeRoleWithWebIdentity",
                          role_arn(account, role_name), account,
                          {**keys, **verified.condition_keys(), "sts:rolesessionname": name}, denied)
    try:
        ceiling = oidc.ceiling(verified)
    except oidc.WebIdentityError as exc:
        raise STSError(exc.code, exc.message, exc.status, f"oidc: {exc.message} ({who})") from None
    duration = _duration(params, sts.DEFAULT_ROLE_DURATION, int(role.get("max_session", 3600)))
    session = sts.new_session(account=account, duration=duration, role=role_name,
                              session_name=name, policy=policy_text or None,
                              role_id=role.get("id") or None, ceiling=ceiling,
                              source_identity=f"oidc:{who}")
    audit["rule"] = f"sts: allowed by {decision.policy or 'trust-policy'} ({who})"
    return _response("AssumeRoleWithWebIdentity",
                     _credentials(iam, session) + assumed_user(role, account, role_name, name)
                     + f"<SubjectFromWebIdentityToken>{escape(verified.subject)}"
                       "</SubjectFromWebIdentityToken>"
                     + f"<Audience>{escape(verified.audience)}</Audience>"
                     + f"<Provider>{escape(verified.name)}</Provider>"
                     + "<PackedPolicySize>0</PackedPolicySize>", rid)


def assume_role_with_ldap_identity(iam: Any, params: dict[str, str], rid: str,
                                   keys: dict[str, Any], audit: dict[str, Any],
                                   source_ip: str) -> bytes:
    """AssumeRoleWithLDAPIdentity (MinIO's form: LDAPUsername, LDAPPassword, optional
    Policy, DurationSeconds; Vallum adds optional RoleArn and LDAPDirectory): the password
    is the credential (unsigned). The user binds to the directory (iam/ldap.py), its groups
    map to a role whose trust policy must allow the directory as ``Federated`` principal,
    and the session's clearance is the role's capped by the user's clearance attribute
    (within the directory's cap). ``audit`` gets the user's DN once the bind succeeded.
    Failed logins count against the address's limit (iam/auth_failures.py), checked
    BEFORE the bind: a locked-out guesser gets Throttling even for the right password."""
    username, password = params.get("LDAPUsername", ""), params.get("LDAPPassword", "")
    policy_text = params.get("Policy")
    if policy_text:
        try:
            parsed(policy_text, "session")
        except MalformedPolicy as exc:
            raise STSError("MalformedPolicyDocument", str(exc)) from None
    row = ldap_directories.chosen(iam.directory, params.get("LDAPDirectory"))
    if row is None:
        raise STSError("InvalidParameterValue", "no such LDAP directory (name one with "
                       "LDAPDirectory when several are registered)", 400, "ldap: no directory")
    # The claimed name goes to logs and the audit: quoted (repr) unless it is a plain one,
    # so a newline in it cannot forge a log line.
    shown = username if ldap.USERNAME.fullmatch(username) else repr(username[:64])
    claimed = f"{row['name']}#{shown}"
    counter = f"ldap:{claimed}"
    if iam.limiter.blocked(counter, source_ip):
        raise STSError("Throttling", "Too many failed LDAP logins; retry later", 400,
                       f"ldap: locked out ({claimed})")
    try:
        ident = ldap.login(row, username, password)
    except ldap.LDAPLoginError as exc:
        if exc.code == "InvalidParameterValue":
            iam.limiter.failed(counter, source_ip)
        raise STSError(exc.code, exc.message, exc.status, f"{exc.rule} ({claimed})") from None
    who = f"ldap:{ident.dn}"
    audit["principal"] = who
    try:
        arn = ldap.role_for(ident, params.get("RoleArn") or None)
        ceiling = ldap.ceiling(ident)
    except ldap.LDAPLoginError as exc:
        raise STSError(exc.code, exc.message, exc.status, f"{exc.rule} ({who})") from None
    m = _ROLE_ARN.fullmatch(arn)
    if m is None:           # RoleArn not mapped is refused above; mappings are checked ARNs
        raise STSError("ValidationError", f"{arn!r} is not a valid role ARN")
    account, role_name = m.groups()
    audit.update(account=account, target=arn)

    def denied(rule: str) -> STSError:
        return STSError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithLDAPIdentity",
                        403, f"{rule} ({who})")

    role = iam.store.get("role", account=account, name=role_name)
    if role is None:
        raise denied("sts: no such role")
    decision = trusted_by(role, ldap.caller_of(ident, account), "sts:AssumeRoleWithLDAPIdentity",
                          role_arn(account, role_name), account,
                          {**keys, "sts:rolesessionname": username}, denied)
    hi = min(int(role.get("max_session", 3600)), row["max_session"])
    duration = _duration(params, min(sts.DEFAULT_ROLE_DURATION, hi), hi)
    session = sts.new_session(account=account, duration=duration, role=role_name,
                              session_name=username, policy=policy_text or None,
                              role_id=role.get("id") or None, ceiling=ceiling,
                              source_identity=who)
    audit["rule"] = (f"sts: allowed by {decision.policy or 'trust-policy'} ({who}; "
                     f"session {session.access_key_id}, clearance ceiling {ceiling})")
    return _response("AssumeRoleWithLDAPIdentity",
                     _credentials(iam, session) + assumed_user(role, account, role_name, username)
                     + "<PackedPolicySize>0</PackedPolicySize>", rid)
