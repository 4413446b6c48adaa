"""Fixtures that run the real `vallum serve` process on a free loopback port.

Set VALLUM_TEST_ENDPOINT (plus VALLUM_TEST_ACCESS_KEY / VALLUM_TEST_SECRET_KEY)
to run the same tests against another S3 server instead. A test module that imports
``server`` from here gets a server of its own (the fixture is defined again in it).
Set VALLUM_TEST_META=postgresql to run the session's server with ``--meta`` on the tests'
own PostgreSQL (tests/support/postgres.py): object metadata and compute stores there.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.support.server import REGION, Server, empty_and_delete, start_server, stop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory, request):
    external = os.environ.get("VALLUM_TEST_ENDPOINT")
    if external:
        yield Server(external, os.environ.get("VALLUM_TEST_ACCESS_KEY", "test"),
                     os.environ.get("VALLUM_TEST_SECRET_KEY", "test"), REGION, None, None)
        return
    srv = start_server(tmp_path_factory.mktemp("vallum") / "data", env=_meta_env(request))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def s3(server):
    return server.client()


@pytest.fixture
def bucket(s3):
    name = "t-" + uuid.uuid4().hex[:20]
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete(s3, name)


@pytest.fixture(scope="module")
def root(server):
    """An admin client of the platform root (IAM tests)."""
    from vallum.cli.admin import AdminClient  # the IAM admin client: only IAM tests need it
    return AdminClient(server.endpoint, server.access_key, server.secret_key, server.region)


@pytest.fixture(scope="module")
def tenant(server, root):
    """A fresh account with its admin key (IAM tests)."""
    from tests.support.iam import Tenant
    return Tenant(server, root)


def _meta_env(request) -> dict[str, str] | None:
    """VALLUM_TEST_META=postgresql: the server's metadata on a fresh PostgreSQL schema."""
    if os.environ.get("VALLUM_TEST_META") != "postgresql":
        return None
    from tests.support.postgres import fresh_url

    request.getfixturevalue("postgres")          # stopped after the servers using it
    return {"VALLUM_META_URL": fresh_url()}


@pytest.fixture(scope="module")
def clocked(tmp_path_factory, request):
    """A server of its own whose clock a test can advance (`vallum serve --test-clock`)."""
    srv = start_server(tmp_path_factory.mktemp("clocked") / "data", "--test-clock",
                       env=_meta_env(request))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def c3(clocked):
    return clocked.client()
