"""The functional tests' fixtures (tests/support/fixtures.py): the real server and clients."""

from tests.support.fixtures import bucket, c3, clocked, root, s3, server, tenant  # noqa: F401
from tests.support.postgres import postgres  # noqa: F401 - VALLUM_TEST_META=postgresql
