"""LDAP login rules that need no directory: credentials refused before any bind, the
username escaped into DNs and filters, roles chosen from groups, the clearance cap, and
directory configurations checked when written (the login itself: tests/security/
test_ldap_logins.py, against a real slapd)."""

from __future__ import annotations

import pytest

from vallum.iam import ldap
from vallum.iam.directory import Directory, IAMError
from vallum.iam.ldap_directories import normal_dn, put_directory
from vallum.iam.store import MemoryIAMStore

A = "arn:aws:iam::111111111111:role/a"
B = "arn:aws:iam::222222222222:role/b"
ROW = {"name": "corp", "user_dn_template": "uid={username},ou=people,dc=example,dc=org",
       "roles": {"cn=a,ou=groups,dc=example,dc=org": A, "cn=b,ou=groups,dc=example,dc=org": B},
       "clearance_attribute": "employeeType", "max_clearance": "SECRET"}


@pytest.mark.parametrize("username,password", [("", "pw"), ("alice", ""), ("", "")])
def test_empty_credentials_are_missing_parameters(username, password):
    with pytest.raises(ldap.LDAPLoginError) as exc:
        ldap.check_credentials(username, password)
    assert exc.value.code == "MissingParameter"


@pytest.mark.parametrize("username", ["*", "a)(uid=*", "a\x00b", "a b", "é" * 3, "x", "a" * 65])
def test_usernames_outside_the_session_name_alphabet_are_refused(username):
    with pytest.raises(ldap.LDAPLoginError) as exc:
        ldap.check_credentials(username, "pw")
    assert exc.value.code == "InvalidParameterValue"


def test_dn_template_escapes_the_username():
    dn = ldap._user_dn(ROW, "alice,ou=admins+cn=x")
    assert dn == r"uid=alice\,ou\=admins\+cn\=x,ou=people,dc=example,dc=org"


def _ident(*groups: str, clearance: tuple[str, ...] = ()) -> ldap.Identity:
    return ldap.Identity(ROW, "alice", "uid=alice,ou=people,dc=example,dc=org",
                         frozenset(groups), clearance)


def test_role_is_chosen_from_the_groups():
    a, b = "cn=a,ou=groups,dc=example,dc=org", "cn=b,ou=groups,dc=example,dc=org"
    assert ldap.role_for(_ident(a), None) == A
    assert ldap.role_for(_ident(a, b), B) == B
    for ident, asked, code in ((_ident(), None, "InvalidParameterValue"),
                               (_ident(a, b), None, "InvalidParameterValue"),
                               (_ident(a), B, "AccessDenied"),
                               (_ident("cn=a,ou=selfservice,dc=example,dc=org"), A, "AccessDenied")):
        with pytest.raises(ldap.LDAPLoginError) as exc:
            ldap.role_for(ident, asked)
        assert exc.value.code == code


def test_clearance_is_capped():
    assert ldap.ceiling(_ident(clearance=("SECRET",))) == "SECRET"
    assert ldap.ceiling(_ident()) == "UNCLASSIFIED"
    for values in (("TOP SECRET",), ("NOT A LABEL",), ("SECRET", "CONFIDENTIAL")):
        with pytest.raises(ldap.LDAPLoginError) as exc:
            ldap.ceiling(_ident(clearance=values))
        assert exc.value.code == "IDPRejectedClaim"


def test_group_dns_compare_normalised():
    assert normal_dn("CN=Ops, OU=Groups,DC=Example,DC=Org") == "cn=ops,ou=groups,dc=example,dc=org"
    with pytest.raises(IAMError):
        normal_dn("not a dn")


def test_configuration_is_checked_whole(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    d = Directory(MemoryIAMStore(), b"k" * 32)
    d.store.open()
    good = {"name": "corp", "url": "ldaps://ldap.example.org:636", "ca_file": str(ca),
            "user_dn_template": "uid={username},ou=people,dc=example,dc=org",
            "group_search_base": "ou=groups,dc=example,dc=org", "roles": {"cn=a,dc=org": A}}
    assert put_directory(d, dict(good))["start_tls"] is False
    for bad in ({"url": "ldap://ldap.example.org"} | {"start_tls": False},
                {"start_tls": True},                      # ldaps:// is TLS already
                {"user_filter": "(uid={username})"},       # template and search: one only
                {"group_filter": "(cn={username})"},
                {"nesting": 0}, {"timeout": True}, {"bind_password": "x"}):
        with pytest.raises(IAMError):
            put_directory(d, {**good, **bad})
