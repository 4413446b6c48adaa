"""Encryption: primitives, envelope keys, the encrypted blob store, SSE-C, key rotation, FIPS mode."""
