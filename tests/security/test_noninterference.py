"""Noninterference, tested as a property: what a low caller may not read does not exist for it.

Two worlds differ only in what an UNCLASSIFIED session may not see: TOP SECRET objects,
versions on top of visible ones, delete markers over them, multipart uploads and tags.
Hypothesis generates the hidden setup and a sequence of S3 requests (GET, HEAD, PUT,
DELETE and conditional DELETE, COPY, tagging, ListObjects v1/v2, ListObjectVersions, ListMultipartUploads with
prefixes, delimiters, max-keys and markers, continuation tokens and version markers taken
from earlier answers); the low caller sends the same sequence to both worlds and every
answer must be byte-identical once request ids, timestamps and generated ids (version and
upload ids, numbered in order of first appearance) are normalised.

The low caller is the platform root at session level UNCLASSIFIED (the session header),
the high writer the root at system high: the whole gateway runs in process
(tests/support/inprocess.py) over the in-memory stores, so an example costs milliseconds.

Known residual channel, excluded by construction (docs/security.md, "Residual channels"):
a low write that would *replace* a hidden null version (unversioned bucket) is refused
with SlowDown, so low writes to the unversioned bucket never target a hidden key there.

VALLUM_NI_EXAMPLES raises the example count (default 200 per mode, derandomized for CI).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.inprocess import InProcess, Reply

LOW = {"x-vallum-session-level": "UNCLASSIFIED"}
HIGH_LABEL = {"x-vallum-classification": "TOP SECRET"}
VER, PLN = "ver-bucket", "pln-bucket"
# Keys share prefixes and interleave, so hidden keys sit between, before and after visible ones.
KEYS = ["a", "a/b", "a/c/d", "a/z", "b", "b/x/y", "c", "d/e", "d/f", "e"]
HIDDEN_ONLY = ["a/h", "ah", "b/h/z", "c/h", "zz/h"]     # the unversioned bucket's hidden keys
EXAMPLES = int(os.environ.get("VALLUM_NI_EXAMPLES", "200"))

IGNORED_HEADERS = {"x-amz-request-id", "x-amz-id-2", "last-modified", "date"}
_IDS = re.compile(rb"<(VersionId|NextVersionIdMarker|VersionIdMarker|DeleteMarkerVersionId|UploadId|"
                  rb"NextUploadIdMarker|UploadIdMarker)>([^<]*)</")
_NEXT = re.compile(rb"<NextKeyMarker>([^<]*)</NextKeyMarker>"
                   rb"(?:<NextVersionIdMarker>([^<]*)</NextVersionIdMarker>)?")
_KEYED = re.compile(rb"<Key>([^<]*)</Key><VersionId>([^<]*)</")
_VOLATILE = re.compile(rb"<(RequestId|HostId|LastModified|Initiated|CreationDate)>[^<]*</")


@dataclass
class World:
    """One gateway as the low caller, the high writer, and the generated ids the low caller
    has seen there, in order."""

    gw: InProcess
    high: InProcess
    low_headers: dict[str, str]
    top: InProcess | None = None           # a system-high reader (root mode only)
    account: str | None = None             # the IAM users' account id (random per world)
    ids: dict[str, str] = field(default_factory=dict)      # id -> token
    order: list[str] = field(default_factory=list)         # version ids, for versionId
    tokens: list[str] = field(default_factory=list)        # continuation tokens seen
    keys: dict[str, str] = field(default_factory=dict)     # version id -> its key
    pages: list[tuple] = field(default_factory=list)       # (NextKeyMarker, NextVersionIdMarker)

    def token(self, value: str, version: bool = True) -> str:
        if value not in self.ids:
            self.ids[value] = f"ID{len(self.ids)}"
            if version:
                self.order.append(value)
        return self.ids[value]

    def nth_id(self, i: int) -> str:
        return self.order[i % len(self.order)] if self.order else "A" * 32

    def normalise(self, reply: Reply) -> tuple:
        for key, version in _KEYED.findall(reply.body):
            self.keys.setdefault(version.decode(), key.decode())
        nxt = _NEXT.search(reply.body)
        if nxt:
            self.pages.append((nxt.group(1).decode(), (nxt.group(2) or b"").decode()))
        headers = []
        for k, v in reply.headers:
            if k in IGNORED_HEADERS:
                continue
            if k in ("x-amz-version-id", "x-amz-copy-source-version-id") and v != "null":
                v = self.token(v)
            headers.append((k, v))
        body = _VOLATILE.sub(lambda m: b"<" + m.group(1) + b">T</", reply.body)
        if self.account:
            body = body.replace(self.account.encode(), b"ACCOUNT")

        def ident(m: re.Match) -> bytes:
            value = m.group(2).decode()
            if not value or value == "null":
                return m.group(0)
            token = self.token(value, version=b"Upload" not in m.group(1))
            return b"<" + m.group(1) + b">" + token.encode() + b"</"

        body = _IDS.sub(ident, body)
        for value, token in self.ids.items():     # ids echoed elsewhere (error arguments)
            body = body.replace(value.encode(), token.encode())
        for t in re.findall(rb"<NextContinuationToken>([^<]*)</", body):
            self.tokens.append(t.decode())
        return reply.status, sorted(headers), body


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


def _tagging(tags: dict[str, str]) -> bytes:
    inner = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in tags.items())
    return f"<Tagging><TagSet>{inner}</TagSet></Tagging>".encode()


# ------------------------------------------------------------------ the hidden setup
# Each step: (who, op, bucket, key, n). "low" steps run in both worlds, "high" only in A.
# Half the draws from three keys: versions pile up on one key, under and over hidden ones.
keys = st.one_of(st.sampled_from(KEYS[:3]), st.sampled_from(KEYS))
bodies = st.integers(0, 3)


@st.composite
def setups(draw):
    steps = []
    uploads: set[tuple[str, str]] = set()
    hidden_latest: dict[str, str] = {}      # VER: the key's latest in A if hidden: "object", "marker"
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["low_put", "low_put", "high_put", "high_put",
                                     "high_put_pln", "high_delete",
                                     "high_upload", "low_upload", "high_tag", "low_delete"]))
        if kind == "low_put":
            bucket = draw(st.sampled_from([VER, PLN]))
            key = draw(keys)
            steps.append(("low", "put", bucket, key, draw(bodies)))
            if bucket == VER:
                hidden_latest.pop(key, None)
        elif kind == "low_delete":
            key = draw(keys)
            steps.append(("low", "delete", VER, key, 0))
            hidden_latest.pop(key, None)
        elif kind == "high_put":
            key = draw(keys)
            steps.append(("high", "put", VER, key, draw(bodies)))
            hidden_latest[key] = "object"
        elif kind == "high_put_pln":
            steps.append(("high", "put", PLN, draw(st.sampled_from(HIDDEN_ONLY)), draw(bodies)))
        elif kind == "high_delete":
            # A high delete over a *visible* latest makes a visible marker (by design): only
            # delete what is hidden already, so the marker is hidden too.
            hidden = sorted(hidden_latest)
            if hidden:
                key = draw(st.sampled_from(hidden))
                steps.append(("high", "delete", VER, key, 0))
                hidden_latest[key] = "marker"
        elif kind == "high_tag":
            hidden = sorted(k for k, h in hidden_latest.items() if h == "object")
            if hidden:
                steps.append(("high", "tag", VER, draw(st.sampled_from(hidden)), 0))
        else:
            who = "high" if kind == "high_upload" else "low"
            bucket = draw(st.sampled_from([VER, PLN]))
            pool = HIDDEN_ONLY if who == "high" and bucket == PLN else KEYS
            key = draw(st.sampled_from(pool))
            # One upload per key: uploads of one key list in upload-id order, which is random.
            if (bucket, key) not in uploads:
                uploads.add((bucket, key))
                steps.append((who, "upload", bucket, key, 0))
    return steps


def apply_setup(world: World, step: tuple) -> None:
    who, op, bucket, key, n = step
    gw = world.gw if who == "low" else world.high
    headers = dict(world.low_headers) if who == "low" else dict(HIGH_LABEL)
    path = f"/{bucket}/{key}"
    if op == "put":
        reply = gw.call("PUT", path, headers=headers, body=b"x" * n + key.encode())
    elif op == "delete":
        reply = gw.call("DELETE", path, headers=headers)
    elif op == "tag":
        body = _tagging({"secret": "project-x"})
        reply = gw.call("PUT", path, {"tagging": ""}, {"content-md5": _md5(body)}, body)
    else:
        reply = gw.call("POST", path, {"uploads": ""}, headers)
    assert reply.status in (200, 204), (step, reply)


# ------------------------------------------------------------------ the low caller's requests
prefixes = st.sampled_from(["", "a", "a/", "b", "b/", "d/", "z", "c"])
delimiters = st.sampled_from(["", "/", "c"])
max_keys = st.sampled_from([None, 0, 1, 2, 3, 1000])


def _put(d: dict, name: str, value) -> None:
    if value is not None:
        d[name] = str(value)


@st.composite
def requests(draw):
    kind = draw(st.sampled_from(["get", "head", "put", "delete", "copy", "list1", "list2",
                                 "list2", "versions", "versions", "versions", "uploads",
                                 "get_tags", "put_tags", "get_acl", "list_buckets",
                                 "multidelete"]))
    bucket = draw(st.sampled_from([VER, PLN]))
    key = draw(st.one_of(keys, st.sampled_from(HIDDEN_ONLY)))
    if bucket == PLN and kind in ("put", "copy") and key in HIDDEN_ONLY:
        key = KEYS[len(key)]          # the residual write-up channel (module docstring)
    use_id = draw(st.one_of(st.none(), st.integers(0, 30)))
    q: dict = {}
    if kind in ("list1", "list2", "versions", "uploads"):
        _put(q, "prefix", draw(st.one_of(st.none(), prefixes)))
        _put(q, "delimiter", draw(st.one_of(st.none(), delimiters)))
        _put(q, "max-uploads" if kind == "uploads" else "max-keys", draw(max_keys))
        marker = draw(st.one_of(st.none(), st.sampled_from(KEYS + HIDDEN_ONLY)))
        if kind == "list1":
            _put(q, "marker", marker)
        elif kind == "list2":
            q["list-type"] = "2"
            _put(q, "start-after", marker)
        else:
            _put(q, "key-marker", marker)
    token = draw(st.one_of(st.none(), st.integers(0, 30)))
    if kind in ("get", "head", "put", "copy"):     # conditions and ranges, as headers
        _put(q, "header:if-none-match", draw(st.one_of(st.none(), st.just("*"), st.just('"x"'))))
        if kind in ("get", "head"):
            _put(q, "header:range", draw(st.one_of(st.none(), st.sampled_from(["bytes=0-0", "bytes=2-"]))))
    if kind == "delete":                            # conditional deletes
        _put(q, "header:if-match", draw(st.one_of(st.none(), st.just("*"), st.just('"x"'))))
        _put(q, "header:x-amz-if-match-size", draw(st.one_of(st.none(), st.sampled_from(["0", "3"]))))
    return kind, bucket, key, use_id, q, token, draw(bodies)


class _Recorder:
    """The gateway, remembering what was sent (to send it again, unchanged)."""

    def __init__(self, gw: InProcess, sent: list | None) -> None:
        self.gw, self.sent = gw, sent

    def call(self, method: str, path: str, query: dict | None = None,
             headers: dict | None = None, body: bytes = b"") -> Reply:
        if self.sent is not None:
            self.sent.append((method, path, query, headers, body))
        return self.gw.call(method, path, query, headers, body)


def send(world: World, request: tuple, headers: dict[str, str], sent: list | None = None) -> Reply:
    """One generated request, with ids and tokens resolved in this world."""
    kind, bucket, key, use_id, q, token, n = request
    gw = _Recorder(world.gw, sent)
    q = dict(q)
    if kind == "list_buckets":
        return gw.call("GET", "/", headers=headers)
    path = f"/{bucket}/{key}"
    headers = dict(headers, **{k[7:]: q.pop(k) for k in list(q) if k.startswith("header:")})
    if kind == "multidelete":
        names = [key, *KEYS[n:n + 2], *HIDDEN_ONLY[n:n + 1]]
        if bucket == PLN:      # deleting a hidden null version is answered as for a missing key
            names = [k for k in names if k not in HIDDEN_ONLY] + HIDDEN_ONLY[n:n + 1]
        etag = ("", "<ETag>*</ETag>", '<ETag>"x"</ETag>', "<Size>0</Size>")[n % 4]  # conditional
        doc = "".join(f"<Object><Key>{k}</Key>{etag}</Object>" for k in names)
        body = f"<Delete><Quiet>{'true' if n % 2 else 'false'}</Quiet>{doc}</Delete>".encode()
        return gw.call("POST", f"/{bucket}", {"delete": ""}, dict(headers, **{"content-md5": _md5(body)}), body)
    if kind == "list2" and token is not None and world.tokens:
        q["continuation-token"] = world.tokens[token % len(world.tokens)]
    if kind in ("list1", "list2", "versions", "uploads"):
        if kind == "versions":
            q["versions"] = ""
            if token is not None and world.pages:    # the next page, as a client asks for it
                q["key-marker"], version = world.pages[token % len(world.pages)]
                q.pop("version-id-marker", None)
                if version:
                    q["version-id-marker"] = version
            elif use_id is not None and world.order:   # resume after any version seen
                q["version-id-marker"] = world.nth_id(use_id)
                q["key-marker"] = world.keys.get(q["version-id-marker"], key)
        if kind == "uploads":
            q["uploads"] = ""
        return gw.call("GET", f"/{bucket}", q, headers)
    if use_id is not None and kind in ("get", "head", "delete", "get_tags", "get_acl"):
        q["versionId"] = world.nth_id(use_id)
    if kind in ("get", "head"):
        return gw.call(kind.upper(), path, q, headers)
    if kind in ("get_tags", "get_acl"):
        return gw.call("GET", path, dict(q, **{kind[4:].replace("tags", "tagging"): ""}), headers)
    if kind == "put_tags":
        body = _tagging({"t": str(n)})
        return gw.call("PUT", path, {"tagging": ""}, dict(headers, **{"content-md5": _md5(body)}), body)
    if kind == "delete":
        return gw.call("DELETE", path, q, headers)
    if kind == "put":
        reply = gw.call("PUT", path, headers=headers, body=b"y" * n)
    else:
        every = KEYS + HIDDEN_ONLY
        source = f"/{bucket}/{every[(n * 3 + len(key)) % len(every)]}"
        reply = gw.call("PUT", path, headers=dict(headers, **{"x-amz-copy-source": source}))
    if reply.header("x-amz-version-id"):
        world.keys.setdefault(reply.header("x-amz-version-id"), key)
    return reply


READS = {"get", "head", "list1", "list2", "versions", "uploads", "get_tags", "get_acl"}


def _same(a: Reply, b: Reply) -> bool:
    """Equal answers from one world: only the request ids may differ."""
    def strip(r: Reply) -> tuple:
        body = re.sub(rb"<(RequestId|HostId)>[^<]*</", b"", r.body)
        return r.status, sorted(h for h in r.headers if h[0] not in IGNORED_HEADERS), body
    return strip(a) == strip(b)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


ALLOW_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def _iam_users(root: InProcess) -> tuple[InProcess, InProcess, InProcess, str]:
    """An account with its admin, a TOP SECRET-cleared user and an uncleared one."""
    made = root.admin("CreateAccount", name="mac")[1]
    key = made["admin_key"]
    admin = root.as_user(key["access_key_id"], key["secret_access_key"])
    users = []
    for name in ("hi", "lo"):
        assert admin.admin("CreateUser", user=name)[0] == 200
        assert admin.admin("PutInlinePolicy", kind="user", target=name, name="p",
                           document=ALLOW_S3)[0] == 200
        minter, account = admin, {}
        if name == "hi":     # only the platform root may clear, and mint keys for a cleared user
            account = {"account": made["account"]["id"]}
            assert root.admin("SetClearance", user=name, clearance="TOP SECRET", **account)[0] == 200
            minter = root
        key = minter.admin("CreateAccessKey", user=name, **account)[1]
        users.append(root.as_user(key["access_key_id"], key["secret_access_key"]))
    return admin, users[0], users[1], made["account"]["id"]


def new_world(loop, mode: str) -> World:
    """``root-session``: the root at session UNCLASSIFIED reads, the root at system high
    writes the hidden data. ``iam-users``: an uncleared IAM user reads, a TOP SECRET-cleared
    user of the same account writes."""
    root = InProcess.open(loop)
    if mode == "root-session":
        world, owner = World(root, root, dict(LOW), top=root), root
    else:
        owner, high, low, account = _iam_users(root)
        world = World(low, high, {}, account=account)
    assert owner.call("PUT", f"/{VER}").status == 200
    assert owner.call("PUT", f"/{PLN}").status == 200
    body = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    assert owner.call("PUT", f"/{VER}", {"versioning": ""}, {"content-md5": _md5(body)},
                      body).status == 200
    return world


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(setup=setups(), sequence=st.lists(requests(), min_size=2, max_size=25))
# A second page that starts inside a key (IsLatest must stay false on it).
@example(setup=[("low", "put", VER, "a", 0), ("low", "put", VER, "a", 1), ("high", "put", VER, "a", 2)],
         sequence=[("versions", VER, "a", None, {"max-keys": "1"}, None, 0),
                   ("versions", VER, "a", None, {}, 0, 0)])
@pytest.mark.parametrize("mode", ["root-session", "iam-users"])
def test_low_caller_cannot_tell_worlds_apart(loop, mode, setup, sequence):
    high, low = new_world(loop, mode), new_world(loop, mode)
    try:
        for step in setup:
            apply_setup(high, step)
            if step[0] == "low":
                apply_setup(low, step)
        for i, request in enumerate(sequence):
            a = high.normalise(send(high, request, high.low_headers))
            sent: list[tuple] = []
            raw = send(low, request, low.low_headers, sent)
            b = low.normalise(raw)
            assert a == b, f"request {i} {request} differs:\n with hidden: {a}\n without:     {b}"
            if request[0] in READS and low.top is not None:
                # Nothing is hidden in this world: the low view equals the system-high view.
                method, path, query, headers, body = sent[0]
                headers = {k: v for k, v in headers.items() if k not in LOW}
                top = low.top.call(method, path, query, headers, body)
                assert _same(top, raw), f"request {i} {request}: {top} != {raw}"
    finally:
        high.gw.close()
        low.gw.close()
