"""Prometheus metrics of the gateway, served at /-/metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry()
REQUESTS = Counter("vallum_s3_requests_total", "S3 requests by operation and HTTP status",
                   ["operation", "status"], registry=REGISTRY)
LATENCY = Histogram("vallum_s3_request_seconds", "S3 request latency by operation", ["operation"],
                    registry=REGISTRY,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))


# (operation, status) -> (request counter child, latency child): ``labels()`` builds a
# key tuple, takes a lock and looks the child up on every call; the set is small.
_CHILDREN: dict[tuple[str, int], tuple[Any, Any]] = {}


def observe(operation: str, status: int, seconds: float) -> None:
    children = _CHILDREN.get((operation, status))
    if children is None:
        children = _CHILDREN[(operation, status)] = (REQUESTS.labels(operation, str(status)),
                                                     LATENCY.labels(operation))
    children[0].inc()
    children[1].observe(seconds)


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
