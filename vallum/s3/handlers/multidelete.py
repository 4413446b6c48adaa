"""DeleteObjects: many keys (and versions) in one request, each reported on its own.

Each key is authorized as a DeleteObject naming it alone would be (the gate skips the
request-level check, iam/gate.PER_OBJECT): s3:DeleteObject, or s3:DeleteObjectVersion
when a VersionId is given, on that object's ARN with its condition keys; then the same
MAC, object-lock and governance-bypass checks as the single delete. A refused key is
an AccessDenied entry in the result, as on AWS. An object's ETag, LastModifiedTime
and Size make its delete conditional (objects.delete_guard): a mismatch is a
PreconditionFailed entry, an ETag on a missing key a NoSuchKey one."""

from __future__ import annotations

from dataclasses import dataclass

from vallum.compute import object_events as events
from vallum.http import Request, Response, xml_response
from vallum.iam import gate
from vallum.meta.records import NULL_VERSION
from vallum.s3 import errors, xml
from vallum.s3.conditions import DeleteConditions, delete_conditions
from vallum.s3.handlers import lock
from vallum.s3.handlers.common import (
    check_body_digests,
    check_version_id,
    get_bucket,
    new_version_id,
)
from vallum.s3.handlers.objects import add_delete_marker, delete_guard
from vallum.s3.names import validate_key

MAX_KEYS = 1000


def _check_digests(request: Request, data: bytes) -> None:
    check_body_digests(request, data)


@dataclass(frozen=True)
class Target:
    """One <Object> of the request: its key, version and conditional-delete elements."""

    key: str
    version_id: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    size: str | None = None

    def conditions(self) -> DeleteConditions | None:
        """Parsed here, per object: a malformed one fails this object alone."""
        return delete_conditions(self.etag, self.last_modified, self.size, in_xml=True)


def parse_delete(data: bytes) -> tuple[bool, list[Target]]:
    doc = xml.parse(data, "Delete")
    xml.only_known(doc, {"Object", "Quiet"})
    quiet = (xml.text(doc, "Quiet", "false") or "").strip().lower() == "true"
    objects = []
    for obj in xml.children(doc, "Object"):
        key = xml.text(obj, "Key")
        if key is None:
            raise errors.MalformedXML()
        objects.append(Target(key, xml.text(obj, "VersionId"), xml.text(obj, "ETag"),
                              xml.text(obj, "LastModifiedTime"), xml.text(obj, "Size")))
    if not objects or len(objects) > MAX_KEYS:
        raise errors.MalformedXML()
    return quiet, objects


async def delete_objects(request: Request) -> Response:
    services = request.services
    bucket = await get_bucket(request)
    data = await request.body.read()
    _check_digests(request, data)
    quiet, objects = parse_delete(data)
    deleted: list[dict] = []
    failed: list[dict] = []
    refused = 0
    for target in objects:
        key, version_id = target.key, target.version_id
        try:
            validate_key(key)
            check_version_id(version_id)
            try:
                await gate.authorize_object(request, "s3:DeleteObject", key, version_id)
            except errors.AccessDenied:
                refused += 1
                raise
            guard = await delete_guard(request, bucket, key, version_id, target.conditions())
            if version_id is not None or bucket.versioning != "Enabled":
                suspended_marker = bucket.versioning == "Suspended" and version_id is None
                if guard is not None and suspended_marker:   # as DeleteObject: the latest
                    guard(await services.meta.get_object(bucket.name, key))
                    guard = None
                entry: dict = {"Key": key, "VersionId": version_id}
                try:
                    # MAC: a version above the caller's level is left alone, answered as missing.
                    removed, obsolete = await lock.guarded_delete_version(
                        request, bucket, key, version_id if version_id is not None else NULL_VERSION,
                        hidden_as_missing=not suspended_marker, named=version_id is not None,
                        condition=guard)
                except lock.HiddenVersion:    # a null marker would replace it: answer as added
                    removed, obsolete = None, []
                else:
                    if suspended_marker:
                        marker = await add_delete_marker(request, bucket, key, NULL_VERSION)
                        await events.object_event(request, events.REMOVED_MARKER, marker)
                await services.discard_blobs(obsolete)
                if removed is not None:
                    await events.object_event(request, events.REMOVED_DELETE, removed)
                if removed is not None and removed.delete_marker:
                    entry.update(DeleteMarker=True, DeleteMarkerVersionId=removed.version_id)
                elif suspended_marker:
                    entry.update(DeleteMarker=True, DeleteMarkerVersionId=NULL_VERSION)
            else:
                marker = await add_delete_marker(request, bucket, key, new_version_id(bucket),
                                                 precondition=guard)
                await events.object_event(request, events.REMOVED_MARKER, marker)
                entry = {"Key": key, "DeleteMarker": True, "DeleteMarkerVersionId": marker.version_id}
            if not quiet:
                deleted.append(entry)
        except errors.S3Error as err:
            failed.append({"Key": key, "VersionId": version_id, "Code": err.code, "Message": err.message})
    if refused:
        request.decision_reason = f"DeleteObjects: {refused} of {len(objects)} object(s) refused by policy"
    body = [("Deleted", deleted), ("Error", failed)]
    return xml_response(xml.render("DeleteResult", body))



