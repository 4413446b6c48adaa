"""MAC on deletes and on writes over hidden keys: a caller below an object's label can
neither remove it, nor learn it exists from a delete's answer, a delete marker, or a
conditional write; a write over it never destroys it (docs/security.md, "Deletes and
writes over hidden objects")."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.mac import LABEL, TS, S, World, put, with_headers
from tests.support.server import code, start_server, stop_server

pytestmark = pytest.mark.usefixtures("srv")

DROP = ("x-amz-request-id", "x-amz-id-2", "date", "x-amz-version-id", "connection")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("mac-delete") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def w(srv) -> World:
    return World(srv)


def _bucket(w: World, versioning: str | None) -> str:
    name = "md-" + uuid.uuid4().hex[:12]
    w.top.create_bucket(Bucket=name)
    if versioning:
        w.top.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
    put(w.top, name, "hidden.txt", b"top secret", TS)
    return name


def _view(response) -> tuple:
    meta = response["ResponseMetadata"]
    headers = {k: v for k, v in meta["HTTPHeaders"].items() if k not in DROP}
    return meta["HTTPStatusCode"], headers, "VersionId" in response


def _error(exc, key: str = "") -> tuple:
    """Status, error fields and headers, with ids, dates and the key name (same length) removed."""
    r = exc.value.response
    headers = {k: v for k, v in r["ResponseMetadata"]["HTTPHeaders"].items() if k not in DROP}
    err = {k: v.replace(key, "KEY") if key else v for k, v in r["Error"].items()
           if k not in ("RequestId", "HostId", "Key")}
    return r["ResponseMetadata"]["HTTPStatusCode"], err, headers


def _versions(c, bucket: str) -> list[tuple[str, str, bool]]:
    out = c.list_object_versions(Bucket=bucket)
    return sorted([(v["Key"], "v", v["IsLatest"]) for v in out.get("Versions", [])]
                  + [(m["Key"], "dm", m["IsLatest"]) for m in out.get("DeleteMarkers", [])])


@pytest.mark.parametrize("versioning", [None, "Enabled", "Suspended"])
def test_delete_of_a_hidden_object_answers_as_missing_and_changes_nothing(w, versioning):
    b = _bucket(w, versioning)
    hidden = _view(w.sec.delete_object(Bucket=b, Key="hidden.txt"))
    missing = _view(w.sec.delete_object(Bucket=b, Key="absent.txt"))
    assert hidden == missing
    assert hidden[0] == 204
    # Many keys at once: the hidden one is reported exactly like the missing one.
    out = w.sec.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "hidden.txt"}, {"Key": "absent.txt"}]})
    entries = {d["Key"]: {k: v for k, v in d.items() if k not in ("Key", "DeleteMarkerVersionId")}
               for d in out["Deleted"]}
    assert entries["hidden.txt"] == entries["absent.txt"] and not out.get("Errors")
    # The object is untouched for those cleared for it (in a versioned bucket the lower
    # caller's marker is a new version on top of it, as over a missing key).
    vid = [v["VersionId"] for v in w.top.list_object_versions(Bucket=b)["Versions"]
           if v["Key"] == "hidden.txt"]
    assert len(vid) == 1
    assert w.top.get_object(Bucket=b, Key="hidden.txt", VersionId=vid[0])["Body"].read() == b"top secret"
    if versioning != "Enabled":
        assert w.top.get_object(Bucket=b, Key="hidden.txt")["Body"].read() == b"top secret"


def test_delete_of_a_hidden_version_by_id_answers_as_missing(w):
    b = _bucket(w, "Enabled")
    vid = w.top.head_object(Bucket=b, Key="hidden.txt")["VersionId"]
    other = "A" * 32                                 # well formed, no such version
    hidden = _view(w.sec.delete_object(Bucket=b, Key="hidden.txt", VersionId=vid))
    missing = _view(w.sec.delete_object(Bucket=b, Key="hidden.txt", VersionId=other))
    assert hidden == missing and hidden[0] == 204
    out = w.sec.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "hidden.txt", "VersionId": vid}]})
    assert out["Deleted"] == [{"Key": "hidden.txt", "VersionId": vid}]
    assert w.top.get_object(Bucket=b, Key="hidden.txt", VersionId=vid)["Body"].read() == b"top secret"


def test_delete_markers_of_hidden_objects_stay_hidden(w):
    b = _bucket(w, "Enabled")
    marker = w.top.delete_object(Bucket=b, Key="hidden.txt")          # made by someone cleared
    assert marker["DeleteMarker"] is True
    assert _versions(w.sec, b) == []                                   # neither version nor marker
    assert _versions(w.top, b) == [("hidden.txt", "dm", True), ("hidden.txt", "v", False)]
    views = []
    for key in ("hidden.txt", "absent.txt"):     # no x-amz-delete-marker / version id leaks
        with pytest.raises(ClientError) as exc:
            w.sec.get_object(Bucket=b, Key=key)
        views.append(_error(exc, key))
    assert views[0] == views[1] and views[0][0] == 404
    assert "x-amz-delete-marker" not in views[0][2]
    with pytest.raises(ClientError) as exc:       # nor can it be removed to resurrect anything
        w.sec.get_object(Bucket=b, Key="hidden.txt", VersionId=marker["VersionId"])
    assert code(exc) == "NoSuchVersion"
    w.sec.delete_object(Bucket=b, Key="hidden.txt", VersionId=marker["VersionId"])
    assert _versions(w.top, b) == [("hidden.txt", "dm", True), ("hidden.txt", "v", False)]
    # A lower caller's delete of the hidden key is a new, lower marker, as over a missing key:
    # it shows in its own listing, and the hidden version is still there underneath.
    w.sec.delete_object(Bucket=b, Key="absent.txt")
    w.sec.delete_object(Bucket=b, Key="hidden.txt")
    assert _versions(w.sec, b) == [("absent.txt", "dm", True), ("hidden.txt", "dm", True)]
    assert ("hidden.txt", "v", False) in _versions(w.top, b)


def test_versioned_write_over_a_hidden_key_is_a_new_lower_version(w):
    b = _bucket(w, "Enabled")
    add = with_headers(w.sec, {LABEL: S})
    try:
        views = []
        for key in ("hidden.txt", "absent.txt"):   # If-Match: as on a missing key (404)
            with pytest.raises(ClientError) as exc:
                w.sec.put_object(Bucket=b, Key=key, Body=b"s", IfMatch='"0123456789abcdef0123456789abcdef"')
            views.append(_error(exc, key))
        assert views[0] == views[1] and views[0][0] == 404
        for key in ("hidden.txt", "absent.txt"):   # If-None-Match: * does not see the hidden one
            w.sec.put_object(Bucket=b, Key=key, Body=b"secret", IfNoneMatch="*")
    finally:
        w.sec.meta.events.unregister("before-call.s3", add)
    assert w.sec.get_object(Bucket=b, Key="hidden.txt")["Body"].read() == b"secret"
    bodies = [w.top.get_object(Bucket=b, Key="hidden.txt", VersionId=v["VersionId"])["Body"].read()
              for v in w.top.list_object_versions(Bucket=b, Prefix="hidden.txt")["Versions"]]
    assert sorted(bodies) == [b"secret", b"top secret"]


@pytest.mark.parametrize("versioning", [None, "Suspended"])
def test_unversioned_write_over_a_hidden_key_is_refused_as_throttled(w, versioning):
    b = _bucket(w, versioning)
    add = with_headers(w.sec, {LABEL: S})
    try:
        with pytest.raises(ClientError) as exc:
            w.sec.put_object(Bucket=b, Key="hidden.txt", Body=b"overwrite")
        refused = _error(exc)
        with pytest.raises(ClientError) as exc:          # no 412 either
            w.sec.put_object(Bucket=b, Key="hidden.txt", Body=b"overwrite", IfNoneMatch="*")
        assert _error(exc) == refused
        with pytest.raises(ClientError) as exc:          # nor through a copy
            w.sec.put_object(Bucket=b, Key="mine.txt", Body=b"mine")
            w.sec.copy_object(Bucket=b, Key="hidden.txt", CopySource={"Bucket": b, "Key": "mine.txt"})
        assert _error(exc) == refused
    finally:
        w.sec.meta.events.unregister("before-call.s3", add)
    # The operator's throttling answer, which any request may get.
    assert refused[0] == 503 and refused[1]["Code"] == "SlowDown"
    assert refused[1]["Message"] == "Request rate limited by the operator; retry later."
    assert w.top.get_object(Bucket=b, Key="hidden.txt")["Body"].read() == b"top secret"
    put(w.top, b, "hidden.txt", b"top secret 2", TS)      # those cleared still write it
    assert w.top.get_object(Bucket=b, Key="hidden.txt")["Body"].read() == b"top secret 2"


@pytest.mark.parametrize("versioning", [None, "Enabled"])
def test_conditional_delete_of_a_hidden_object_answers_as_missing(w, versioning):
    b = _bucket(w, versioning)
    etag = w.top.head_object(Bucket=b, Key="hidden.txt")["ETag"]   # even the right ETag
    for cond in ({"IfMatch": etag}, {"IfMatch": "*"}):
        views = []
        for key in ("hidden.txt", "absent.txt"):
            with pytest.raises(ClientError) as exc:
                w.sec.delete_object(Bucket=b, Key=key, **cond)
            views.append(_error(exc, key))
        assert views[0] == views[1] and views[0][0] == 404
    sized = [_view(w.sec.delete_object(Bucket=b, Key=k, IfMatchSize=10))
             for k in ("hidden.txt", "absent.txt")]
    assert sized[0] == sized[1] and sized[0][0] == 204
    out = w.sec.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "hidden.txt", "ETag": etag}, {"Key": "absent.txt", "ETag": etag}]})
    assert [(e["Code"], e["Message"]) for e in out["Errors"] if e["Key"] == "hidden.txt"] == \
        [(e["Code"], e["Message"]) for e in out["Errors"] if e["Key"] == "absent.txt"] == \
        [("NoSuchKey", "The specified key does not exist.")]
    vid = [v["VersionId"] for v in w.top.list_object_versions(Bucket=b)["Versions"]
           if v["Key"] == "hidden.txt"]
    assert w.top.get_object(Bucket=b, Key="hidden.txt", VersionId=vid[0])["Body"].read() == b"top secret"


def test_retried_complete_of_a_hidden_upload_is_no_such_upload(w):
    b = _bucket(w, None)
    add = with_headers(w.top, {LABEL: TS})
    try:
        uid = w.top.create_multipart_upload(Bucket=b, Key="mp.txt")["UploadId"]
        etag = w.top.upload_part(Bucket=b, Key="mp.txt", UploadId=uid, PartNumber=1,
                                 Body=b"top secret part")["ETag"]
    finally:
        w.top.meta.events.unregister("before-call.s3", add)
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    first = w.top.complete_multipart_upload(Bucket=b, Key="mp.txt", UploadId=uid, MultipartUpload=parts)
    assert w.top.complete_multipart_upload(Bucket=b, Key="mp.txt", UploadId=uid,
                                           MultipartUpload=parts)["ETag"] == first["ETag"]
    views = []
    for upload_id in (uid, "0" * 48):       # the retry of the hidden one, and a made-up id
        with pytest.raises(ClientError) as exc:
            w.sec.complete_multipart_upload(Bucket=b, Key="mp.txt", UploadId=upload_id,
                                            MultipartUpload=parts)
        views.append(_error(exc, upload_id))
    assert views[0] == views[1] and views[0][1]["Code"] == "NoSuchUpload"
