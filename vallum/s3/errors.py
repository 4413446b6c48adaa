"""S3 wire errors as data: one class per S3 error code.

The class name is the S3 ``Code`` element; ``status`` is the HTTP status and
``message`` the default human text (AWS's wording where known). Raise an
instance anywhere in protocol or handler code; the server renders it once.
"""

from __future__ import annotations


class S3Error(Exception):
    """Base of every error that is answered as an S3 XML error document."""

    status: int = 500
    message: str = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, *, resource: str | None = None,
                 headers: dict[str, str] | None = None, **fields: str) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.resource = resource
        self.headers = headers or {}
        # Extra XML elements AWS adds for some codes (e.g. BucketName, Key, ArgumentName).
        self.fields = {k: str(v) for k, v in fields.items()}

    @property
    def code(self) -> str:
        return type(self).__name__


def _error(name: str, status: int, message: str) -> type[S3Error]:
    return type(name, (S3Error,), {"status": status, "message": message, "__doc__": message})


# (code, status, message) for every code Vallum answers with.
_CODES: list[tuple[str, int, str]] = [
    ("AccessDenied", 403, "Access Denied"),
    ("AccountProblem", 403, "There is a problem with your account that prevents the operation from completing successfully."),
    ("AuthorizationHeaderMalformed", 400, "The authorization header is malformed."),
    ("AuthorizationQueryParametersError", 400, "Error parsing the X-Amz-Credential parameter."),
    ("BadDigest", 400, "The Content-MD5 you specified did not match what we received."),
    ("BucketAlreadyExists", 409, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."),
    ("BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket succeeded and you already own it."),
    ("BucketNotEmpty", 409, "The bucket you tried to delete is not empty"),
    ("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size"),
    ("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."),
    ("ExpiredToken", 400, "The provided token has expired."),
    ("IllegalLocationConstraintException", 400, "The specified location-constraint is not valid"),
    ("IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header."),
    ("InternalError", 500, "We encountered an internal error. Please try again."),
    ("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."),
    ("InvalidArgument", 400, "Invalid Argument"),
    ("InvalidBucketName", 400, "The specified bucket is not valid."),
    ("InvalidBucketState", 409, "The request is not valid with the current state of the bucket."),
    ("InvalidDigest", 400, "The Content-MD5 you specified is not valid."),
    ("InvalidEncryptionAlgorithmError", 400, "The encryption request you specified is not valid."),
    ("InvalidLocationConstraint", 400, "The specified location constraint is not valid."),
    ("InvalidObjectState", 403, "The operation is not valid for the current state of the object."),
    ("InvalidPart", 400, "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."),
    ("InvalidPartOrder", 400, "The list of parts was not in ascending order. Parts must be ordered by part number."),
    ("InvalidRange", 416, "The requested range is not satisfiable"),
    ("InvalidPartNumber", 416, "The requested partnumber is not satisfiable"),
    ("InvalidRequest", 400, "Invalid Request"),
    ("InvalidStorageClass", 400, "The storage class you specified is not valid"),
    ("InvalidTag", 400, "The tag provided was not a valid tag."),
    ("InvalidToken", 400, "The provided token is malformed or otherwise invalid."),
    ("InvalidURI", 400, "Couldn't parse the specified URI."),
    ("KeyTooLongError", 400, "Your key is too long"),
    ("MalformedPolicy", 400, "Policy has invalid resource"),
    ("MalformedXML", 400, "The XML you provided was not well-formed or did not validate against our published schema"),
    ("MaxMessageLengthExceeded", 400, "Your request was too big."),
    ("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size."),
    ("MethodNotAllowed", 405, "The specified method is not allowed against this resource."),
    ("MissingContentLength", 411, "You must provide the Content-Length HTTP header."),
    ("MissingRequestBodyError", 400, "Request Body is empty"),
    ("MissingSecurityHeader", 400, "Your request is missing a required header."),
    ("NoSuchBucket", 404, "The specified bucket does not exist"),
    ("NoSuchBucketPolicy", 404, "The bucket policy does not exist"),
    ("NoSuchCORSConfiguration", 404, "The CORS configuration does not exist"),
    ("NoSuchKey", 404, "The specified key does not exist."),
    ("NoSuchLifecycleConfiguration", 404, "The lifecycle configuration does not exist"),
    ("NoSuchTagSet", 404, "The TagSet does not exist"),
    ("NoSuchUpload", 404, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."),
    ("NoSuchVersion", 404, "The specified version does not exist."),
    ("NotImplemented", 501, "A header you provided implies functionality that is not implemented."),
    ("NotModified", 304, "Not Modified"),
    ("ObjectLockConfigurationNotFoundError", 404, "Object Lock configuration does not exist for this bucket"),
    ("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold"),
    ("ConditionalRequestConflict", 409, "A conflicting operation occurred. If using PutObject you can retry the request. If using CompleteMultipartUpload you might need to upload the object again."),
    ("RequestTimeTooSkewed", 403, "The difference between the request time and the current time is too large."),
    ("RequestTimeout", 400, "Your socket connection to the server was not read from or written to within the timeout period."),
    ("ServiceUnavailable", 503, "Please reduce your request rate."),
    ("SignatureDoesNotMatch", 403, "The request signature we calculated does not match the signature you provided. Check your key and signing method."),
    ("SlowDown", 503, "Please reduce your request rate."),
    # MinIO's code for a full backend (its clients know it); 507 is not retried by SDKs.
    ("XMinioStorageFull", 507, "Storage has reached its reserved free-space threshold. Delete objects to free space, then retry."),
    ("TooManyBuckets", 400, "You have attempted to create more buckets than allowed"),
    ("UnexpectedContent", 400, "This request does not support content"),
    ("UnresolvableGrantByEmailAddress", 400, "The email address you provided does not match any account on record."),
    ("XAmzContentSHA256Mismatch", 400, "The provided 'x-amz-content-sha256' header does not match what was computed."),
    ("XAmzContentChecksumMismatch", 400, "The provided 'x-amz-checksum' header does not match what was computed."),
    ("InvalidChunkSizeError", 400, "Only the last chunk is allowed to have a size less than 8192 bytes"),
    ("IncompleteSignature", 400, "The request signature does not conform to AWS standards."),
    ("MissingAuthenticationToken", 403, "Request is missing Authentication Token"),
    ("UnknownService", 400, "The requested AWS service is not offered by this endpoint."),
    # Vallum security (vallum/security): an upload whose content carries a classification
    # marking above its label or the bucket's ceiling; refused and alerted.
    ("SpillDetected", 403, "The uploaded content carries a classification marking above the object's label or the bucket's label ceiling; it was refused and reported."),
    # A write that would take a bucket or account past its storage quota (Ceph RGW's code).
    ("QuotaExceeded", 403, "The quota is exceeded."),
    ("AccessControlListNotSupported", 400, "The bucket does not allow ACLs"),
    ("AccessForbidden", 403, "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."),
    ("BadRequest", 400, "Bad Request"),
    ("CORSResponse", 403, "CORS is not enabled for this bucket."),
    ("NoSuchObjectLockConfiguration", 404, "The specified object does not have a ObjectLock configuration"),
    ("OwnershipControlsNotFoundError", 404, "The bucket ownership controls were not found"),
    ("InvalidBucketAclWithObjectOwnership", 400, "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"),
    ("ServerSideEncryptionConfigurationNotFoundError", 404, "The server side encryption configuration was not found"),
    # PostObject (browser form uploads).
    ("InvalidPolicyDocument", 400, "The content of the form does not meet the conditions specified in the policy document."),
    ("MalformedPOSTRequest", 400, "The body of your POST request is not well-formed multipart/form-data."),
    ("MaxPostPreDataLengthExceededError", 400, "Your POST request fields preceding the upload file were too large."),
]

_by_code: dict[str, type[S3Error]] = {}
for _code, _status, _message in _CODES:
    _by_code[_code] = _error(_code, _status, _message)
    globals()[_code] = _by_code[_code]


def by_code(code: str) -> type[S3Error]:
    """The error class for an S3 code (used by table-driven code and tests)."""
    return _by_code[code]


def all_codes() -> list[str]:
    return sorted(_by_code)


# Static names for linters and readers (the classes are built from the table above).
AccessDenied = _by_code["AccessDenied"]
AuthorizationHeaderMalformed = _by_code["AuthorizationHeaderMalformed"]
AuthorizationQueryParametersError = _by_code["AuthorizationQueryParametersError"]
BadDigest = _by_code["BadDigest"]
BucketAlreadyExists = _by_code["BucketAlreadyExists"]
BucketAlreadyOwnedByYou = _by_code["BucketAlreadyOwnedByYou"]
BucketNotEmpty = _by_code["BucketNotEmpty"]
ConditionalRequestConflict = _by_code["ConditionalRequestConflict"]
EntityTooLarge = _by_code["EntityTooLarge"]
EntityTooSmall = _by_code["EntityTooSmall"]
ExpiredToken = _by_code["ExpiredToken"]
IllegalLocationConstraintException = _by_code["IllegalLocationConstraintException"]
IncompleteBody = _by_code["IncompleteBody"]
IncompleteSignature = _by_code["IncompleteSignature"]
InternalError = _by_code["InternalError"]
InvalidAccessKeyId = _by_code["InvalidAccessKeyId"]
InvalidArgument = _by_code["InvalidArgument"]
InvalidBucketName = _by_code["InvalidBucketName"]
InvalidChunkSizeError = _by_code["InvalidChunkSizeError"]
InvalidDigest = _by_code["InvalidDigest"]
InvalidLocationConstraint = _by_code["InvalidLocationConstraint"]
InvalidPart = _by_code["InvalidPart"]
InvalidPartOrder = _by_code["InvalidPartOrder"]
InvalidRange = _by_code["InvalidRange"]
InvalidRequest = _by_code["InvalidRequest"]
InvalidStorageClass = _by_code["InvalidStorageClass"]
InvalidToken = _by_code["InvalidToken"]
InvalidURI = _by_code["InvalidURI"]
KeyTooLongError = _by_code["KeyTooLongError"]
MalformedPolicy = _by_code["MalformedPolicy"]
MalformedXML = _by_code["MalformedXML"]
MaxMessageLengthExceeded = _by_code["MaxMessageLengthExceeded"]
MetadataTooLarge = _by_code["MetadataTooLarge"]
MethodNotAllowed = _by_code["MethodNotAllowed"]
MissingContentLength = _by_code["MissingContentLength"]
MissingRequestBodyError = _by_code["MissingRequestBodyError"]
MissingSecurityHeader = _by_code["MissingSecurityHeader"]
NoSuchBucket = _by_code["NoSuchBucket"]
NoSuchBucketPolicy = _by_code["NoSuchBucketPolicy"]
NoSuchKey = _by_code["NoSuchKey"]
NoSuchUpload = _by_code["NoSuchUpload"]
NoSuchVersion = _by_code["NoSuchVersion"]
NotImplemented_ = _by_code["NotImplemented"]
NotModified = _by_code["NotModified"]
PreconditionFailed = _by_code["PreconditionFailed"]
RequestTimeTooSkewed = _by_code["RequestTimeTooSkewed"]
RequestTimeout = _by_code["RequestTimeout"]
SignatureDoesNotMatch = _by_code["SignatureDoesNotMatch"]
SlowDown = _by_code["SlowDown"]
XMinioStorageFull = _by_code["XMinioStorageFull"]
UnexpectedContent = _by_code["UnexpectedContent"]
UnknownService = _by_code["UnknownService"]
XAmzContentChecksumMismatch = _by_code["XAmzContentChecksumMismatch"]
XAmzContentSHA256Mismatch = _by_code["XAmzContentSHA256Mismatch"]
InvalidPartNumber = _by_code["InvalidPartNumber"]
SpillDetected = _by_code["SpillDetected"]
QuotaExceeded = _by_code["QuotaExceeded"]
# Data protection and bucket settings.
AccessControlListNotSupported = _by_code["AccessControlListNotSupported"]
AccessForbidden = _by_code["AccessForbidden"]
BadRequest = _by_code["BadRequest"]
CORSResponse = _by_code["CORSResponse"]
InvalidBucketState = _by_code["InvalidBucketState"]
InvalidTag = _by_code["InvalidTag"]
NoSuchCORSConfiguration = _by_code["NoSuchCORSConfiguration"]
NoSuchLifecycleConfiguration = _by_code["NoSuchLifecycleConfiguration"]
NoSuchObjectLockConfiguration = _by_code["NoSuchObjectLockConfiguration"]
NoSuchTagSet = _by_code["NoSuchTagSet"]
ObjectLockConfigurationNotFoundError = _by_code["ObjectLockConfigurationNotFoundError"]
OwnershipControlsNotFoundError = _by_code["OwnershipControlsNotFoundError"]
InvalidBucketAclWithObjectOwnership = _by_code["InvalidBucketAclWithObjectOwnership"]
ServerSideEncryptionConfigurationNotFoundError = _by_code["ServerSideEncryptionConfigurationNotFoundError"]
InvalidPolicyDocument = _by_code["InvalidPolicyDocument"]
MalformedPOSTRequest = _by_code["MalformedPOSTRequest"]
MaxPostPreDataLengthExceededError = _by_code["MaxPostPreDataLengthExceededError"]
