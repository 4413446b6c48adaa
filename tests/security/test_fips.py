"""`vallum serve --fips`: Signature Version 2 is refused before any HMAC-SHA1 runs, whatever
the key or signature; SigV4 works; the crypto module in use is reported at start."""

from __future__ import annotations

import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import server_log, start_server, stop_server
from vallum.security.crypto.fips import is_sigv2


@pytest.fixture(scope="module")
def fips_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("fips") / "data", "--fips")
    try:
        srv.client().create_bucket(Bucket="fips")
        srv.client().put_object(Bucket="fips", Key="k", Body=b"v")
        yield srv
    finally:
        stop_server(srv)


def v2_client(srv, key: str, secret: str):
    return boto3.client("s3", endpoint_url=srv.endpoint, aws_access_key_id=key,
                        aws_secret_access_key=secret, region_name=srv.region,
                        config=Config(signature_version="s3", s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


@pytest.mark.parametrize("who", ["root", "wrong-secret", "unknown-key"])
def test_sigv2_header_is_refused_the_same_for_every_key(fips_server, who):
    """Same answer for a valid, a wrong and an unknown credential: nothing is verified."""
    key, secret = {"root": (fips_server.access_key, fips_server.secret_key),
                   "wrong-secret": (fips_server.access_key, "wrong"),
                   "unknown-key": ("NOSUCHKEY", "x")}[who]
    with pytest.raises(ClientError) as err:
        v2_client(fips_server, key, secret).get_object(Bucket="fips", Key="k")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    assert "AWS4-HMAC-SHA256" in err.value.response["Error"]["Message"]


def test_sigv2_presigned_url_is_refused(fips_server):
    url = v2_client(fips_server, fips_server.access_key, fips_server.secret_key).generate_presigned_url(
        "get_object", Params={"Bucket": "fips", "Key": "k"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, timeout=10)
    assert err.value.code == 400 and b"<Code>InvalidRequest</Code>" in err.value.read()


def test_sigv4_still_works_and_the_module_is_reported(fips_server):
    s3 = fips_server.client()
    assert s3.get_object(Bucket="fips", Key="k")["Body"].read() == b"v"
    v4 = fips_server.client(signature_version="s3v4")     # boto3 presigns with V2 by default
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "fips", "Key": "k"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == b"v"
    banner = server_log(fips_server.data_dir).read_text()
    assert "FIPS mode:" in banner and "SigV2 refused" in banner
    assert "hashlib (SigV4, HMAC): OpenSSL" in banner and "FIPS provider" in banner


@pytest.mark.parametrize("headers, query, want", [
    ([("authorization", "AWS AKID:c2ln")], "", True),
    ([("authorization", "AWS4-HMAC-SHA256 Credential=a/b/c/s3/aws4_request, SignedHeaders=host, Signature=0")], "", False),
    ([], "AWSAccessKeyId=AKID&Expires=1&Signature=x", True),
    ([], "Signature=", True),
    ([], "X-Amz-Signature=abc&X-Amz-Credential=a", False),
    ([], "prefix=Signature&delimiter=AWSAccessKeyId", False),
], ids=["v2-header", "v4-header", "v2-presigned", "v2-bare-signature", "v4-presigned", "names-as-values"])
def test_is_sigv2(headers, query, want):
    assert is_sigv2(headers, query) is want
