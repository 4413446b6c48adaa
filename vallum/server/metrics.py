"""Prometheus metrics of the gateway, served at /-/metrics."""

from __future__ import annotations

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


def observe(operation: str, status: int, seconds: float) -> None:
    REQUESTS.labels(operation, str(status)).inc()
    LATENCY.labels(operation).observe(seconds)


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
