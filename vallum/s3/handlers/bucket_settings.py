"""Bucket settings: ACLs (canned private only, owner-enforced as AWS's default),
default encryption configuration, and object ownership controls.

Vallum has no ACL evaluation: every object belongs to the bucket owner and
access is decided by IAM (vallum.authz). So an ACL is accepted only when it
grants nothing beyond the owner's FULL_CONTROL; anything else is answered as
AWS answers a bucket whose ACLs are disabled.
"""

from __future__ import annotations

from vallum.http import Request, Response, xml_response
from vallum.meta.records import BucketRecord
from vallum.s3 import errors, xml
from vallum.s3.handlers import labels, visibility
from vallum.s3.handlers.buckets import owner_element
from vallum.s3.handlers.common import (
    MD5_REQUIRED,
    check_body_digests,
    check_version_id,
    get_bucket,
    read_xml,
)

OWNERSHIP_KEY = "ownership"
ENCRYPTION_KEY = "encryption"
OWNERSHIPS = ("BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter")
# An explicit DeleteBucketOwnershipControls; absent means the default, BucketOwnerEnforced.
_DELETED = ""
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_GRANT_HEADERS = ("x-amz-grant-full-control", "x-amz-grant-read", "x-amz-grant-read-acp",
                  "x-amz-grant-write", "x-amz-grant-write-acp")


# -- ACLs ------------------------------------------------------------------------
def _acl_document(request: Request) -> bytes:
    o_id = xml.escape(owner_element(request)["ID"])      # no DisplayName, as AWS since 2025-11
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="{xml.S3_NS}">'
            f"<Owner><ID>{o_id}</ID></Owner><AccessControlList>"
            f'<Grant><Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser"><ID>{o_id}</ID>'
            f"</Grantee><Permission>FULL_CONTROL</Permission></Grant>"
            "</AccessControlList></AccessControlPolicy>").encode()


CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
               "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write")
# Canned ACLs that grant nothing beyond the bucket owner (all Vallum can honour: no ACL evaluation).
OWNER_ONLY_ACLS = ("private", "bucket-owner-read", "bucket-owner-full-control")
PUBLIC_ACL_REFUSED = ("Access Denied: the ACL grants access beyond the bucket owner; Vallum decides "
                      "access by IAM and bucket policies only (as Block Public Access does)")


def ownership(bucket: BucketRecord | None) -> str:
    """The bucket's Object Ownership (absent or deleted controls: ACLs are not disabled
    only for ObjectWriter / BucketOwnerPreferred; the default is BucketOwnerEnforced)."""
    value = bucket.config.get(OWNERSHIP_KEY) if bucket is not None else None
    return value or "BucketOwnerEnforced"


def check_canned_acl(request: Request, *, for_object: bool, bucket: BucketRecord | None = None,
                     creating: str | None = None) -> None:
    """Refuse an x-amz-acl / x-amz-grant-* header that grants more than owner control.

    ``bucket`` (writes into it) or ``creating`` (CreateBucket's ownership) decides how:
    under BucketOwnerEnforced (ACLs disabled) as AWS does, AccessControlListNotSupported
    (InvalidBucketAclWithObjectOwnership on CreateBucket); with ACLs enabled, owner-only
    canned ACLs are accepted and any grant to others is refused with AccessDenied, as
    AWS's Block Public Access answers, since Vallum has no ACL evaluation to honour it."""
    canned = request.headers.get("x-amz-acl")
    grants = any(h in request.headers for h in _GRANT_HEADERS)
    mode = creating if creating is not None else ownership(bucket)
    if mode == "BucketOwnerEnforced":
        allowed = ("private", "bucket-owner-full-control") if for_object else ("private",)
        if (canned is not None and canned not in allowed) or grants:
            if creating is not None:
                raise errors.InvalidBucketAclWithObjectOwnership()
            raise errors.AccessControlListNotSupported()
        return
    if canned is not None and canned not in CANNED_ACLS:
        raise errors.InvalidArgument(None, ArgumentName="x-amz-acl", ArgumentValue=canned[:64])
    if (canned is not None and canned not in OWNER_ONLY_ACLS) or grants:
        raise errors.AccessDenied(PUBLIC_ACL_REFUSED)


async def _check_acl_body(request: Request) -> None:
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=MD5_REQUIRED)
    if not data.strip():
        if "x-amz-acl" not in request.headers:
            raise errors.MalformedXML()
        return
    if "x-amz-acl" in request.headers:
        raise errors.UnexpectedContent("This request does not support content")
    doc = xml.parse(data, "AccessControlPolicy")
    xml.only_known(doc, {"Owner", "AccessControlList"})
    acl = xml.child(doc, "AccessControlList")
    if acl is None:
        raise errors.MalformedXML()
    owner_id = request.services.owner_id
    for grant in xml.children(acl, "Grant"):
        grantee = xml.child(grant, "Grantee")
        if grantee is None or xml.text(grant, "Permission") is None:
            raise errors.MalformedXML()
        if xml.text(grantee, "ID") != owner_id or xml.text(grant, "Permission") != "FULL_CONTROL":
            raise errors.AccessControlListNotSupported()


async def get_bucket_acl(request: Request) -> Response:
    await get_bucket(request)
    return xml_response(_acl_document(request))


async def put_bucket_acl(request: Request) -> Response:
    bucket = await get_bucket(request)
    check_canned_acl(request, for_object=False, bucket=bucket)
    await _check_acl_body(request)
    return Response(200)


async def _object(request: Request) -> dict[str, str]:
    bucket = await get_bucket(request)
    version_id = check_version_id(request.query.get("versionId"))
    record = await (visibility.latest_version(request, bucket.name, request.key) if version_id is None
                    else request.services.meta.get_object(bucket.name, request.key, version_id))
    if record is None or (record.delete_marker and version_id is None):
        if version_id is not None:
            raise errors.NoSuchVersion(Key=request.key, VersionId=version_id)
        raise errors.NoSuchKey(Key=request.key)
    if record.delete_marker:
        raise errors.MethodNotAllowed(Method=request.method, ResourceType="DeleteMarker")
    # No read up: an object above the caller's level is answered as missing.
    labels.require_read(request, record, labels.missing_error(request.key, version_id))
    return {"x-amz-version-id": record.version_id} if bucket.versioning else {}


async def get_object_acl(request: Request) -> Response:
    headers = await _object(request)
    return xml_response(_acl_document(request), headers=headers)


async def put_object_acl(request: Request) -> Response:
    headers = await _object(request)
    check_canned_acl(request, for_object=True)
    await _check_acl_body(request)
    return Response(200, headers)


# -- default encryption -------------------------------------------------------------
def _parse_encryption(data: bytes) -> list[tuple[str, str | None, str | None]]:
    doc = xml.parse(data, "ServerSideEncryptionConfiguration")
    xml.only_known(doc, {"Rule"})
    rules = []
    for rule in xml.children(doc, "Rule"):
        xml.only_known(rule, {"ApplyServerSideEncryptionByDefault", "BucketKeyEnabled"})
        default = xml.child(rule, "ApplyServerSideEncryptionByDefault")
        if default is None:
            raise errors.MalformedXML()
        xml.only_known(default, {"SSEAlgorithm", "KMSMasterKeyID"})
        algorithm, key_id = xml.text(default, "SSEAlgorithm"), xml.text(default, "KMSMasterKeyID")
        if algorithm not in SSE_ALGORITHMS:
            raise errors.MalformedXML()
        if key_id is not None and algorithm == "AES256":
            raise errors.InvalidArgument("a KMSMasterKeyID is not applicable if the default sse algorithm "
                                         "is not aws:kms or aws:kms:dsse", ArgumentName="ApplyServerSideEncryptionByDefault")
        bucket_key = xml.text(rule, "BucketKeyEnabled")
        if bucket_key not in (None, "true", "false"):
            raise errors.MalformedXML()
        rules.append((algorithm, key_id, bucket_key))
    if len(rules) != 1:
        raise errors.MalformedXML()
    return rules


async def put_bucket_encryption(request: Request) -> Response:
    bucket = await get_bucket(request)
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=MD5_REQUIRED)
    _parse_encryption(data)
    bucket.config[ENCRYPTION_KEY] = data.decode("utf-8")
    await request.services.meta.update_bucket(bucket)
    return Response(200)


async def get_bucket_encryption(request: Request) -> Response:
    bucket = await get_bucket(request)
    text = bucket.config.get(ENCRYPTION_KEY)
    if not text:
        raise errors.ServerSideEncryptionConfigurationNotFoundError(BucketName=bucket.name)
    rules = []
    for algorithm, key_id, bucket_key in _parse_encryption(text.encode()):
        rules.append({"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm, "KMSMasterKeyID": key_id},
                      "BucketKeyEnabled": bucket_key})
    return xml_response(xml.render("ServerSideEncryptionConfiguration", {"Rule": rules}))


async def delete_bucket_encryption(request: Request) -> Response:
    bucket = await get_bucket(request)
    if bucket.config.pop(ENCRYPTION_KEY, None) is not None:
        await request.services.meta.update_bucket(bucket)
    return Response(204)


# -- ownership controls ------------------------------------------------------------------
async def put_bucket_ownership_controls(request: Request) -> Response:
    bucket = await get_bucket(request)
    doc = await read_xml(request, "OwnershipControls", digest_required=MD5_REQUIRED)
    xml.only_known(doc, {"Rule"})
    rules = xml.children(doc, "Rule")
    if len(rules) != 1:
        raise errors.MalformedXML()
    xml.only_known(rules[0], {"ObjectOwnership"})
    value = xml.text(rules[0], "ObjectOwnership")
    if value not in OWNERSHIPS:
        raise errors.MalformedXML()
    bucket.config[OWNERSHIP_KEY] = value
    await request.services.meta.update_bucket(bucket)
    return Response(200)


async def get_bucket_ownership_controls(request: Request) -> Response:
    bucket = await get_bucket(request)
    value = bucket.config.get(OWNERSHIP_KEY, "BucketOwnerEnforced")
    if value == _DELETED:
        raise errors.OwnershipControlsNotFoundError(BucketName=bucket.name)
    return xml_response(xml.render("OwnershipControls", {"Rule": {"ObjectOwnership": value}}))


async def delete_bucket_ownership_controls(request: Request) -> Response:
    bucket = await get_bucket(request)
    if bucket.config.get(OWNERSHIP_KEY) != _DELETED:
        bucket.config[OWNERSHIP_KEY] = _DELETED
        await request.services.meta.update_bucket(bucket)
    return Response(204)
