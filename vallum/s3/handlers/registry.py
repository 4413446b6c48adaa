"""Which handler serves each S3 operation, and which IAM action each operation is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from vallum.http import Request, Response
from vallum.s3.handlers import (
    attributes,
    bucket_settings,
    buckets,
    copy,
    cors,
    lifecycle,
    listing,
    lock,
    multidelete,
    multipart,
    notification,
    objects,
    post_object,
    tagging,
    versioning,
    versions,
)
from vallum.s3.handlers import policy as bucket_policy

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
    "PostObject": post_object.post_object,
    "GetObjectAttributes": attributes.get_object_attributes,
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
    "PutBucketPolicy": bucket_policy.put_bucket_policy,
    "GetBucketPolicy": bucket_policy.get_bucket_policy,
    "DeleteBucketPolicy": bucket_policy.delete_bucket_policy,
    "PutPublicAccessBlock": bucket_policy.put_public_access_block,
    "GetPublicAccessBlock": bucket_policy.get_public_access_block,
    "DeletePublicAccessBlock": bucket_policy.delete_public_access_block,
    # data protection
    "PutBucketVersioning": versioning.put_bucket_versioning,
    "GetBucketVersioning": versioning.get_bucket_versioning,
    "ListObjectVersions": versions.list_object_versions,
    "PutObjectLockConfiguration": lock.put_object_lock_configuration,
    "GetObjectLockConfiguration": lock.get_object_lock_configuration,
    "PutObjectRetention": lock.put_object_retention,
    "GetObjectRetention": lock.get_object_retention,
    "PutObjectLegalHold": lock.put_object_legal_hold,
    "GetObjectLegalHold": lock.get_object_legal_hold,
    "PutObjectTagging": tagging.put_object_tagging,
    "GetObjectTagging": tagging.get_object_tagging,
    "DeleteObjectTagging": tagging.delete_object_tagging,
    "PutBucketTagging": tagging.put_bucket_tagging,
    "GetBucketTagging": tagging.get_bucket_tagging,
    "DeleteBucketTagging": tagging.delete_bucket_tagging,
    "PutBucketLifecycleConfiguration": lifecycle.put_bucket_lifecycle,
    "GetBucketLifecycleConfiguration": lifecycle.get_bucket_lifecycle,
    "DeleteBucketLifecycle": lifecycle.delete_bucket_lifecycle,
    "PutBucketCors": cors.put_bucket_cors,
    "GetBucketCors": cors.get_bucket_cors,
    "DeleteBucketCors": cors.delete_bucket_cors,
    "OptionsObject": cors.preflight,
    # bucket settings
    "GetBucketAcl": bucket_settings.get_bucket_acl,
    "PutBucketAcl": bucket_settings.put_bucket_acl,
    "GetObjectAcl": bucket_settings.get_object_acl,
    "PutObjectAcl": bucket_settings.put_object_acl,
    "PutBucketEncryption": bucket_settings.put_bucket_encryption,
    "GetBucketEncryption": bucket_settings.get_bucket_encryption,
    "DeleteBucketEncryption": bucket_settings.delete_bucket_encryption,
    "PutBucketOwnershipControls": bucket_settings.put_bucket_ownership_controls,
    "GetBucketOwnershipControls": bucket_settings.get_bucket_ownership_controls,
    "DeleteBucketOwnershipControls": bucket_settings.delete_bucket_ownership_controls,
    # compute
    "PutBucketNotificationConfiguration": notification.put_bucket_notification,
    "GetBucketNotificationConfiguration": notification.get_bucket_notification,
}

# Operations whose handler authenticates and authorizes the caller itself: a PostObject
# form carries its credentials in its fields, read from the body (post_object.py).
SELF_AUTHORIZED = frozenset({"PostObject"})

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
    # Sub-resource families: AWS names one Get and one Put action (Delete uses Put).
    "GetBucketAccelerateConfiguration": "s3:GetAccelerateConfiguration",
    "PutBucketAccelerateConfiguration": "s3:PutAccelerateConfiguration",
    "GetBucketAnalyticsConfiguration": "s3:GetAnalyticsConfiguration",
    "ListBucketAnalyticsConfigurations": "s3:GetAnalyticsConfiguration",
    "PutBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "DeleteBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "GetBucketCors": "s3:GetBucketCORS",
    "PutBucketCors": "s3:PutBucketCORS",
    "DeleteBucketCors": "s3:PutBucketCORS",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetBucketIntelligentTieringConfiguration": "s3:GetIntelligentTieringConfiguration",
    "ListBucketIntelligentTieringConfigurations": "s3:GetIntelligentTieringConfiguration",
    "PutBucketIntelligentTieringConfiguration": "s3:PutIntelligentTieringConfiguration",
    "DeleteBucketIntelligentTieringConfiguration": "s3:PutIntelligentTieringConfiguration",
    "GetBucketInventoryConfiguration": "s3:GetInventoryConfiguration",
    "ListBucketInventoryConfigurations": "s3:GetInventoryConfiguration",
    "PutBucketInventoryConfiguration": "s3:PutInventoryConfiguration",
    "DeleteBucketInventoryConfiguration": "s3:PutInventoryConfiguration",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "GetBucketMetricsConfiguration": "s3:GetMetricsConfiguration",
    "ListBucketMetricsConfigurations": "s3:GetMetricsConfiguration",
    "PutBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "DeleteBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
    "DeleteBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketReplication": "s3:GetReplicationConfiguration",
    "PutBucketReplication": "s3:PutReplicationConfiguration",
    "DeleteBucketReplication": "s3:PutReplicationConfiguration",
    "DeleteBucketTagging": "s3:PutBucketTagging",
    "ListObjectVersions": "s3:ListBucketVersions",
    "SelectObjectContent": "s3:GetObject",
    "PostObject": "s3:PutObject",
    "ListDirectoryBuckets": "s3express:ListAllMyDirectoryBuckets",
    "CreateSession": "s3express:CreateSession",
    "WriteGetObjectResponse": "s3-object-lambda:WriteGetObjectResponse",
    "GetBucketLifecycle": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycle": "s3:PutLifecycleConfiguration",
}


def action_of(operation: str) -> str:
    return _ACTIONS.get(operation, "s3:" + operation)


def resource_arn(bucket: str | None, key: str | None) -> str:
    if bucket is None:
        return "arn:aws:s3:::*"
    if key is None:
        return f"arn:aws:s3:::{bucket}"
    return f"arn:aws:s3:::{bucket}/{key}"
