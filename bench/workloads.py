"""The benchmark workloads: small-object ops, big objects, listing, server RSS.

Small-object ops run in worker *processes* (one by default), each an asyncio loop
with one connection per request in flight and its own light HTTP/1.1 and SigV4 code
(aioclient.py), so the client spends far less CPU per request than the servers. Big transfers stream a repeated 1 MiB block up and read
replies into one reused 1 MiB buffer, so no object is ever held in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import multiprocessing as mp
import os
import queue
import re
import resource
import signal
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree

import boto3
from botocore.config import Config

from bench import aioclient
from bench.s3http import S3Http, pattern_stream
from bench.servers import tree_cpu_seconds, tree_rss_bytes
from bench.stats import MIB, latency_summary, mib_per_s, rate, split_evenly

OK_STATUS = {"PUT": (200,), "GET": (200,), "HEAD": (200,), "DELETE": (200, 204)}


@dataclass(frozen=True)
class Endpoint:
    """What a client (or a worker process) needs to reach one target; picklable."""

    url: str
    access_key: str
    secret_key: str

    def client(self, timeout: float = 600.0) -> S3Http:
        return S3Http(self.url, self.access_key, self.secret_key, timeout=timeout)

    def hostport(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"endpoint must be http://host:port, got {self.url!r}")
        return parts.hostname, parts.port


def boto3_client(ep: Endpoint, pool: int = 16):
    """boto3 as the brief fixes it: path style, SigV4, retries off, pool >= concurrency."""
    cfg = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max(pool, 10),
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3", endpoint_url=ep.url, aws_access_key_id=ep.access_key,
        aws_secret_access_key=ep.secret_key, region_name="us-east-1", config=cfg,
    )


def create_bucket(ep: Endpoint, bucket: str, versioned: bool = False) -> None:
    client = boto3_client(ep)
    client.create_bucket(Bucket=bucket)
    if versioned:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


# ---------------------------------------------------------------- small objects


@dataclass
class OpBatch:
    """One timed batch of same-kind small-object operations."""

    op: str
    count: int
    errors: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_pct: float
    server_cpu_pct: float | None
    first_error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def server_cpu_per_request(self) -> float | None:
        """Server CPU seconds per successful request over the batch (None if unmeasured)."""
        if self.server_cpu_pct is None or self.count <= self.errors:
            return None
        return self.server_cpu_pct / 100.0 * self.seconds / (self.count - self.errors)


async def _conn_loop(conns: list[aioclient.Connection], bucket: str, op: str, prefix: str,
                     lo: int, hi: int, body: bytes, digest: str) -> tuple:
    """One in-flight request stream: each key in [lo, hi) once on every endpoint, in turn.
    With two endpoints the first goes first on even keys and second on odd ones, so neither
    always meets the other's after-effects."""
    n = len(conns)
    lats: list[list[float]] = [[] for _ in conns]
    errors, first = [0] * n, [""] * n
    start = time.monotonic()
    ok = OK_STATUS[op]
    payload = body if op == "PUT" else b""
    for i in range(lo, hi):
        path = f"/{bucket}/{prefix}{i:07d}"
        for k in (range(n) if i % 2 == 0 else range(n - 1, -1, -1)):
            t0 = time.perf_counter()
            try:
                resp = await aioclient.send(conns[k], op, path, body=payload,
                                            payload_hash=digest if payload else None)
            except Exception as exc:  # counted, not retried: retries would hide failures
                errors[k] += 1
                first[k] = first[k] or f"{type(exc).__name__}: {exc}"
                continue
            lats[k].append(time.perf_counter() - t0)
            if resp.status not in ok or (op == "GET" and resp.nbytes != len(body)):
                errors[k] += 1
                first[k] = first[k] or f"{op} {path} -> {resp.status} ({resp.nbytes} bytes)"
    return lats, errors, first, start, time.monotonic()


async def _streams(eps: list[Endpoint], bucket: str, op: str, prefix: str,
                   ranges: list[tuple[int, int]], body: bytes, ready, go) -> list:
    """Connect every stream first, report ready, wait for the common start, then run all."""
    digest = hashlib.sha256(body).hexdigest()
    streams = []
    for _ in ranges:
        conns = []
        for ep in eps:
            host, port = ep.hostport()
            conns.append(aioclient.Connection(host, port, aioclient.Signer(ep.access_key, ep.secret_key)))
        streams.append(conns)
    failed = ""
    try:
        await asyncio.gather(*(c.connect() for conns in streams for c in conns))
    except OSError as exc:
        failed = f"connect: {exc}"
    for _ in ranges:
        ready.release()
    go.wait()      # blocking on purpose: nothing else runs in this loop before the start
    if failed:
        now = time.monotonic()
        out = [([[] for _ in eps], [hi - lo] * len(eps), [failed] * len(eps), now, now)
               for lo, hi in ranges]
    else:
        out = await asyncio.gather(*(_conn_loop(conns, bucket, op, prefix, lo, hi, body, digest)
                                     for conns, (lo, hi) in zip(streams, ranges, strict=True)))
    for conns in streams:
        for c in conns:
            c.close()
    return list(out)


_WORDS = ("the convoy reached the depot at dawn and the engineers began to unload the spare "
          "parts while the duty officer logged every crate against the manifest from HQ the "
          "weather report for the next three days was poor so the route through the valley "
          "was closed and the team planned a second run by road GPS fixes were sent every ten "
          "minutes with an ETA for each checkpoint in UTC please confirm receipt of the list "
          "of vehicles and the names of the drivers before noon the maintenance schedule for "
          "the generators is attached along with the fuel figures for last month").split()


def prose(size: int) -> bytes:
    """``size`` bytes of plain English text without any classification marking: what the
    spill scanner reads in full (random bytes look binary and are skipped), with a few
    upper-case acronyms, each a candidate it must check (security/spill/markings.py)."""
    out, n, i = [], 0, 0
    while n < size:
        sentence = " ".join(_WORDS[(i * 13 + j) % len(_WORDS)] for j in range(9 + i % 7))
        line = sentence[0].upper() + sentence[1:] + (". " if i % 5 else ".\n")
        out.append(line)
        n += len(line)
        i += 1
    return "".join(out).encode()[:size]


def _worker(eps: list[Endpoint], bucket: str, op: str, prefix: str, ranges: list[tuple[int, int]],
            body_size: int, text: bool, ready, go, results) -> None:
    """One client process: an asyncio loop with one connection (per endpoint) per key range,
    all released together by the `go` event."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    body = prose(body_size) if text else os.urandom(body_size)
    cpu0 = _cpu_self()
    out = asyncio.run(_streams(eps, bucket, op, prefix, ranges, body, ready, go))
    results.put((out, _cpu_self() - cpu0))


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def small_ops(ep: Endpoint, bucket: str, op: str, prefix: str, count: int, body_size: int,
              concurrency: int, procs: int, server_pid: int | None,
              timeout: float = 900.0, text: bool = False) -> OpBatch:
    """`count` ops of one kind on keys prefix0000000.., `concurrency` in flight across `procs`;
    bodies are random bytes, or ``prose`` with ``text``."""
    return _batch([ep], bucket, op, prefix, count, body_size, concurrency, procs, [server_pid],
                  timeout, text)[0]


def paired_ops(eps: tuple[Endpoint, Endpoint], bucket: str, op: str, prefix: str, count: int,
               body_size: int, concurrency: int, procs: int,
               server_pids: tuple[int | None, int | None], timeout: float = 900.0,
               text: bool = False) -> list[OpBatch]:
    """small_ops against two servers at once: every client thread sends each key to one and
    then the other (alternating which goes first), so both see the same requests at the
    same moments and on the same machine load. One OpBatch per server, over one window.

    Why: two servers measured one after the other differ by the machine's drift between
    the two batches (+-10-25% per batch on a 2-core VM); measured together they share it,
    and their CPU per request compares a few % apart."""
    return _batch(list(eps), bucket, op, prefix, count, body_size, concurrency, procs,
                  list(server_pids), timeout, text)


def _batch(eps: list[Endpoint], bucket: str, op: str, prefix: str, count: int, body_size: int,
           concurrency: int, procs: int, server_pids: list[int | None], timeout: float,
           text: bool) -> list[OpBatch]:
    procs = max(1, min(procs, concurrency))
    per_proc = split_evenly(concurrency, procs)
    shares = split_evenly(count, concurrency)
    bounds, lo = [], 0
    for share in shares:
        bounds.append((lo, lo + share))
        lo += share
    ctx = mp.get_context("spawn")
    ready, go = ctx.Semaphore(0), ctx.Event()
    results = ctx.Queue()
    workers, cursor = [], 0
    for n in per_proc:
        ranges = bounds[cursor:cursor + n]
        cursor += n
        p = ctx.Process(target=_worker, daemon=True,
                        args=(eps, bucket, op, prefix, ranges, body_size, text, ready, go, results))
        p.start()
        workers.append(p)
    finished = False
    try:
        for _ in range(concurrency):  # every thread connected: start the clock for all
            _wait_ready(ready, workers)
        srv0 = [tree_cpu_seconds(pid) if pid else None for pid in server_pids]
        go.set()
        gathered = [_get(results, workers, timeout) for _ in workers]
        srv1 = [tree_cpu_seconds(pid) if pid else None for pid in server_pids]
        finished = True
    finally:
        go.set()  # never leave a worker blocked on the start line
        for p in workers:
            p.join(timeout=10 if finished else 0)
            if p.is_alive():
                p.kill()
                p.join()
    cpu, starts, ends = 0.0, [], []
    for per_thread, cpu_s in gathered:
        cpu += cpu_s
        for _, _, _, t_start, t_end in per_thread:
            starts.append(t_start)
            ends.append(t_end)
    seconds = max(ends) - min(starts)
    batches = []
    for k in range(len(eps)):
        lats: list[float] = []
        errors, first = 0, ""
        for per_thread, _ in gathered:
            for t_lats, t_err, t_first, _, _ in per_thread:
                lats.extend(t_lats[k])
                errors += t_err[k]
                first = first or t_first[k]
        summary = latency_summary(lats) if lats else {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        server_pct = None
        if srv0[k] is not None and srv1[k] is not None:
            server_pct = 100.0 * (srv1[k] - srv0[k]) / seconds
        batches.append(OpBatch(op, count, errors, seconds, rate(count - errors, seconds), **summary,
                               client_cpu_pct=100.0 * cpu / seconds, server_cpu_pct=server_pct,
                               first_error=first))
    return batches


def _wait_ready(ready, workers, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready.acquire(timeout=0.5):
        if any(p.exitcode not in (None, 0) for p in workers):
            raise RuntimeError("a small-object worker process died while starting")
        if time.monotonic() > deadline:
            raise TimeoutError("small-object workers did not start in time")


def _get(results, workers, timeout: float):
    """Wait for one worker's result, failing fast if a worker died without answering."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError("small-object workers did not finish in time") from None
            if any(p.exitcode not in (None, 0) for p in workers):
                raise RuntimeError("a small-object worker process died") from None


# ---------------------------------------------------------------- listing

_TAG = re.compile(r"\{.*\}")


def _local(tag: str) -> str:
    return _TAG.sub("", tag)


def _top_level(body: bytes, name: str) -> str | None:
    """The unescaped text of element ``name`` in a listing document (None if absent).
    Listing markers and flags occur once per document, outside the entries."""
    found = re.search(rb"<%s>([^<]*)</%s>" % (name.encode(), name.encode()), body)
    return html.unescape(found.group(1).decode()) if found is not None else None


def count_entries(body: bytes, versions: bool) -> int:
    """Entries in one listing page, counted by their opening tags. Why not ElementTree:
    building the tree of a 1,000-version page costs the client 7.5 ms against 3.1 ms
    for a 1,000-key ListObjectsV2 page (Owner and VersionId add elements), which on 2
    shared cores measured the client's parser, not the server. Text cannot hold a
    raw ``<``, so a tag is never miscounted inside a key; the exact-count check in
    ``listing`` catches any document this scan misreads."""
    if versions:
        return body.count(b"<Version>") + body.count(b"<DeleteMarker>")
    return body.count(b"<Contents>")


def list_all(ep: Endpoint, bucket: str, prefix: str, page: int = 1000,
             versions: bool = False) -> tuple[int, float]:
    """Every page of ListObjectsV2 (or ListObjectVersions); returns (entries seen, seconds)."""
    client = ep.client()
    client.connect()
    entries, markers = 0, {}
    start = time.perf_counter()
    try:
        while True:
            query = {"max-keys": str(page), "prefix": prefix, **markers}
            query.update({"versions": ""} if versions else {"list-type": "2"})
            resp = client.request("GET", f"/{bucket}", query=query)
            if resp.status != 200:
                raise RuntimeError(f"listing -> {resp.status}: {resp.body[:200]!r}")
            entries += count_entries(resp.body, versions)
            if (_top_level(resp.body, "IsTruncated") or "").strip().lower() != "true":
                break
            if versions:
                markers = {"key-marker": _top_level(resp.body, "NextKeyMarker") or "",
                           "version-id-marker": _top_level(resp.body, "NextVersionIdMarker") or ""}
            else:
                markers = {"continuation-token": _top_level(resp.body, "NextContinuationToken") or ""}
            if not any(markers.values()):
                raise RuntimeError("truncated listing without a next marker")
        return entries, time.perf_counter() - start
    finally:
        client.close()


def listing(ep: Endpoint, bucket: str, prefix: str, expected: int, repeats: int = 3,
            versions: bool = False) -> dict:
    """Median keys/s over `repeats` full listings; a short listing is an error, not a figure."""
    rates = []
    for _ in range(repeats):
        keys, seconds = list_all(ep, bucket, prefix, versions=versions)
        if keys != expected:
            raise RuntimeError(f"listing returned {keys} keys, expected {expected}")
        rates.append(rate(keys, seconds))
    return {"keys": expected, "keys_per_s": statistics.median(rates), "runs": rates}


# ---------------------------------------------------------------- big objects


def put_stream(ep: Endpoint, bucket: str, key: str, size: int, block: bytes) -> float:
    """Single PUT of `size` bytes streamed (UNSIGNED-PAYLOAD); returns MiB/s."""
    client = ep.client()
    client.connect()
    try:
        start = time.perf_counter()
        resp = client.request("PUT", f"/{bucket}/{key}", stream=pattern_stream(size, block),
                              length=size)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    if resp.status != 200:
        raise RuntimeError(f"PUT {key} -> {resp.status}: {resp.body[:300]!r}")
    return mib_per_s(size, elapsed)


def get_stream(ep: Endpoint, bucket: str, key: str, size: int) -> float:
    """Single GET read in 1 MiB chunks and discarded; returns MiB/s, checks the length."""
    client = ep.client()
    client.connect()
    try:
        start = time.perf_counter()
        resp = client.request("GET", f"/{bucket}/{key}", keep_body=False)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    if resp.status != 200 or resp.nbytes != size:
        raise RuntimeError(f"GET {key} -> {resp.status}, {resp.nbytes} of {size} bytes")
    return mib_per_s(size, elapsed)


def multipart_put(ep: Endpoint, bucket: str, key: str, size: int, part_size: int,
                  parallel: int, block: bytes) -> float:
    """Create, upload parts on `parallel` threads (one connection each), complete; MiB/s."""
    control = ep.client()
    start = time.perf_counter()
    resp = control.request("POST", f"/{bucket}/{key}", query={"uploads": ""})
    if resp.status != 200:
        raise RuntimeError(f"CreateMultipartUpload -> {resp.status}: {resp.body[:300]!r}")
    upload_id = next((el.text for el in ElementTree.fromstring(resp.body).iter()
                      if _local(el.tag) == "UploadId"), None)
    if not upload_id:
        raise RuntimeError("CreateMultipartUpload answered without an UploadId")
    nparts = -(-size // part_size)
    todo: queue.Queue[int] = queue.Queue()
    for n in range(1, nparts + 1):
        todo.put(n)
    etags: dict[int, str] = {}
    failures: list[str] = []

    def uploader() -> None:
        client = ep.client()
        try:
            while not failures:
                try:
                    n = todo.get_nowait()
                except queue.Empty:
                    return
                length = min(part_size, size - (n - 1) * part_size)
                r = client.request("PUT", f"/{bucket}/{key}",
                                   query={"partNumber": str(n), "uploadId": upload_id},
                                   stream=pattern_stream(length, block), length=length)
                if r.status != 200 or not r.headers.get("ETag"):
                    failures.append(f"UploadPart {n} -> {r.status}: {r.body[:200]!r}")
                    return
                etags[n] = r.headers["ETag"]
        except Exception as exc:
            failures.append(f"UploadPart: {type(exc).__name__}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=uploader) for _ in range(max(1, parallel))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        control.request("DELETE", f"/{bucket}/{key}", query={"uploadId": upload_id})
        control.close()
        raise RuntimeError(failures[0])
    body = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>"
        for n in sorted(etags)) + "</CompleteMultipartUpload>"
    resp = control.request("POST", f"/{bucket}/{key}", query={"uploadId": upload_id},
                           body=body.encode(), headers={"Content-Type": "application/xml"})
    elapsed = time.perf_counter() - start
    control.close()
    # S3 may answer 200 and still carry an <Error> in the body of a complete.
    if resp.status != 200 or b"<Error>" in resp.body:
        raise RuntimeError(f"CompleteMultipartUpload -> {resp.status}: {resp.body[:300]!r}")
    return mib_per_s(size, elapsed)


def delete_object(ep: Endpoint, bucket: str, key: str) -> None:
    """Best-effort cleanup so big objects do not pile up on disk or in moto's memory."""
    client = ep.client(timeout=120)
    try:
        client.request("DELETE", f"/{bucket}/{key}")
    except OSError:
        pass
    finally:
        client.close()


# ---------------------------------------------------------------- server memory


def rss_during_upload(ep: Endpoint, bucket: str, key: str, size: int, pid: int,
                      block: bytes, interval: float = 0.02) -> dict:
    """Sample the server tree's RSS while one `size`-byte PUT streams in; growth in MiB."""
    baseline = statistics.median(tree_rss_bytes(pid) for _ in range(5))
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_bytes(pid))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        mibs = put_stream(ep, bucket, key, size, block)
    finally:
        stop.set()
        sampler.join()
    peak[0] = max(peak[0], tree_rss_bytes(pid))
    return {"baseline_mib": baseline / MIB, "peak_mib": peak[0] / MIB,
            "growth_mib": (peak[0] - baseline) / MIB, "upload_mibs": mibs}


# ---------------------------------------------------------------- IAM policy cost


def policy_statements(bucket: str, count: int) -> dict:
    """An identity policy of `count` statements where only the last one grants `bucket`.

    The other statements name other buckets, so every request is evaluated against all
    of them: the policy check's worst realistic case for its size.
    """
    statements = [{"Sid": f"Team{i}", "Effect": "Allow",
                   "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                   "Resource": [f"arn:aws:s3:::team-{i}", f"arn:aws:s3:::team-{i}/*"]}
                  for i in range(max(0, count - 1))]
    statements.append({"Sid": "Bench", "Effect": "Allow", "Action": "s3:*",
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]})
    return {"Version": "2012-10-17", "Statement": statements}


def iam_user(ep: Endpoint, bucket: str, statements: int) -> Endpoint:
    """A fresh account and user with one `statements`-statement policy (Vallum admin API);
    returns the user's endpoint. The user creates `bucket`, so its account owns it."""
    import json
    import secrets

    from vallum.cli.admin import AdminClient

    admin = AdminClient(ep.url, ep.access_key, ep.secret_key)
    account = admin.call("CreateAccount", name="bench" + secrets.token_hex(4))["account"]
    acct = account["id"]
    admin.call("CreateUser", account=acct, user="reader")
    admin.call("CreatePolicy", account=acct, policy="bench50",
               document=json.dumps(policy_statements(bucket, statements)))
    admin.call("AttachPolicy", account=acct, kind="user", target="reader", policy="bench50")
    key = admin.call("CreateAccessKey", account=acct, user="reader")
    user = Endpoint(ep.url, key["access_key_id"], key["secret_access_key"])
    create_bucket(user, bucket)
    return user
