"""Compute on PostgreSQL through the real server: `vallum serve --workers 2 --meta
postgresql://…` (two gateway processes, each with its own scheduler, claiming from one queue
in the database) runs an array job's tasks exactly once within its parallelism, and deleting
a function named by a bucket's notification configuration edits that document where the
buckets are. (VALLUM_TEST_META=postgresql runs test_jobs, test_triggers and test_functions
on PostgreSQL too.)"""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.support.compute import client_of, put_many, read
from tests.support.postgres import fresh_url, postgres  # noqa: F401 - fixture
from tests.support.server import start_server, stop_server

COUNT = """
import os
name = os.listdir(os.environ["VALLUM_INPUT"])[0]
data = open(os.path.join(os.environ["VALLUM_INPUT"], name)).read()
open(os.path.join(os.environ["VALLUM_OUTPUT"], "n"), "w").write(str(len(data)))
"""


@pytest.fixture(scope="module")
def pg2(postgres, tmp_path_factory):  # noqa: F811 - the fixture imported above
    url = fresh_url()
    srv = start_server(tmp_path_factory.mktemp("pgcompute") / "data", "--workers", "2",
                       env={"VALLUM_META_URL": url})
    yield srv, url
    stop_server(srv)


def test_array_tasks_run_once_across_two_gateway_processes(pg2):
    srv, url = pg2
    s3, api = srv.client(), client_of(srv)
    s3.create_bucket(Bucket="arr")
    put_many(s3, "arr", {f"in/{i:03d}": b"x" * (i + 1) for i in range(120)})
    t0 = time.monotonic()
    job = api.submit({"runtime": "python", "name": "count", "array": "s3://arr/in/",
                      "parallelism": 6, "output": "s3://arr/out/", "code": COUNT})
    done = api.wait(job["id"], timeout=240)
    elapsed = time.monotonic() - t0
    assert done["state"] == "SUCCEEDED", [t for t in api.tasks(job["id"])
                                          if t["state"] != "SUCCEEDED"][:3]
    tasks = api.tasks(job["id"])
    assert len(tasks) == 120 and {t["attempts"] for t in tasks} == {1}
    spans = sorted([(t["started"], 1) for t in tasks] + [(t["finished"], -1) for t in tasks],
                   key=lambda s: (s[0], s[1]))
    peak = cur = 0
    for _, step in spans:
        cur += step
        peak = max(peak, cur)
    assert peak <= 6                                      # parallelism held across processes
    for i in range(0, 120, 13):
        assert read(s3, "arr", f"out/{i:03d}/n") == str(i + 1).encode()
    with psycopg.connect(url) as conn:                    # the queue is PostgreSQL's
        rows = conn.execute("SELECT state, attempts, count(*) FROM compute_tasks "
                            "GROUP BY state, attempts").fetchall()
    assert rows == [("SUCCEEDED", 1, 120)]
    print(f"\n120-task array job on PostgreSQL, 2 gateway processes: {elapsed:.1f}s")


def test_deleting_a_function_edits_the_notification_document_in_postgres(pg2):
    srv, url = pg2
    s3, api = srv.client(), client_of(srv)
    s3.create_bucket(Bucket="notes")
    api.create_function("gone", {"handler": "main.handler",
                                 "code": "def handler(event, context):\n    return 1\n"})
    api.create_function("kept", {"handler": "main.handler",
                                 "code": "def handler(event, context):\n    return 2\n"})
    s3.put_bucket_notification_configuration(Bucket="notes", NotificationConfiguration={
        "LambdaFunctionConfigurations": [
            {"Id": "a", "LambdaFunctionArn": "gone", "Events": ["s3:ObjectCreated:*"]},
            {"Id": "b", "LambdaFunctionArn": "kept", "Events": ["s3:ObjectRemoved:*"]}]})
    out = api.delete_function("gone")
    assert out == {"deleted": "gone", "triggers_deleted": ["n-notes-a"]}
    (left,) = s3.get_bucket_notification_configuration(Bucket="notes")["LambdaFunctionConfigurations"]
    assert left["Id"] == "b" and left["LambdaFunctionArn"] == "kept"
    with psycopg.connect(url) as conn:
        config = conn.execute("SELECT config FROM buckets WHERE name='notes'").fetchone()[0]
        trig = conn.execute("SELECT id FROM compute_triggers ORDER BY id").fetchall()
    assert "gone" not in config and trig == [("n-notes-b",)]
    api.delete_function("kept")
