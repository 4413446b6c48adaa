"""Tamper-evident audit: the hash-chained log, its checkpoints, segments, verification and witnesses."""
