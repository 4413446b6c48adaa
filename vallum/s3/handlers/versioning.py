"""PutBucketVersioning and GetBucketVersioning.

Versioning, once enabled, can only be suspended, never turned off; a bucket with
object lock cannot even be suspended (its versions are the unit of retention).
"""

from __future__ import annotations

from vallum.http import Request, Response, xml_response
from vallum.s3 import errors, xml
from vallum.s3.handlers.common import MD5_REQUIRED, get_bucket, read_xml


async def put_bucket_versioning(request: Request) -> Response:
    bucket = await get_bucket(request)
    doc = await read_xml(request, "VersioningConfiguration", digest_required=MD5_REQUIRED)
    xml.only_known(doc, {"Status", "MfaDelete"})
    status = xml.text(doc, "Status")
    mfa = xml.text(doc, "MfaDelete")
    if status not in (None, "Enabled", "Suspended") or mfa not in (None, "Enabled", "Disabled"):
        raise errors.MalformedXML()
    if mfa == "Enabled":
        raise errors.NotImplemented_("MFA delete is not implemented by Vallum.")
    if status is None:
        return Response(200)
    if status == "Suspended" and bucket.object_lock:
        raise errors.InvalidBucketState("An Object Lock configuration is present on this bucket, "
                                        "so the versioning state cannot be changed.")
    if bucket.versioning != status:
        bucket.versioning = status
        await request.services.meta.update_bucket(bucket)
    return Response(200)


async def get_bucket_versioning(request: Request) -> Response:
    bucket = await get_bucket(request)
    body = {"Status": bucket.versioning or None}
    if bucket.versioning:
        body["MfaDelete"] = "Disabled"
    return xml_response(xml.render("VersioningConfiguration", body))
