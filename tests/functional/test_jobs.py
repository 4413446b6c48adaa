"""Jobs through the real server: runtimes, staging, outputs, logs, retries, dependencies,
array jobs, limits, cancel, idempotency and refusals at submit."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.support.compute import client_of, put_many, read
from vallum.client import VallumError

WORDCOUNT = """
import os
name = os.listdir(os.environ["VALLUM_INPUT"])[0]
words = len(open(os.path.join(os.environ["VALLUM_INPUT"], name)).read().split())
open(os.path.join(os.environ["VALLUM_OUTPUT"], "count"), "w").write(str(words))
"""


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def test_python_job_stages_inputs_and_uploads_outputs_and_log(api, s3, bucket):
    s3.put_object(Bucket=bucket, Key="in/a.txt", Body=b"one two three")
    s3.put_object(Bucket=bucket, Key="in/sub/b.txt", Body=b"four five")
    job = api.submit({"runtime": "python", "name": "stage", "inputs": [f"s3://{bucket}/in/"],
                      "output": f"s3://{bucket}/out/", "env": {"GREETING": "hi"},
                      "code": "import os\n"
                              "inp = os.environ['VALLUM_INPUT']\n"
                              "print(os.environ['GREETING'], sorted(os.listdir(inp)))\n"
                              "n = sum(len(open(os.path.join(d, f)).read().split())\n"
                              "        for d, _, fs in os.walk(inp) for f in fs)\n"
                              "os.makedirs(os.environ['VALLUM_OUTPUT'] + '/deep')\n"
                              "open(os.environ['VALLUM_OUTPUT'] + '/deep/n', 'w').write(str(n))\n"})
    assert job["state"] in ("QUEUED", "RUNNING")
    done = api.wait(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED", done
    assert done["exit_code"] == 0 and done["started"] >= done["created"]
    assert done["finished"] >= done["started"]
    assert read(s3, bucket, "out/deep/n") == b"5"
    assert api.logs(job["id"])["data"] == "hi ['a.txt', 'sub']\n"
    # The log is the gateway's, not an object among the outputs.
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]}
    assert keys == {"out/deep/n"}


def test_command_runtime_runs_an_argv(api, s3, bucket):
    s3.put_object(Bucket=bucket, Key="data.txt", Body=b"a b c d")
    job = api.submit({"runtime": "command", "command": ["sh", "-c",
                      'wc -w < "$VALLUM_INPUT/data.txt" > "$VALLUM_OUTPUT/wc"; echo "$0 $1"'],
                      "args": ["x", "y"], "inputs": [f"s3://{bucket}/data.txt"],
                      "output": f"s3://{bucket}/o/"})
    done = api.wait(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED", api.logs(job["id"])
    assert read(s3, bucket, "o/wc").strip() == b"4"
    assert api.logs(job["id"])["data"] == "x y\n"


def test_python_script_from_an_object(api, s3, bucket):
    s3.put_object(Bucket=bucket, Key="code/tool.py", Body=b"import sys; print('args', sys.argv[1:])")
    job = api.submit({"runtime": "python", "script": f"s3://{bucket}/code/tool.py",
                      "args": ["--n", "3"], "output": f"s3://{bucket}/o/"})
    assert api.wait(job["id"], timeout=30)["state"] == "SUCCEEDED"
    assert api.logs(job["id"])["data"] == "args ['--n', '3']\n"


def test_python_module_from_a_prefix(api, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pkg/tool/__init__.py", Body=b"")
    s3.put_object(Bucket=bucket, Key="pkg/tool/__main__.py", Body=b"from tool import lib; lib.go()")
    s3.put_object(Bucket=bucket, Key="pkg/tool/lib.py", Body=b"def go(): print('module ok')")
    job = api.submit({"runtime": "python", "module": "tool", "code_uri": f"s3://{bucket}/pkg/",
                      "output": f"s3://{bucket}/o/"})
    assert api.wait(job["id"], timeout=30)["state"] == "SUCCEEDED", api.logs(job["id"])
    assert api.logs(job["id"])["data"] == "module ok\n"


def test_word_count_array_job_over_1000_objects(api, s3, bucket):
    texts = {f"docs/{i:04d}.txt": (" ".join(["w"] * (i % 17 + 1))).encode() for i in range(1000)}
    put_many(s3, bucket, texts)
    t0 = time.monotonic()
    job = api.submit({"runtime": "python", "name": "wordcount", "array": f"s3://{bucket}/docs/",
                      "parallelism": 8, "output": f"s3://{bucket}/counts/", "code": WORDCOUNT,
                      "resources": {"memory_mb": 256, "wall_time_s": 60}})
    assert job["kind"] == "array" and job["tasks_total"] == 1000
    done = api.wait(job["id"], timeout=240)
    elapsed = time.monotonic() - t0
    if done["state"] != "SUCCEEDED":     # say why: the failed tasks' reasons and logs
        failed = [t for t in api.tasks(job["id"]) if t["state"] != "SUCCEEDED"][:3]
        raise AssertionError((done["state"], done.get("tasks"), failed))
    assert done["tasks"]["SUCCEEDED"] == 1000
    tasks = api.tasks(job["id"])
    assert {t["input"] for t in tasks} == set(texts)
    # Bounded parallelism: never more than 8 tasks of this job running at once.
    spans = sorted((t["started"], 1) for t in tasks) + sorted((t["finished"], -1) for t in tasks)
    peak = cur = 0
    for _, step in sorted(spans, key=lambda s: (s[0], s[1])):
        cur += step
        peak = max(peak, cur)
    assert peak <= 8
    counts = {}
    for i in range(0, 1000, 37):
        key = f"{i:04d}.txt"
        counts[key] = int(read(s3, bucket, f"counts/{key}/count"))
        assert counts[key] == i % 17 + 1
    print(f"\nword count over 1000 objects: {elapsed:.1f}s ({1000 / elapsed:.0f} tasks/s)")


def test_retries_with_backoff_then_success(api, bucket):
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/o/", "retries": 2,
                      "backoff_s": 0.3,
                      "code": "import os, sys\nprint('attempt', os.environ['VALLUM_ATTEMPT'])\n"
                              "sys.exit(0 if os.environ['VALLUM_ATTEMPT'] == '3' else 3)"})
    done = api.wait(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED"
    (task,) = api.tasks(job["id"])
    assert task["attempts"] == 3
    # 0.3 s then 0.6 s of backoff at least.
    assert done["finished"] - done["started"] >= 0.9


def test_failure_after_retries_reports_exit_code(api, bucket):
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/o/", "retries": 1,
                      "backoff_s": 0, "code": "import sys; print('boom'); sys.exit(7)"})
    done = api.wait(job["id"], timeout=30)
    assert done["state"] == "FAILED" and done["exit_code"] == 7
    assert "exit code 7" in done["reason"]
    assert api.tasks(job["id"])[0]["attempts"] == 2
    assert "[vallum] FAILED: exit code 7" in api.logs(job["id"])["data"]


def test_wall_time_limit_times_out(api, bucket):
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/o/",
                      "resources": {"wall_time_s": 0.5}, "code": "import time; time.sleep(30)"})
    done = api.wait(job["id"], timeout=30)
    assert done["state"] == "TIMED_OUT"
    assert "wall-time limit" in done["reason"]
    assert done["finished"] - done["started"] < 10


def test_cancel_kills_a_running_job_and_its_queued_tasks(api, s3, bucket):
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/o/",
                      "code": "import time\nprint('started', flush=True)\ntime.sleep(60)"})
    deadline = time.monotonic() + 20
    while api.job(job["id"])["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    out = api.cancel(job["id"])
    assert out["cancelled"] is True
    assert api.job(job["id"])["state"] == "CANCELLED"
    deadline = time.monotonic() + 10
    while api.tasks(job["id"])[0]["state"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    (task,) = api.tasks(job["id"])
    assert task["state"] == "CANCELLED"
    assert task["finished"] - out["started"] < 5          # killed, not left to sleep 60 s
    assert api.job(job["id"])["finished"] is not None
    assert api.cancel(job["id"])["cancelled"] is False


def test_live_log_following(api, bucket):
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/o/",
                      "code": "import time\nfor i in range(4):\n    print('line', i, flush=True)\n"
                              "    time.sleep(0.4)\n"})
    chunks = list(api.follow_logs(job["id"], poll=0.1))
    assert "".join(chunks) == "".join(f"line {i}\n" for i in range(4))
    assert len(chunks) >= 2          # seen while it was still running


def test_dependencies_run_in_order_and_failures_propagate(api, bucket):
    out = f"s3://{bucket}/o/"
    batch = api.submit_batch({
        "first": {"runtime": "python", "output": out, "code": "import time; time.sleep(0.3)"},
        "second": {"runtime": "python", "output": out, "code": "print(2)", "depends_on": ["first"]},
        "bad": {"runtime": "python", "output": out, "code": "raise SystemExit(1)"},
        "after_bad": {"runtime": "python", "output": out, "code": "print(3)",
                      "depends_on": ["bad", "first"]},
    })["jobs"]
    first = api.wait(batch["first"]["id"], timeout=30)
    second = api.wait(batch["second"]["id"], timeout=30)
    assert second["state"] == "SUCCEEDED"
    assert second["started"] >= first["finished"]
    after_bad = api.wait(batch["after_bad"]["id"], timeout=30)
    assert after_bad["state"] == "FAILED"
    assert "dependency" in after_bad["reason"] and batch["bad"]["id"] in after_bad["reason"]
    assert after_bad["started"] is None
    # An existing job id works as a dependency too.
    later = api.submit({"runtime": "python", "output": out, "code": "print(4)",
                        "depends_on": [first["id"]]})
    assert api.wait(later["id"], timeout=30)["state"] == "SUCCEEDED"


def test_cyclic_dependencies_are_refused(api, bucket):
    out = f"s3://{bucket}/o/"
    with pytest.raises(VallumError) as exc:
        api.submit_batch({
            "a": {"runtime": "python", "output": out, "code": "", "depends_on": ["c"]},
            "b": {"runtime": "python", "output": out, "code": "", "depends_on": ["a"]},
            "c": {"runtime": "python", "output": out, "code": "", "depends_on": ["b"]}})
    assert exc.value.status == 400 and exc.value.code == "CyclicDependency"
    assert "->" in exc.value.message


def test_idempotency_key_returns_the_same_job(api, bucket):
    spec = {"runtime": "python", "output": f"s3://{bucket}/o/", "code": "print(1)",
            "idempotency_key": f"once-{bucket}"}
    a = api.submit(spec)
    b = api.submit(spec)
    assert a["id"] == b["id"]
    assert api.wait(a["id"], timeout=30)["state"] == "SUCCEEDED"


@pytest.mark.parametrize("spec, status, code, words", [
    ({"runtime": "perl", "code": "1"}, 400, "UnknownRuntime", "unknown runtime"),
    ({"runtime": "python"}, 400, "InvalidSpec", "exactly one of"),
    ({"runtime": "command", "command": []}, 400, "InvalidSpec", "argv"),
    ({"runtime": "python", "code": "", "resources": {"memory_mb": 10 ** 9}}, 403,
     "QuotaExceeded", "resources.memory_mb 1000000000 is over the platform limit of 8192"),
    ({"runtime": "python", "code": "", "resources": {"cpu": 10 ** 4}}, 400, "InvalidSpec", "cpu"),
    ({"runtime": "python", "code": "", "env": {"AWS_SECRET_ACCESS_KEY": "x"}}, 400,
     "InvalidSpec", "reserved"),
    ({"runtime": "python", "code": "", "inputs": ["s3://BUCKET/missing.txt"]}, 404, "NoSuchKey",
     "no such object"),
    ({"runtime": "python", "code": "", "inputs": ["s3://no-such-bucket-x/a"]}, 404,
     "NoSuchBucket", "no such bucket"),
    ({"runtime": "python", "code": "", "inputs": ["http://x/y"]}, 400, "InvalidSpec", "s3://"),
    ({"runtime": "python", "code": "", "depends_on": ["j-nope"]}, 400, "InvalidSpec",
     "no such job"),
    ({"runtime": "python", "code": "", "surprise": 1}, 400, "InvalidSpec", "unknown field"),
])
def test_bad_specs_are_refused_at_submit(api, bucket, spec, status, code, words):
    spec = json.loads(json.dumps(spec).replace("BUCKET", bucket))
    spec.setdefault("output", f"s3://{bucket}/o/")
    with pytest.raises(VallumError) as exc:
        api.submit(spec)
    assert (exc.value.status, exc.value.code) == (status, code)
    assert words in exc.value.message.lower()


def test_unsigned_requests_are_refused_and_openapi_is_served(server):
    req = urllib.request.Request(server.endpoint + "/-/jobs/v1/jobs", method="GET")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 403
    with urllib.request.urlopen(server.endpoint + "/-/jobs/openapi.json", timeout=5) as r:
        doc = json.load(r)
    assert doc["openapi"].startswith("3.") and "/-/jobs/v1/jobs" in doc["paths"]


def test_list_and_metrics(api, server, bucket):
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/o/", "code": "print(1)"})
    api.wait(job["id"], timeout=30)
    assert job["id"] in {j["id"] for j in api.jobs(state="SUCCEEDED", limit=1000)}
    with urllib.request.urlopen(server.endpoint + "/-/metrics", timeout=5) as r:
        text = r.read().decode()
    for name in ("vallum_compute_queue_length", "vallum_compute_task_wait_seconds_bucket",
                 "vallum_compute_task_run_seconds_bucket", "vallum_compute_task_failures_total"):
        assert name in text


def _cli(server, *args, stdin=None):
    import os
    import subprocess
    import sys
    env = dict(os.environ, VALLUM_ENDPOINT=server.endpoint, AWS_ACCESS_KEY_ID=server.access_key,
               AWS_SECRET_ACCESS_KEY=server.secret_key)
    return subprocess.run([sys.executable, "-m", "vallum", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_cli_job_fn_and_trigger_commands(server, s3, bucket, tmp_path):
    script = tmp_path / "job.py"
    script.write_text("print('from the cli')\n")
    r = _cli(server, "job", "submit", "--code", str(script), "--output", f"s3://{bucket}/cli/",
             "--wait")
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout[:r.stdout.rindex("}") + 1])["id"]
    assert f"{job_id} SUCCEEDED" in r.stdout
    assert _cli(server, "job", "logs", job_id).stdout == "from the cli\n"
    assert _cli(server, "job", "logs", "-f", job_id).stdout == "from the cli\n"
    assert job_id in _cli(server, "job", "ls").stdout
    assert json.loads(_cli(server, "job", "status", job_id, "--tasks").stdout)["state"] == "SUCCEEDED"
    bad = _cli(server, "job", "submit", '{"runtime": "cobol"}')
    assert bad.returncode == 1 and "UnknownRuntime" in bad.stderr
    failing = _cli(server, "job", "submit", json.dumps({"runtime": "command", "command": ["false"],
                                                         "output": f"s3://{bucket}/cli/"}), "--wait")
    assert failing.returncode == 1 and "FAILED" in failing.stdout
    code = tmp_path / "fn.py"
    code.write_text("def handler(e, c):\n    return {'twice': e * 2}\n")
    assert _cli(server, "fn", "create", "clifn", "--code", str(code)).returncode == 0
    assert json.loads(_cli(server, "fn", "invoke", "clifn", "21").stdout) == {"result": {"twice": 42}}
    assert "clifn" in _cli(server, "fn", "ls").stdout
    added = _cli(server, "trigger", "add", "--bucket", bucket, "--function", "clifn", "--prefix", "x/")
    trig = json.loads(added.stdout)["id"]
    assert trig in _cli(server, "trigger", "ls").stdout
    assert _cli(server, "trigger", "rm", trig).returncode == 0
    assert _cli(server, "fn", "rm", "clifn").returncode == 0
    assert _cli(server, "fn", "invoke", "clifn").returncode == 1
