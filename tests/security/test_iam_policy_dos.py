"""One policy cannot stall the gateway: a bucket policy full of wildcards, an anonymous GET.

With globs compiled to backtracking regexes, 8 stars and one anonymous request took
seconds (x7 per added star) while health checks waited. Real server, plain HTTP.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from tests.support import fixtures as functional

server, s3, bucket = functional.server, functional.s3, functional.bucket


def test_a_many_star_bucket_policy_answers_at_once(server, s3, bucket):
    evil = f"arn:aws:s3:::{bucket}/" + "*a" * 30 + "*c*b"      # start and end match, "c" not
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": f"S{i}", "Effect": "Allow", "Principal": "*",
                       "Action": "s3:GetObject", "Resource": [evil, evil + "?"]}
                      for i in range(20)]}))
    url = f"{server.endpoint}/{bucket}/{'a' * 400}b"
    t0 = time.perf_counter()
    try:
        urllib.request.urlopen(url, timeout=30)      # noqa: S310 - loopback test server
        status = 200
    except urllib.error.HTTPError as exc:
        status = exc.code
    elapsed = time.perf_counter() - t0
    assert status == 403                            # no statement matches: default deny
    assert elapsed < 1.0, f"anonymous GET took {elapsed:.2f} s"
