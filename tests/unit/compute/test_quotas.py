"""Platform limits lowered by account quotas, and the per-account running-task limit."""

from __future__ import annotations

import pytest

from vallum.compute import jobstore as js
from vallum.compute import quotas
from vallum.compute.db import ComputeDB
from vallum.compute.spec import Quota, SpecError, parse_job


@pytest.fixture
def db(tmp_path):
    d = ComputeDB(tmp_path / "meta.sqlite3")
    d.open()
    yield d
    d.close()


def _array(account: str, n: int) -> js.NewJob:
    job = parse_job({"runtime": "command", "command": ["x"], "output": "s3://b/o/"}, Quota())
    return js.NewJob("a", job, "array", [(f"t{i}", f"k{i}") for i in range(n)])


def test_account_quota_only_lowers_and_names_the_binding_bound():
    q = Quota(max_procs=256, memory_mb=8192).narrowed("A1", {"max_procs": 8, "memory_mb": 99999})
    assert (q.max_procs, q.memory_mb) == (8, 8192)
    assert q.whose("max_procs") == "the quota of account A1"
    assert q.whose("memory_mb") == "the platform limit"
    with pytest.raises(SpecError) as exc:
        parse_job({"runtime": "command", "command": ["x"], "output": "s3://b/o/",
                   "resources": {"max_procs": 9}}, q)
    assert exc.value.message == "resources.max_procs 9 is over the quota of account A1 of 8"


def test_quota_documents_are_validated():
    assert quotas.parse({"max_procs": 4, "cpu": 0.5}) == {"max_procs": 4, "cpu": 0.5}
    for bad in ({"max_procs": 0}, {"nope": 1}, {"cpu": True}, []):
        with pytest.raises(SpecError):
            quotas.parse(bad)


def test_from_env_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("VALLUM_COMPUTE_MAX_PROCS", "-1")
    with pytest.raises(ValueError):
        Quota.from_env()
    monkeypatch.setenv("VALLUM_COMPUTE_MAX_PROCS", "32")
    assert Quota.from_env().max_procs == 32


def test_claim_holds_each_account_to_its_running_limit(db):
    for account in ("small", "big"):
        db.run_write(lambda c, a=account: js.insert_jobs(c, a, "arn", [_array(a, 5)], 1.0, {}))
    db.run_write(lambda c: quotas.put(c, "small", {"concurrency": 2}))
    limits = db.run_write(lambda c: quotas.concurrency(c, Quota(concurrency=3)))
    assert limits == (3, {"small": 2})
    got = db.run_write(lambda c: js.claim(c, "L", 2.0, 10, limits))
    assert sorted(c.account for c in got) == ["big"] * 3 + ["small"] * 2
    assert db.run_write(lambda c: js.claim(c, "L", 2.0, 10, limits)) == []
