"""Turn the per-target figures into the printed table and the JSON document."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.stats import ratio


@dataclass(frozen=True)
class Figure:
    """One reported number: its key in the results, how to label it, and its direction."""

    key: str
    label: str
    unit: str
    higher_is_better: bool


def figures(big: str, rss: str, list_keys: int, part: str, parallel: int,
            iam_statements: int = 50) -> list[Figure]:
    """Every figure in report order; labels carry the sizes actually used in this run."""
    out = []
    for op in ("put", "get", "head", "delete"):
        name = f"4 KiB {op.upper()}"
        out += [Figure(f"{op}_ops", name, "ops/s", True),
                Figure(f"{op}_p50_ms", f"{name} p50", "ms", False),
                Figure(f"{op}_p99_ms", f"{name} p99", "ms", False),
                Figure(f"{op}_server_us", f"{name} server CPU per request", "us", False),
                Figure(f"{op}_client_us", f"{name} client CPU per request", "us", False)]
    out += [
        Figure("iam_root_get_ops", "4 KiB GET by root (IAM user's bucket)", "ops/s", True),
        Figure("iam_get_ops", f"4 KiB GET by IAM user ({iam_statements}-statement policy)", "ops/s", True),
        Figure("iam_policy_cost_pct", "policy-check cost: 1 - IAM/root GET", "%", False),
        Figure("list_create_ops", f"create {list_keys} keys (4 KiB PUT)", "ops/s", True),
        Figure("list_keys_per_s", f"ListObjectsV2 {list_keys} keys, pages of 1000", "keys/s", True),
        Figure("versioned_put_ops", "4 KiB PUT, new versions of hot keys", "ops/s", True),
        Figure("versioned_put_ops_vs_unversioned", "  ... / unversioned 4 KiB PUT", "x", True),
        Figure("list_versions_per_s", "ListObjectVersions, pages of 1000", "versions/s", True),
        Figure("list_versions_per_s_vs_unversioned", "  ... / unversioned listing", "x", True),
        Figure("put_big_mibs", f"{big} single PUT", "MiB/s", True),
        Figure("get_big_mibs", f"{big} single GET", "MiB/s", True),
        Figure("put_mpu_mibs", f"{big} multipart PUT ({part} parts x{parallel})", "MiB/s", True),
        Figure("get_mpu_mibs", f"{big} multipart object GET", "MiB/s", True),
        Figure("rss_growth_mib", f"server RSS growth during {rss} PUT", "MiB", False),
        Figure("audit_bytes_per_request", "audit log growth per 4 KiB request", "bytes", False),
    ]
    return out


def ratios(results: dict[str, dict], figs: list[Figure], peers: list[str]) -> dict[str, dict]:
    """{'vallum/moto': {figure: ratio or None}} for every peer that ran alongside Vallum, and
    'vallum/best': the ratio to whichever peer did best on that figure."""
    own = results.get("vallum", {}).get("figures", {})
    out = {}
    for peer in peers:
        theirs = results.get(peer, {}).get("figures", {})
        out[f"vallum/{peer}"] = {f.key: ratio(own.get(f.key), theirs.get(f.key)) for f in figs}
    if len(peers) > 1:
        best: dict[str, float | None] = {}
        for f in figs:
            values = [v for p in peers
                      if (v := results.get(p, {}).get("figures", {}).get(f.key)) is not None]
            top = (max if f.higher_is_better else min)(values) if values else None
            best[f.key] = ratio(own.get(f.key), top)
        out["vallum/best"] = best
    upstream = results.get("vallum-upstream", {}).get("figures", {})
    weed = results.get("seaweedfs", {}).get("figures", {})
    if upstream and weed:           # issue 19: the gateway in front of SeaweedFS vs SeaweedFS
        out["vallum-upstream/seaweedfs"] = {f.key: ratio(upstream.get(f.key), weed.get(f.key))
                                            for f in figs}
    return out


STAGE_OPS = ("PUT", "GET", "HEAD", "DELETE")


def stage_rows(stage_table: dict[str, dict]) -> list[list[str]]:
    """Rows of the per-stage CPU budget: one per stage, microseconds per request per op."""
    from bench.stages import STAGES
    ops = [op for op in STAGE_OPS if op in stage_table]
    body = []
    for stage in STAGES:
        cells = [stage_table[op]["budget_us"].get(stage) for op in ops]
        if any(c for c in cells):
            body.append([stage, "us ↓", *[_fmt(c) if c else "-" for c in cells]])
    body.append(["total", "us ↓", *[_fmt(sum(stage_table[op]["budget_us"].values())) for op in ops]])
    return body


def stage_header(stage_table: dict[str, dict]) -> list[str]:
    return ["stage", "unit", *[op for op in STAGE_OPS if op in stage_table]]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if 0 < abs(value) < 0.01:
        return "<0.01"  # e.g. an RSS ratio against a peer that grew by gigabytes
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def rows(results: dict[str, dict], figs: list[Figure], columns: list[str],
         ratio_table: dict[str, dict]) -> list[list[str]]:
    """Table body: label, unit (with direction), one cell per target, one per ratio."""
    body = []
    for f in figs:
        unit = f"{f.unit} {'↑' if f.higher_is_better else '↓'}"
        cells = [_fmt(results.get(t, {}).get("figures", {}).get(f.key)) for t in columns]
        rcells = [_fmt(r.get(f.key)) for r in ratio_table.values()]
        body.append([f.label, unit, *cells, *rcells])
    return body


def print_table(title: str, header: list[str], body: list[list[str]], plain: bool) -> None:
    """Rich table when rich is importable, not refused and printing to a terminal; aligned
    plain text otherwise (rich squeezes a wide table into 80 columns in a log file)."""
    if not plain and not sys.stdout.isatty():
        plain = True
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if not plain:
        table = Table(title=title)
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i < 2 else "right")
        for row in body:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    print(title)
    for r in [header, *body]:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))


VARIANT_HEADER = ["feature (variant / base)", "workload", "base", "variant", "ratio",
                  "min-max", "cost", "CPU/req base", "CPU/req variant", "CPU cost", "target",
                  "met (ops, CPU)"]


def variant_label(op: str, big: str) -> str:
    """'PUT' -> '4 KiB PUT', 'GET_BIG' -> '1 GiB single GET' (the sizes actually run)."""
    if op.endswith("_BIG"):
        return f"{big} single {op[:-4]}"
    return f"4 KiB {op}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _cpu(seconds: float | None) -> str:
    """CPU per request with its unit: microseconds for small ops, seconds for a 1 GiB one."""
    if seconds is None:
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def _met(cost: float | None, target: float | None) -> str:
    if cost is None or target is None:
        return "-"
    return "yes" if round(cost, 1) <= target else "no"   # judged on the figure printed


def variant_rows(comparisons: dict[str, dict], big: str) -> list[list[str]]:
    """The variant-costs table: per feature and op, median ratio variant/base with its
    min-max over the rounds, cost = 1 - ratio, the same from server CPU per request,
    and the issue's budget for that cost."""
    body = []
    for key, comp in comparisons.items():
        for op, s in comp["ops"].items():
            unit = " MiB/s" if op.endswith("_BIG") else " ops/s"
            target = s.get("target_pct")
            body.append([
                f"{comp['what']}: {key}", variant_label(op, big),
                _fmt(s["base_rate"]) + unit, _fmt(s["variant_rate"]) + unit,
                f"{s['ratio']:.3f}", f"{s['ratio_min']:.2f}-{s['ratio_max']:.2f}",
                _pct(s["cost_pct"]), _cpu(s.get("base_cpu_per_req")),
                _cpu(s.get("variant_cpu_per_req")), _pct(s.get("cpu_cost_pct")),
                "-" if target is None else f"<= {target:.0f}%",
                "-" if target is None else
                f"{_met(s['cost_pct'], target)}, {_met(s.get('cpu_cost_pct'), target)}",
            ])
    return body


PAIRED_HEADER = ["feature (variant / base)", "workload", "CPU/req base", "CPU/req variant",
                 "CPU ratio", "min-max", "cost", "p50 latency ratio", "target", "met"]


def paired_rows(comparisons: dict[str, dict]) -> list[list[str]]:
    """The paired-costs table: per pair and op, the median CPU-per-request ratio with its
    min-max over the rounds, the cost it implies for a CPU-bound gateway, the median
    ratio of client-side median latencies, and the issue's budget."""
    body = []
    for key, comp in comparisons.items():
        for op, s in comp["ops"].items():
            target = s.get("target_pct")
            body.append([
                f"{comp['what']}: {key}", variant_label(op, ""),
                _cpu(s["base_cpu_per_req"]), _cpu(s["variant_cpu_per_req"]),
                f"{s['cpu_ratio']:.3f}", f"{s['cpu_ratio_min']:.2f}-{s['cpu_ratio_max']:.2f}",
                _pct(s["cost_pct"]), f"{s['p50_ratio']:.3f}",
                "-" if target is None else f"<= {target:.0f}%", _met(s["cost_pct"], target),
            ])
    return body


def save_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def _markdown(header: list[str], body: list[list[str]]) -> str:
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, align, *body])


def markdown(doc: dict) -> str:
    """The tables of a saved run (``--out`` JSON) as Markdown: what docs/benchmarks.md shows."""
    figs = [Figure(**f) for f in doc["figures"]]
    results, ratio_table = doc["results"], doc["ratios"]
    columns = list(results)
    header = ["workload", "unit", *[("client ceiling" if c == "ceiling" else c) for c in columns],
              *ratio_table]
    body = [r for r in rows(results, figs, columns, ratio_table) if any(c != "-" for c in r[2:])]
    parts = [_markdown(header, body)]
    stage_table = results.get("vallum", {}).get("details", {}).get("stages")
    if stage_table:
        parts.append(_markdown(stage_header(stage_table), stage_rows(stage_table)))
    if doc.get("variants"):
        big = doc["variants"]["settings"].get("big_size")
        from bench.stats import human_size
        parts.append(_markdown(VARIANT_HEADER, variant_rows(doc["variants"]["comparisons"],
                                                            human_size(big) if big else "big")))
    if doc.get("paired"):
        parts.append(_markdown(PAIRED_HEADER, paired_rows(doc["paired"]["comparisons"])))
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":    # python -m bench.report bench/results/latest.json
    print(markdown(json.loads(Path(sys.argv[1]).read_text())), end="")
