"""The action names Vallum knows, so policies naming anything else are refused.

Kept as data here (iam must not import the S3 protocol package); a unit test checks
that every operation of the router maps to a name in this list.
"""

from __future__ import annotations

S3_ACTIONS: frozenset[str] = frozenset("""
AbortMultipartUpload BypassGovernanceRetention CreateBucket
CreateBucketMetadataTableConfiguration CreateBucketMetadataConfiguration CreateSession
DeleteBucket DeleteBucketMetadataTableConfiguration DeleteBucketMetadataConfiguration
DeleteBucketOwnershipControls DeleteBucketPolicy DeleteBucketWebsite DeleteObject
DeleteObjectTagging DeleteObjectVersion DeleteObjectVersionTagging GetAccelerateConfiguration
GetAnalyticsConfiguration GetBucketAcl GetBucketCORS GetBucketLocation GetBucketLogging
GetBucketMetadataTableConfiguration GetBucketMetadataConfiguration GetBucketNotification
GetBucketObjectLockConfiguration GetBucketOwnershipControls GetBucketPolicy
GetBucketPolicyStatus GetBucketPublicAccessBlock GetBucketRequestPayment GetBucketTagging
GetBucketVersioning GetBucketWebsite GetEncryptionConfiguration
GetIntelligentTieringConfiguration GetInventoryConfiguration GetLifecycleConfiguration
GetMetricsConfiguration GetObject GetObjectAcl GetObjectAttributes GetObjectLegalHold
GetObjectRetention GetObjectTagging GetObjectTorrent GetObjectVersion GetObjectVersionAcl
GetObjectVersionAttributes GetObjectVersionTagging GetObjectVersionTorrent
GetReplicationConfiguration ListAllMyBuckets ListBucket ListBucketMultipartUploads
ListBucketVersions ListMultipartUploadParts PutAccelerateConfiguration PutAnalyticsConfiguration
PutBucketAcl PutBucketCORS PutBucketLogging PutBucketNotification
PutBucketObjectLockConfiguration PutBucketOwnershipControls PutBucketPolicy
PutBucketPublicAccessBlock PutBucketRequestPayment PutBucketTagging PutBucketVersioning
PutBucketWebsite PutEncryptionConfiguration PutIntelligentTieringConfiguration
PutInventoryConfiguration PutLifecycleConfiguration PutMetricsConfiguration PutObject
PutObjectAcl PutObjectLegalHold PutObjectRetention PutObjectTagging PutObjectVersionAcl
PutObjectVersionTagging PutReplicationConfiguration RenameObject RestoreObject
UpdateBucketMetadataAnnotationTableConfiguration UpdateBucketMetadataInventoryTableConfiguration
UpdateBucketMetadataJournalTableConfiguration UpdateObjectEncryption
GetObjectAnnotation ListObjectAnnotations PutObjectAnnotation DeleteObjectAnnotation
GetBucketAbac PutBucketAbac ListAllMyDirectoryBuckets OptionsObject
ListenBucketNotification ListenNotification
""".split())   # the last two: MinIO's event-stream actions (answered 501), so its policies parse

STS_ACTIONS: frozenset[str] = frozenset({"AssumeRole", "GetSessionToken", "GetCallerIdentity",
                                         "TagSession", "AssumeRoleWithWebIdentity",
                                         "AssumeRoleWithLDAPIdentity"})

# IAM actions the admin API checks (account admins act through them).
IAM_ACTIONS: frozenset[str] = frozenset("""
CreateUser DeleteUser GetUser ListUsers CreateGroup DeleteGroup ListGroups AddUserToGroup
RemoveUserFromGroup CreateAccessKey DeleteAccessKey UpdateAccessKey ListAccessKeys CreatePolicy
DeletePolicy GetPolicy ListPolicies AttachUserPolicy DetachUserPolicy AttachGroupPolicy
DetachGroupPolicy AttachRolePolicy DetachRolePolicy PutUserPolicy PutGroupPolicy PutRolePolicy
DeleteUserPolicy DeleteGroupPolicy DeleteRolePolicy CreateRole DeleteRole GetRole ListRoles
GetGroup SimulatePrincipalPolicy PassRole GetOperatorAlerts PutUserPermissionsBoundary
DeleteUserPermissionsBoundary PutRolePermissionsBoundary DeleteRolePermissionsBoundary
CreateOpenIDConnectProvider GetOpenIDConnectProvider ListOpenIDConnectProviders
DeleteOpenIDConnectProvider
""".split())

SERVICES: dict[str, frozenset[str]] = {
    "s3": S3_ACTIONS,
    "sts": STS_ACTIONS | {"AssumeRoleWithCertificate"},   # client certificates (iam/certauth.py)
    "iam": IAM_ACTIONS,
    "s3express": frozenset({"CreateSession", "ListAllMyDirectoryBuckets", "RenameObject"}),
    "s3-object-lambda": frozenset({"WriteGetObjectResponse"}),
    # Vallum's own: relabelling an object to a lower classification (security/downgrade.py).
    # Compute (vallum/compute/api.py): jobs, functions, triggers.
    "vallum": frozenset({"DowngradeLabel", "SubmitJob", "ListJobs", "GetJob", "GetJobLogs",
                         "CancelJob", "CreateFunction", "GetFunction", "ListFunctions",
                         "DeleteFunction", "InvokeFunction", "CreateTrigger", "ListTriggers",
                         "DeleteTrigger", "GetQuota", "PutQuota", "ListRuntimes"}),
}

LOWER: dict[str, frozenset[str]] = {s: frozenset(a.lower() for a in names)
                                    for s, names in SERVICES.items()}


def all_actions() -> list[str]:
    return sorted(f"{s}:{a}" for s, names in SERVICES.items() for a in names)
