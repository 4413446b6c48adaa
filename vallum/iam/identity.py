"""Access key id (+ session token) -> secret and Principal, for every request.

Why a generation counter: a disabled or deleted key must stop working at once, on
every gateway process sharing the database. Each request asks the store for the IAM
generation (for SQLite a load from a shared change word, with a database read only
when it moved or twice a second: iam/sqlstore.py); when it moved, every cached key,
secret and resolved principal is dropped and re-read.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from functools import lru_cache

from vallum.iam import clearance, sts
from vallum.iam import policy as policy_lang
from vallum.iam.directory import Directory
from vallum.iam.principal import PLATFORM_ARN, Principal
from vallum.iam.root import RootCredentials

log = logging.getLogger("vallum.iam")
LAST_USED_EVERY = 60.0        # seconds between last-used writes for one key


@lru_cache(maxsize=2048)
def parsed(document: str, kind: str = "identity") -> policy_lang.Policy:
    return policy_lang.parse(document, kind=kind)


def user_arn(account: str, user: str) -> str:
    return f"arn:aws:iam::{account}:user/{user}"


def role_arn(account: str, role: str) -> str:
    return f"arn:aws:iam::{account}:role/{role}"


def session_arn(account: str, role: str, session_name: str) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role}/{session_name}"


def federated_arn(account: str, name: str) -> str:
    """A scoped user or root session: an ARN of its own, so resource policies naming the
    user directly cannot lift the session policy's limits."""
    return f"arn:aws:sts::{account}:federated-user/{name}"


# What a scoped root session starts from before its session policy narrows it.
ROOT_SESSION_POLICY = ('{"Version":"2012-10-17","Statement":[{"Sid":"PlatformRoot",'
                       '"Effect":"Allow","Action":"*","Resource":"*"}]}')


class Identities:
    def __init__(self, directory: Directory, root: RootCredentials, root_account: str) -> None:
        self.directory = directory
        self.store = directory.store
        self.root = root
        self.root_account = root_account
        self._gen = -1
        # akid -> (secret, status, account, user, clearance ceiling and bound session level)
        self._keys: dict[str, tuple[str, str, str, str, clearance.Bounds]] = {}
        self._users: dict[tuple[str, str], Principal] = {}
        self._roles: dict[tuple[str, str], Principal] = {}
        self._role_born: dict[tuple[str, str], float] = {}    # role -> when it was created
        self._by_key: dict[str, Principal] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def root_principal(self) -> Principal:
        return Principal(self.root.access_key, self.root_account, True, arn=PLATFORM_ARN,
                         is_admin=True)

    def refresh(self) -> None:
        gen = self.store.generation()
        if gen != self._gen:
            with self._lock:
                (self._keys, self._users, self._roles, self._role_born,
                 self._by_key) = {}, {}, {}, {}, {}
                self._gen = gen

    # -- lookups --------------------------------------------------------------
    def key(self, akid: str) -> tuple[str, str, str, str, clearance.Bounds] | None:
        hit = self._keys.get(akid)
        if hit is None:
            row = self.store.get_key(akid)
            if row is None:
                return None
            hit = (self.directory.secret_of(row), row.status, row.account, row.user_name,
                   clearance.Bounds(*self.directory.key_bounds(akid)))
            self._keys[akid] = hit
        return hit

    def user_principal(self, akid: str, account: str, user: str) -> Principal | None:
        base = self._users.get((account, user))
        if base is None:
            row = self.store.get("user", account=account, name=user)
            if row is None:
                return None
            groups = tuple(self.directory.groups_of(account, user))
            docs = self.directory.policies_of(account, "user", user)
            for g in groups:
                docs += self.directory.policies_of(account, "group", g)
            base = Principal(None, account, False, user=user, groups=groups,
                             arn=user_arn(account, user),
                             policies=tuple((label, parsed(doc)) for label, doc in docs),
                             boundary=self._boundary(account, row),
                             tags=dict(row.get("tags") or {}), is_admin=bool(row.get("admin")),
                             user_id=row.get("id", ""), clearance=row.get("clearance"),
                             session_level=row.get("session_level"))
            self._users[(account, user)] = base
        return _with_key(base, akid)

    def role_principal(self, account: str, role: str) -> Principal | None:
        base = self._roles.get((account, role))
        if base is None:
            row = self.store.get("role", account=account, name=role)
            if row is None:
                return None
            docs = self.directory.policies_of(account, "role", role)
            base = Principal(None, account, False, role=role, arn=role_arn(account, role),
                             policies=tuple((label, parsed(doc)) for label, doc in docs),
                             boundary=self._boundary(account, row),
                             user_id=row.get("id", ""), clearance=row.get("clearance"),
                             session_level=row.get("session_level"))
            self._roles[(account, role)] = base
            self._role_born[(account, role)] = float(row.get("created") or 0.0)
        return base

    def _boundary(self, account: str, row: dict) -> tuple[tuple[str, policy_lang.Policy], ...]:
        """The entity's permissions boundary as a one-policy tuple (empty: none). Role
        sessions are built from the role's principal, so they keep the role's boundary."""
        found = self.directory.boundary_of(account, row)
        return ((found[0], parsed(found[1])),) if found else ()

    def resolve(self, akid: str, token: str | None, now: float) -> tuple[str, Principal] | None:
        """(secret, principal) for a signing key, or None when it is unknown or disabled.

        Raises sts.TokenError / sts.TokenExpired for bad temporary credentials.
        """
        if akid == self.root.access_key:
            return self.root.secret_key, self.root_principal()
        self.refresh()
        if akid.startswith(sts.TEMP_PREFIX):
            if not token:
                raise sts.TokenError("temporary credentials need x-amz-security-token")
            session = sts.decode(self.directory.master_key, token, akid, now)
            found = self._session(session)
            if found is not None and session.certificate:     # bound to a client certificate
                found = found[0], replace(found[1], certificate=session.certificate)
            return found
        hit = self.key(akid)
        if hit is None or hit[1] != "Active":
            return None
        principal = self._by_key.get(akid)
        if principal is None:
            principal = self.user_principal(akid, hit[2], hit[3])
            if principal is None:
                return None
            principal = clearance.bound(principal, hit[4])
            self._by_key[akid] = principal
        self._touch(akid, now)
        return hit[0], principal

    def _session(self, s: sts.Session) -> tuple[str, Principal] | None:
        """The principal of a temporary key. A session policy narrows every kind of session
        (role, user or root: the result is the intersection with the owner's rights), and a
        session level set at minting is fixed for the session's life (compute tasks)."""
        session = (("session-policy", parsed(s.policy, "session")),) if s.policy else ()
        level: dict = {"session_level": s.session_level, "level_fixed": True} \
            if s.session_level else {}
        p: Principal | None             # the session's principal; None once its user is gone
        if s.role:
            base = self.role_principal(s.account, s.role)
            # The role was deleted (and maybe re-created): so is the session. Sessions
            # minted without the role's id (compute tasks) go by the role's birth instead.
            if base is None or (base.user_id != s.role_id if s.role_id is not None else
                                self._role_born.get((s.account, s.role), 0.0) > s.issued):
                return None
            bounds = clearance.Bounds(s.ceiling, s.session_level)     # capped at its level too
            p = _with_key(clearance.bound(base, bounds), s.access_key_id, arn=session_arn(s.account, s.role,
                                                                 s.session_name or ""),
                          session_name=s.session_name, session_policies=session,
                          token_issued=s.issued, source_identity=s.source_identity, **level)
            return s.secret, p
        if s.source_key == self.root.access_key:
            if not session and not level:
                return s.secret, _with_key(self.root_principal(), s.access_key_id,
                                           token_issued=s.issued)
            # A scoped root session is not the root (which bypasses every policy): full
            # rights in the platform account, capped by the session policy; its MAC
            # clearance is the fixed session level (None: the lowest).
            arn = federated_arn(self.root_account, s.session_name or "root")
            return s.secret, Principal(
                s.access_key_id, self.root_account, False, arn=arn, user_id=arn,
                policies=(("platform-root", parsed(ROOT_SESSION_POLICY)),),
                session_policies=session, token_issued=s.issued, clearance=s.session_level,
                session_name=s.session_name, **level)
        if s.user is not None and (s.source_key or "").startswith(sts.CERT_SOURCE):
            # A client certificate mapped to a user (iam/sts_cert.py): the user's rights,
            # within the certificate's clearance; gone with the user.
            p = self.user_principal(s.access_key_id, s.account, s.user)
            if p is None:
                return None
            p = clearance.bound(p, clearance.Bounds(s.ceiling, s.session_level))
            return s.secret, _with_key(p, s.access_key_id, token_issued=s.issued,
                                       session_name=s.session_name, session_policies=session,
                                       **level)
        hit = self.key(s.source_key or "")
        if hit is None or hit[1] != "Active" or s.user is None:
            return None        # the long-term key was disabled or deleted: so is its session
        p = self.user_principal(s.access_key_id, s.account, s.user)
        if p is None:
            return None
        p = clearance.bound(p, hit[4])          # a session is no more cleared than its key
        scoped = {"session_policies": session, "arn": federated_arn(s.account, s.user)} \
            if session else {}
        return s.secret, _with_key(p, s.access_key_id, token_issued=s.issued, **scoped, **level)

    def _touch(self, akid: str, now: float) -> None:
        if now - self._touched.get(akid, 0.0) >= LAST_USED_EVERY:
            self._touched[akid] = now
            # A commit is an fsync: never on the request path.
            threading.Thread(target=self._write_touch, args=(akid, now), daemon=True).start()

    def _write_touch(self, akid: str, when: float) -> None:
        try:
            self.store.touch_key(akid, when)
        except Exception:  # noqa: BLE001 - last-used is advisory; never fail anything on it
            log.debug("could not record last use of %s", akid, exc_info=True)


def _with_key(p: Principal, akid: str, **changes) -> Principal:
    return replace(p, access_key=akid, **changes)

