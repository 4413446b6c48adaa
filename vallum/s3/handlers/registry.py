"""Which handler serves each S3 operation, and which IAM action each operation is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from vallum.s3.handlers import buckets, copy, listing, multidelete, multipart, objects
from vallum.server.http import Request, Response

Handler = Callable[[Request], Awaitable[Response]]

HANDLERS: dict[str, Handler] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "HeadBucket": buckets.head_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "PutObject": objects.put_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "DeleteObject": objects.delete_object,
    "CopyObject": copy.copy_object,
    "DeleteObjects": multidelete.delete_objects,
    "ListObjects": listing.list_objects_v1,
    "ListObjectsV2": listing.list_objects_v2,
    "CreateMultipartUpload": multipart.create_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_upload,
    "AbortMultipartUpload": multipart.abort_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_uploads,
}

# Operations whose IAM action is not "s3:" + the operation name.
_ACTIONS = {
    "ListBuckets": "s3:ListAllMyBuckets",
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "CopyObject": "s3:PutObject",
    "DeleteObjects": "s3:DeleteObject",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "ListParts": "s3:ListMultipartUploadParts",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketLocation": "s3:GetBucketLocation",
}


def action_of(operation: str) -> str:
    return _ACTIONS.get(operation, "s3:" + operation)


def resource_arn(bucket: str | None, key: str | None) -> str:
    if bucket is None:
        return "arn:aws:s3:::*"
    if key is None:
        return f"arn:aws:s3:::{bucket}"
    return f"arn:aws:s3:::{bucket}/{key}"
