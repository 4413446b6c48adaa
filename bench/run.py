"""Entry point: `python -m bench.run [--quick] [--targets vallum,moto,seaweedfs] ...`.

Runs the same workloads against every target in one run, one server at a time
(so no two servers share the two CPUs), after measuring the machine's own
limits; then the variant-costs stage (bench/variants.py: the Vallum variants
side by side, interleaved, for the cost of each feature) and the paired stage
(bench/paired.py: two servers loaded at once, for costs of a few %); prints the
figures with Vallum/peer ratios and the feature costs, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import machine, paired, report, servers, stages, variants, workloads
from bench.stats import MIB, human_size, parse_size

BUCKET = "bench"
VERSIONED_BUCKET = "bench-versioned"
IAM_BUCKET = "bench-iam"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Plan:
    """Sizes and counts for one run; --quick only changes these numbers."""

    ops: int
    concurrency: int
    procs: int
    list_keys: int
    big_size: int
    part_size: int
    mpu_parallel: int
    rss_size: int
    disk_size: int
    loopback_size: int
    list_repeats: int
    stages: bool = True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short smoke run (small sizes, < 2 min)")
    p.add_argument("--targets", default=",".join(servers.DEFAULT_TARGETS),
                   help="comma list from " + ",".join(servers.TARGETS)
                        + " (default: " + ",".join(servers.DEFAULT_TARGETS) + ")")
    p.add_argument("--no-stages", action="store_true",
                   help="skip Vallum's per-stage CPU budget (py-spy profiled batches)")
    p.add_argument("--no-ceiling", action="store_true",
                   help="skip the client-ceiling run against the do-nothing sink")
    p.add_argument("--big-size", help="big-object size, e.g. 1GiB (default 1GiB, quick 64MiB)")
    p.add_argument("--rss-size", help="object size for the RSS probe (default 2GiB, quick 128MiB)")
    p.add_argument("--ops", type=int, help="ops per small-object batch (default 3000, quick 300)")
    p.add_argument("--list-keys", type=int, help="keys for the listing test (default 10000, quick 1000)")
    p.add_argument("--concurrency", type=int, default=16, help="small-object ops in flight (16)")
    p.add_argument("--client-procs", type=int, default=1,
                   help="client worker processes sharing the concurrency (default 1)")
    p.add_argument("--workers", type=int, help="passed to `vallum serve --workers N` if given")
    p.add_argument("--iam-statements", type=int, default=50,
                   help="Vallum only: GET by an IAM user with an N-statement policy vs by root "
                        "(policy-check cost); 0 skips it (default 50)")
    p.add_argument("--no-variants", action="store_true",
                   help="skip the variant-costs stage (vallum, vallum-plain, vallum-plain-noscan "
                        "interleaved; runs whatever --targets says)")
    p.add_argument("--no-paired", action="store_true",
                   help="skip the paired stage (the operator hook against the plain gateway, "
                        "both loaded at once, and the plain gateway against itself)")
    p.add_argument("--paired-rounds", type=int,
                   help="rounds of the paired stage, fresh servers each (default 12, quick 2)")
    p.add_argument("--variant-rounds", type=int,
                   help="interleaved rounds of 4 KiB ops in the variant-costs stage "
                        "(default 12, quick 3: each variant takes each position equally often; "
                        "servers restart every 3 rounds)")
    p.add_argument("--variant-big-rounds", type=int,
                   help="rounds of big single PUT+GET, vallum vs vallum-plain (default 3, quick 2)")
    p.add_argument("--tmp-dir", help="parent dir for data dirs and the disk probe (default $TMPDIR)")
    p.add_argument("--out", help="JSON results file (default bench/results/bench-<time>.json)")
    p.add_argument("--plain", action="store_true",
                   help="plain-text tables on a terminal too (always plain when stdout is not one)")
    p.add_argument("--keep", action="store_true", help="keep server dirs and logs for inspection")
    p.add_argument("--compute", action="store_true",
                   help="also run the compute section (bench.compute: jobs, array, events, and "
                        "the same jobs through Ray's own job submission)")
    p.add_argument("--no-ray", action="store_true",
                   help="with --compute: skip the Ray job-submission comparison")
    args = p.parse_args(argv)
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in names if t not in servers.TARGETS]
    if unknown or not names:
        p.error(f"--targets takes names from {','.join(servers.TARGETS)}; got {args.targets!r}")
    args.target_list = names
    if args.concurrency < 1 or args.client_procs < 1:
        p.error("--concurrency and --client-procs must be at least 1")
    if args.paired_rounds is not None and args.paired_rounds < 1:
        p.error("--paired-rounds must be at least 1")
    if (args.variant_rounds is not None and args.variant_rounds < 1) or \
            (args.variant_big_rounds is not None and args.variant_big_rounds < 0):
        p.error("--variant-rounds must be at least 1 and --variant-big-rounds at least 0")
    try:
        args.big_bytes = parse_size(args.big_size or ("64MiB" if args.quick else "1GiB"))
        args.rss_bytes = parse_size(args.rss_size or ("128MiB" if args.quick else "2GiB"))
    except ValueError as exc:
        p.error(str(exc))
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    big = args.big_bytes
    part = 64 * MIB if big >= 256 * MIB else max(5 * MIB, -(-big // 4))
    return Plan(
        ops=args.ops or (300 if quick else 3000),
        concurrency=args.concurrency,
        procs=args.client_procs,
        list_keys=args.list_keys or (1000 if quick else 10000),
        big_size=big,
        part_size=part,
        mpu_parallel=4,
        rss_size=args.rss_bytes,
        disk_size=256 * MIB if quick else 1024 * MIB,
        loopback_size=512 * MIB if quick else 2048 * MIB,
        list_repeats=1 if quick else 3,
        stages=not args.no_stages,
    )


def variant_settings(args: argparse.Namespace, plan: Plan) -> variants.Settings:
    """The variant-costs stage uses the run's batch size, concurrency and big size."""
    return variants.Settings(
        # A multiple of the 3 variants (one epoch each, see bench/variants.py). 12, not 6:
        # with 6 rounds of 3,000 ops the median ratio of a write op moved by +-4 points
        # between runs (the 14:28 UTC run read an 8% operator cost for DELETE where 6
        # alternating rounds of 8,000 read 1%).
        rounds=args.variant_rounds or (3 if args.quick else 12),
        big_rounds=(args.variant_big_rounds if args.variant_big_rounds is not None
                    else (2 if args.quick else 3)),
        ops=plan.ops, concurrency=plan.concurrency, procs=plan.procs,
        big_size=plan.big_size, warmup_ops=max(100, plan.ops // 10),
    )


def paired_settings(args: argparse.Namespace, plan: Plan) -> paired.Settings:
    """The paired stage uses the run's batch size and concurrency."""
    return paired.Settings(rounds=args.paired_rounds or (2 if args.quick else 12), ops=plan.ops,
                           concurrency=plan.concurrency, procs=plan.procs,
                           warmup_ops=max(100, plan.ops // 10))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _tree_bytes(folder: Path) -> int:
    """Bytes of audit records under ``folder``: each file up to its first NUL (the active log
    is preallocated and zero-padded ahead, so neither its size nor its blocks say what it
    holds); 0 when absent."""
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        try:
            data = path.read_bytes() if path.is_file() else b""
        except OSError:
            continue
        end = data.find(b"\0")
        total += end if end >= 0 else len(data)
    return total


STAGE_OPS = 3000      # per profiled batch, even in --quick: enough samples to split by stage


class Suite:
    """All workloads against one started server; failures are recorded, not fatal."""

    def __init__(self, server: servers.Server, plan: Plan, block: bytes) -> None:
        self.server = server
        self.plan = plan
        self.block = block
        self.ep = workloads.Endpoint(server.endpoint, server.access_key, server.secret_key)
        self.figures: dict[str, float] = {}
        self.details: dict[str, object] = {}
        self.errors: dict[str, str] = {}
        self.iam_statements = 0      # > 0: also measure the policy-check cost (Vallum only)

    def attempt(self, name: str, fn) -> object | None:
        try:
            return fn()
        except Exception as exc:  # one broken workload must not hide the others
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"  {self.server.name}: {name} FAILED: {self.errors[name]}")
            return None

    def small(self, op: str, prefix: str, count: int, key: str) -> None:
        p = self.plan
        batch = self.attempt(key, lambda: workloads.small_ops(
            self.ep, BUCKET, op, prefix, count, 4096, p.concurrency, p.procs, self.server.pid))
        if batch is None:
            return
        self.details[key] = batch.as_dict()
        if batch.errors:
            self.errors[key] = f"{batch.errors}/{count} failed; first: {batch.first_error}"
            log(f"  {self.server.name}: {key}: {self.errors[key]}")
        self.figures[f"{key}_ops"] = batch.ops_per_s
        if key != "list_create":
            self.figures[f"{key}_p50_ms"] = batch.p50_ms
            self.figures[f"{key}_p99_ms"] = batch.p99_ms
            done = batch.count - batch.errors
            if done > 0:
                self.figures[f"{key}_client_us"] = 1e4 * batch.client_cpu_pct * batch.seconds / done
            if batch.server_cpu_per_request is not None:
                self.figures[f"{key}_server_us"] = 1e6 * batch.server_cpu_per_request
        log(f"  {self.server.name}: {key:<11} {batch.ops_per_s:8.0f} ops/s  "
            f"p50 {batch.p50_ms:6.2f} ms  p99 {batch.p99_ms:6.2f} ms  "
            f"client cpu {batch.client_cpu_pct:3.0f}%  server cpu "
            f"{'-' if batch.server_cpu_pct is None else f'{batch.server_cpu_pct:3.0f}%'}")

    def stage_budget(self) -> None:
        """The server CPU per request of each small op split by stage (bench/stages.py): a
        second batch of each op under py-spy, after the timed ones, so the profiler's own
        cost never touches the headline figures."""
        p = self.plan
        table: dict[str, dict] = {}
        for op in ("PUT", "GET", "HEAD", "DELETE"):
            pid = self.server.pid
            profile = self.attempt("stages", lambda: stages.Profile(pid, servers.process_tree(pid)))
            if profile is None:
                return
            batch = self.attempt(f"stages_{op.lower()}", lambda op=op: workloads.small_ops(
                self.ep, BUCKET, op, "stage/", STAGE_OPS, 4096, p.concurrency, p.procs, None))
            done = 0 if batch is None else batch.count - batch.errors
            spent = profile.stop(done)
            if batch is None or batch.errors:
                self.errors.setdefault("stages", f"profiled {op} batch failed")
                return
            table[op] = {"budget_us": spent, "ops_per_s": batch.ops_per_s}
        self.details["stages"] = table
        log(f"  {self.server.name}: per-request CPU by stage (us): " + "; ".join(
            f"{op} " + ", ".join(f"{k} {v:.0f}" for k, v in t["budget_us"].items())
            for op, t in table.items()))

    def policy_cost(self, statements: int, rounds: int = 6) -> None:
        """GET of the same 4 KiB objects by an IAM user with a `statements`-statement policy
        and by root, alternated `rounds` times, each going first in half of the rounds; the
        cost is 1 - median(IAM/root) ratio. Why 6 rounds, not 3: one run's three ratios
        spread 0.78-0.95 (15:16 UTC), and root always went first."""
        p = self.plan
        user = self.attempt("iam_user", lambda: workloads.iam_user(self.ep, IAM_BUCKET, statements))
        if user is None:
            return
        put = self.attempt("iam_put", lambda: workloads.small_ops(
            user, IAM_BUCKET, "PUT", "small/", p.ops, 4096, p.concurrency, p.procs, None))
        if put is None or put.errors:
            self.errors.setdefault("iam_put", f"{put.errors if put else '?'} PUTs failed")
            return
        ratios, iam_ops, root_ops = [], [], []
        for _ in range(rounds):
            batches = {}
            pair = (("root", self.ep), ("iam", user))
            for who, ep in (pair if len(ratios) % 2 == 0 else pair[::-1]):
                b = self.attempt(f"iam_get_{who}", lambda ep=ep: workloads.small_ops(
                    ep, IAM_BUCKET, "GET", "small/", p.ops, 4096, p.concurrency, p.procs,
                    self.server.pid))
                if b is None or b.errors:
                    self.errors.setdefault(f"iam_get_{who}", "GET failed")
                    return
                batches[who] = b.ops_per_s
            root_ops.append(batches["root"])
            iam_ops.append(batches["iam"])
            ratios.append(batches["iam"] / batches["root"])
        self.figures["iam_root_get_ops"] = statistics.median(root_ops)
        self.figures["iam_get_ops"] = statistics.median(iam_ops)
        self.figures["iam_policy_cost_pct"] = 100.0 * (1.0 - statistics.median(ratios))
        self.details["iam_policy"] = {"statements": statements, "root_ops": root_ops,
                                      "iam_ops": iam_ops, "ratios": ratios}
        log(f"  {self.server.name}: GET by IAM user ({statements} statements) / by root: "
            f"{', '.join(f'{r:.3f}' for r in ratios)}; policy-check cost "
            f"{self.figures['iam_policy_cost_pct']:.1f}%")

    def versioned(self) -> None:
        """Issue 3's workload: new versions of hot keys in a versioned bucket, then
        ListObjectVersions over them; compared with the unversioned PUT and listing."""
        p, ep = self.plan, self.ep
        if self.attempt("versioned_bucket", lambda: workloads.create_bucket(ep, VERSIONED_BUCKET, True)) is None \
                and "versioned_bucket" in self.errors:
            return
        hot = max(1, p.list_keys // 4)
        adding: list[float] = []
        for round_no in range(4):      # four versions of every hot key
            batch = self.attempt("versioned_put", lambda: workloads.small_ops(
                ep, VERSIONED_BUCKET, "PUT", "hot/", hot, 4096, p.concurrency, p.procs, self.server.pid))
            if batch is None or batch.errors:
                self.errors.setdefault("versioned_put", "versioned PUT failed")
                return
            if round_no > 0:           # rounds 2-4 add versions to existing keys
                adding.append(batch.ops_per_s)
        # The median of the three rounds that add versions: one batch alone swung by up to
        # 20% between runs (one full run read 0.73x, alternating runs 0.87-0.96x).
        self.figures["versioned_put_ops"] = statistics.median(adding)
        listed = self.attempt("list_versions", lambda: workloads.listing(
            ep, VERSIONED_BUCKET, "hot/", hot * 4, p.list_repeats, versions=True))
        if listed is not None:
            self.figures["list_versions_per_s"] = listed["keys_per_s"]
        for figure, base in (("versioned_put_ops", "put_ops"), ("list_versions_per_s", "list_keys_per_s")):
            if figure in self.figures and self.figures.get(base):
                self.figures[figure + "_vs_unversioned"] = self.figures[figure] / self.figures[base]
        log(f"  {self.server.name}: versioned PUT {self.figures.get('versioned_put_ops', 0):8.0f} ops/s, "
            f"ListObjectVersions {self.figures.get('list_versions_per_s', 0):8.0f} versions/s")

    def mibs(self, key: str, fn) -> None:
        value = self.attempt(key, fn)
        if value is not None:
            self.figures[key] = value
            log(f"  {self.server.name}: {key:<14} {value:8.1f} MiB/s")

    def run(self, measure_rss: bool) -> dict:
        p, ep = self.plan, self.ep
        if self.attempt("create_bucket", lambda: workloads.create_bucket(ep, BUCKET)) is None \
                and "create_bucket" in self.errors:
            return self.result()
        audit = self.server.workdir / "data" / "audit"
        before = _tree_bytes(audit)
        for op in ("PUT", "GET", "HEAD", "DELETE"):
            self.small(op, "small/", p.ops, op.lower())
        if self.server.name.startswith("vallum") and before:     # issue 17: what the audit log grows by
            self.figures["audit_bytes_per_request"] = (_tree_bytes(audit) - before) / (4 * p.ops)
        if self.server.name == "vallum" and p.stages:
            self.stage_budget()
        if self.server.name == "vallum" and self.iam_statements > 0:
            self.policy_cost(self.iam_statements)
        self.small("PUT", "list/", p.list_keys, "list_create")
        if "list_create" not in self.errors:
            listed = self.attempt("list", lambda: workloads.listing(
                ep, BUCKET, "list/", p.list_keys, p.list_repeats))
            if listed is not None:
                self.details["list"] = listed
                self.figures["list_keys_per_s"] = listed["keys_per_s"]
                log(f"  {self.server.name}: list        {listed['keys_per_s']:8.0f} keys/s")
        if self.server.name == "vallum":
            self.versioned()
        size = p.big_size
        self.mibs("put_big_mibs", lambda: workloads.put_stream(ep, BUCKET, "big/single", size, self.block))
        if "put_big_mibs" in self.figures:
            self.mibs("get_big_mibs", lambda: workloads.get_stream(ep, BUCKET, "big/single", size))
        workloads.delete_object(ep, BUCKET, "big/single")
        self.mibs("put_mpu_mibs", lambda: workloads.multipart_put(
            ep, BUCKET, "big/multi", size, p.part_size, p.mpu_parallel, self.block))
        if "put_mpu_mibs" in self.figures:
            self.mibs("get_mpu_mibs", lambda: workloads.get_stream(ep, BUCKET, "big/multi", size))
        workloads.delete_object(ep, BUCKET, "big/multi")
        if measure_rss:
            rss = self.attempt("rss", lambda: workloads.rss_during_upload(
                ep, BUCKET, "big/rss", p.rss_size, self.server.pid, self.block))
            if rss is not None:
                self.details["rss"] = rss
                self.figures["rss_growth_mib"] = rss["growth_mib"]
                log(f"  {self.server.name}: rss growth  {rss['growth_mib']:8.1f} MiB "
                    f"(baseline {rss['baseline_mib']:.0f}, peak {rss['peak_mib']:.0f})")
            workloads.delete_object(ep, BUCKET, "big/rss")
        return self.result()

    def result(self) -> dict:
        return {"figures": self.figures, "details": self.details, "errors": self.errors,
                "endpoint": self.server.endpoint}


def run_target(name: str, base: Path, plan: Plan, args: argparse.Namespace,
               block: bytes) -> dict:
    log(f"starting {name}")
    started = time.monotonic()
    try:
        server = servers.start(name, base, workers=args.workers if name in servers.VALLUM_VARIANTS else None,
                               keep_files=args.keep)
    except Exception as exc:
        log(f"  {name}: could not start: {exc}")
        return {"figures": {}, "details": {}, "errors": {"start": f"{type(exc).__name__}: {exc}"}}
    try:
        log(f"  {name} ready at {server.endpoint} (pid {server.pid})")
        suite = Suite(server, plan, block)
        suite.iam_statements = args.iam_statements
        result = suite.run(measure_rss=name != servers.CEILING)
    finally:
        server.stop()
    result["seconds"] = time.monotonic() - started
    result["loadavg_after"] = os.getloadavg()
    log(f"  {name} done in {result['seconds']:.0f}s")
    return result


def _terminate(signum, _frame) -> None:
    """SIGTERM/SIGHUP behave like Ctrl-C so every `finally` (and server stop) runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    # Launched in the background by a script, SIGINT may arrive ignored; Ctrl-C must stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    atexit.register(servers.stop_all)
    base = Path(tempfile.mkdtemp(prefix="vallum-bench-", dir=args.tmp_dir))
    started = dt.datetime.now(dt.timezone.utc)
    load_at_start = os.getloadavg()  # other work on the box skews every figure; record it
    try:
        log(f"plan: {plan}")
        log(f"machine: disk write+fsync {human_size(plan.disk_size)} in {base}")
        limits = {"disk_fsync_mibs": machine.disk_write_fsync(base, plan.disk_size)}
        limits["loopback_tcp_mibs"] = machine.loopback_tcp(plan.loopback_size)
        log(f"  disk {limits['disk_fsync_mibs']:.0f} MiB/s, loopback "
            f"{limits['loopback_tcp_mibs']:.0f} MiB/s")
        block = os.urandom(MIB)
        columns = ([] if args.no_ceiling else [servers.CEILING]) + args.target_list
        results = {name: run_target(name, base, plan, args, block) for name in columns}
        variant_costs = None
        if not args.no_variants:
            vs = variant_settings(args, plan)
            log(f"variant costs: {', '.join(variants.VARIANTS)} together, {vs.rounds} interleaved "
                f"rounds of 4 KiB ops, {vs.big_rounds} of {human_size(vs.big_size)} PUT+GET")
            variant_costs = variants.run(base, vs, block, log, workers=args.workers,
                                         keep_files=args.keep)
            variant_costs["loadavg_after"] = os.getloadavg()
            log(f"  variant costs done in {variant_costs['seconds']:.0f}s")
        paired_costs = None
        if not args.no_paired:
            ps = paired_settings(args, plan)
            log(f"paired costs: {', '.join(p.key for p in paired.PAIRS)}, {ps.rounds} rounds of "
                f"{ps.ops} 4 KiB ops sent to both servers of a pair at once")
            paired_costs = paired.run(base, ps, log, workers=args.workers)
            log(f"  paired costs done in {paired_costs['seconds']:.0f}s")
    except KeyboardInterrupt:
        log("interrupted: stopping servers")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        servers.stop_all()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    figs = report.figures(human_size(plan.big_size), human_size(plan.rss_size), plan.list_keys,
                          human_size(plan.part_size), plan.mpu_parallel, args.iam_statements)
    peers = [t for t in args.target_list if t in servers.PEERS] if "vallum" in args.target_list else []
    ratio_table = report.ratios(results, figs, peers)
    header = ["workload", "unit", *[("client ceiling" if c == servers.CEILING else c)
                                    for c in columns], *ratio_table.keys()]
    report.print_table(f"Vallum benchmark{' (quick)' if args.quick else ''} — {started:%Y-%m-%d %H:%M} UTC",
                       header, report.rows(results, figs, columns, ratio_table), args.plain)
    stage_table = results.get("vallum", {}).get("details", {}).get("stages")
    if stage_table:
        report.print_table("Vallum server CPU per 4 KiB request by stage (py-spy samples x CPU "
                           "per request of the same batch)", report.stage_header(stage_table),
                           report.stage_rows(stage_table), args.plain)
    report.print_table("Machine limits (same run)", ["limit", "unit", "value"], [
        ["sequential write + fsync (1 MiB chunks)", "MiB/s", f"{limits['disk_fsync_mibs']:,.0f}"],
        ["loopback TCP, one connection", "MiB/s", f"{limits['loopback_tcp_mibs']:,.0f}"],
    ], args.plain)
    if variant_costs is not None:
        vs = variant_costs["settings"]
        report.print_table(
            f"Variant costs (same run): servers side by side, {vs['rounds']} interleaved rounds "
            f"of {vs['ops']} ops ({vs['big_rounds']} of big PUT/GET); ratio = variant/base, "
            "median of rounds; cost = 1 - ratio; CPU = server CPU s per request",
            report.VARIANT_HEADER,
            report.variant_rows(variant_costs["comparisons"], human_size(vs["big_size"])),
            args.plain)
    if paired_costs is not None:
        ps = paired_costs["settings"]
        report.print_table(
            f"Paired costs (same run): both servers of a pair loaded at once, {ps['rounds']} "
            f"rounds of {ps['ops']} ops each, fresh servers every round; CPU = server CPU s "
            "per request, ratio = variant/base, median of rounds; cost = 1 - 1/ratio",
            report.PAIRED_HEADER, report.paired_rows(paired_costs["comparisons"]), args.plain)
    compute_figs = None
    if args.compute:               # optional section: its own server, after the S3 targets
        from bench import compute
        log("compute: tiny jobs, array job, event latency, then Ray (bench.compute)")
        compute_figs = compute.run(100 if args.quick else 300, 200 if args.quick else 1000, log,
                                   ray=not args.no_ray)
    failures = {t: r["errors"] for t, r in results.items() if r.get("errors")}
    if variant_costs is not None and variant_costs["errors"]:
        failures["variants"] = variant_costs["errors"]
    if paired_costs is not None and paired_costs["errors"]:
        failures["paired"] = paired_costs["errors"]
    for target, errs in failures.items():
        for name, msg in errs.items():
            print(f"! {target} {name}: {msg}")
    out = Path(args.out) if args.out else RESULTS_DIR / f"bench-{started:%Y%m%d-%H%M%S}.json"
    report.save_json(out, {
        "started_utc": started.isoformat(), "quick": args.quick,
        "host": {**machine.describe(), "python": platform.python_version(),
                 "loadavg_at_start": load_at_start,
                 "platform": platform.platform()},
        "plan": asdict(plan), "vallum_workers": args.workers,
        "machine": limits, "results": results, "ratios": ratio_table,
        "figures": [asdict(f) for f in figs], "compute": compute_figs,
        "variants": variant_costs, "paired": paired_costs,
    })
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
