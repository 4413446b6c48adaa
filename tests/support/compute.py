"""Helpers shared by the compute functional tests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from vallum.client import Client


def client_of(server) -> Client:
    return Client(server.endpoint, server.access_key, server.secret_key, region=server.region)


def put_many(s3, bucket: str, items: dict[str, bytes], threads: int = 16) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), items.items()))


def read(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
