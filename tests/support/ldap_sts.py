"""LDAP login test helpers: the STS call (a form POST, as MinIO's AssumeRoleWithLDAPIdentity
takes it), and a world of two accounts, roles trusting a directory, labelled objects,
and the directory registered by the platform root against a real slapd
(tests/support/slapd.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import requests
from defusedxml import ElementTree

from tests.support import slapd
from tests.support.iam import doc, s3_for, uid
from vallum.cli.admin import AdminClient

NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
TS = "TOP SECRET"
LABEL = "x-vallum-classification"
ALLOW_S3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


@dataclass
class Reply:
    status: int
    request_id: str
    code: str | None               # the STS error code, None on success
    result: dict[str, Any]         # Credentials, AssumedRoleUser (success) or Message

    @property
    def creds(self) -> dict[str, str]:
        return self.result["Credentials"]


def login(endpoint: str, username: str | None, password: str | None, **extra: str) -> Reply:
    """AssumeRoleWithLDAPIdentity, unsigned, parameters in a form body."""
    form = {"Action": "AssumeRoleWithLDAPIdentity", "Version": "2011-06-15", **extra}
    if username is not None:
        form["LDAPUsername"] = username
    if password is not None:
        form["LDAPPassword"] = password
    r = requests.post(endpoint + "/", data=form, timeout=30)
    root = ElementTree.fromstring(r.content)
    rid = root.findtext(f".//{NS}RequestId") or r.headers.get("x-amz-request-id", "")
    if r.status_code != 200:
        return Reply(r.status_code, rid, root.findtext(f".//{NS}Code"),
                     {"Message": root.findtext(f".//{NS}Message")})
    res = root.find(f"{NS}AssumeRoleWithLDAPIdentityResult")
    out: dict[str, Any] = {
        "Credentials": {c.tag[len(NS):]: c.text for c in res.find(f"{NS}Credentials")},
        "AssumedRoleUser": {c.tag[len(NS):]: c.text for c in res.find(f"{NS}AssumedRoleUser")}}
    return Reply(200, rid, None, out)


def ldap_trust(account: str, directory: str) -> dict:
    """A trust policy letting the directory's users assume the role."""
    return doc({"Effect": "Allow", "Action": "sts:AssumeRoleWithLDAPIdentity",
                "Principal": {"Federated": f"arn:aws:iam::{account}:ldap-provider/{directory}"}})


class Account:
    def __init__(self, server, root: AdminClient) -> None:
        out = root.call("CreateAccount", name="ldap-" + uuid.uuid4().hex[:8])
        self.id = out["account"]["id"]
        k = out["admin_key"]
        self.admin = AdminClient(server.endpoint, k["access_key_id"], k["secret_access_key"],
                                 server.region)

    def role(self, name: str, trust: dict, *statements: dict) -> str:
        self.admin.call("CreateRole", role=name, trust_policy=trust)
        self.admin.call("PutInlinePolicy", kind="role", target=name, name="p",
                        document=doc(*(statements or (ALLOW_S3,))))
        return f"arn:aws:iam::{self.id}:role/{name}"


class World:
    """Account A (role ``intel``, cleared TOP SECRET, for group intel-staff; role
    ``untrusted`` whose trust names no directory, for group loop-a), account B (role
    ``dev`` for group devs); a bucket of A with a SECRET and a TOP SECRET object; the
    directory ``corp`` (DN template, clearance ``employeeType`` capped at SECRET)."""

    def __init__(self, server, ldap: slapd.Slapd, name: str = "corp") -> None:
        self.server, self.ldap, self.name = server, ldap, name
        self.root = AdminClient(server.endpoint, server.access_key, server.secret_key,
                                server.region)
        self.a, self.b = Account(server, self.root), Account(server, self.root)
        self.intel = self.a.role("intel", ldap_trust(self.a.id, name))
        self.root.call("SetClearance", account=self.a.id, role="intel", clearance=TS)
        self.untrusted = self.a.role("untrusted", doc({
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:aws:iam::{self.a.id}:root"}}))
        self.dev = self.b.role("dev", ldap_trust(self.b.id, name))
        self.bucket = uid("ldap-mac")
        self.root.call("SetClearance", account=self.a.id, user="admin", clearance=TS)
        key = self.root.call("CreateAccessKey", account=self.a.id, user="admin")
        s3_for(server, key["access_key_id"], key["secret_access_key"]).create_bucket(
            Bucket=self.bucket)
        for level, obj in ((TS, "ts"), ("SECRET", "s")):
            s3_for(server, key["access_key_id"], key["secret_access_key"], headers={
                LABEL: level, "x-vallum-session-level": level}).put_object(
                    Bucket=self.bucket, Key=obj, Body=obj.encode())
        self.config = self.directory_config()
        self.root.call("PutLDAPDirectory", **self.config)

    def directory_config(self, **changes: Any) -> dict[str, Any]:
        out = {"name": self.name, "url": self.ldap.url, "start_tls": True,
               "ca_file": self.ldap.ca_file,
               "user_dn_template": f"uid={{username}},{slapd.PEOPLE}",
               "group_search_base": slapd.GROUPS,
               "roles": {slapd.group_dn("intel-staff"): self.intel,
                         slapd.group_dn("devs"): self.dev,
                         slapd.group_dn("loop-a"): self.untrusted},
               "clearance_attribute": "employeeType", "max_clearance": "SECRET",
               "max_session": 3600}
        out.update(changes)
        return out

    def login(self, username: str | None, password: str | None = None, **extra: str) -> Reply:
        if password is None and username in slapd.PASSWORDS:
            password = slapd.PASSWORDS[username]
        return login(self.server.endpoint, username, password, **extra)

    def readable(self, creds: dict[str, str]) -> set[str]:
        """Which of the labelled objects the session can read."""
        from botocore.exceptions import ClientError
        s3 = s3_for(self.server, creds["AccessKeyId"], creds["SecretAccessKey"],
                    creds["SessionToken"])
        out = set()
        for key in ("ts", "s"):
            try:
                s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                out.add(key)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] in ("NoSuchKey", "AccessDenied")
        return out

