"""`vallum operator`: status, alerts, release, mode, forecast, simulate, evaluate."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import typer

from vallum.operator import journal

app = typer.Typer(help="The AI operator: alerts, containment, capacity forecasts, evaluation.",
                  no_args_is_help=True, add_completion=False)

DataDir = typer.Option(None, "--data-dir", help="Gateway data directory [env VALLUM_DATA_DIR; default ./vallum-data]")


def _data_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("VALLUM_DATA_DIR") or "./vallum-data").resolve()


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _state(d: Path) -> dict[str, dict]:
    """Entities currently contained, from the action journal (PostgreSQL's, shared by every
    host, when the metadata is there)."""
    from vallum.meta.factory import configured_url
    url = configured_url()
    if url:
        from vallum.operator.pg_state import read_actions
        actions = read_actions(url)
    else:
        actions, _ = journal.read(journal.directory(d) / journal.ACTIONS)
    now = time.time()
    state: dict[str, dict] = {}
    for a in actions:
        if a["action"] == "release":
            state.pop(a["entity"], None)
        elif a["action"] == "suspend" or a["ts"] > now - 1800:
            state[a["entity"]] = a
    return state


def effective_default(d: Path) -> tuple[str, str]:
    """(the default mode the running gateways apply, where it comes from). The gateway
    applies modes.json's default over its own VALLUM_OPERATOR; with no gateway running
    the operator (none, or VALLUM_OPERATOR unset there) it is off, whatever this
    shell's environment says."""
    gateways = journal.running_gateways(d)
    if not gateways:
        return "off", "no running gateway has the operator on (VALLUM_OPERATOR=observe|contain)"
    pids = ", ".join(str(p) for p in sorted(gateways))
    saved = journal.load_modes(d)["default"]
    if saved:
        return saved, f"set by `vallum operator mode default`; gateway pid {pids}"
    env = sorted(set(gateways.values()))
    return "/".join(env), f"VALLUM_OPERATOR of gateway pid {pids}"


@app.command()
def status(data_dir: str = DataDir, as_json: bool = typer.Option(False, "--json")) -> None:
    """Modes, alert counts and what is contained right now."""
    d = _data_dir(data_dir)
    alerts, _ = journal.read(journal.directory(d) / journal.ALERTS)
    modes = journal.load_modes(d)
    counts: dict[str, int] = {}
    for a in alerts:
        counts[a["kind"]] = counts.get(a["kind"], 0) + 1
    mode, source = effective_default(d)
    from vallum.operator.shared_state import remembered
    doc = {"default_mode": mode, "default_mode_source": source,
           "account_modes": modes["accounts"], "alerts": counts, "contained": _state(d),
           "baselines": remembered(journal.directory(d))}
    if as_json:
        typer.echo(json.dumps(doc, indent=1, sort_keys=True))
        return
    typer.echo(f"default mode: {mode} ({source})")
    for acct, mode in sorted(modes["accounts"].items()):
        typer.echo(f"  account {acct}: {mode}")
    typer.echo(f"alerts: {sum(counts.values())} " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    typer.echo(f"baselines on disk: {doc['baselines']} principals")
    for entity, a in _state(d).items():
        typer.echo(f"contained: {entity} {a['action']} since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(a['ts']))} ({a['kind']})")


@app.command()
def alerts(data_dir: str = DataDir, kind: str = typer.Option(None, "--kind"),
           limit: int = typer.Option(50, "--limit"), as_json: bool = typer.Option(False, "--json")) -> None:
    """The most recent alerts, newest last."""
    records, _ = journal.read(journal.directory(_data_dir(data_dir)) / journal.ALERTS)
    records = [r for r in records if kind is None or r["kind"] == kind][-limit:]
    for r in records:
        if as_json:
            typer.echo(json.dumps(r, sort_keys=True))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["ts"]))
            typer.echo(f"{when} {r['kind']:<20} score {r['score']:<6} {r['reason']}")


@app.command()
def release(entity: str = typer.Argument(..., help="Access key id or source address"),
            data_dir: str = DataDir, reason: str = typer.Option(..., "--reason", help="Why (audited)"),
            by: str = typer.Option(None, "--by", help="Who releases [default: $USER]")) -> None:
    """Lift a suspension, throttle or address block, on every gateway (audited)."""
    d = _data_dir(data_dir)
    if entity not in _state(d):
        _fail(f"{entity} is not contained")
    who = by or os.environ.get("USER", "admin")
    record = {"ts": time.time(), "action": "release", "entity": entity,
              "entity_type": "address" if "." in entity or ":" in entity else "principal",
              "reason": reason, "account": "", "kind": "", "by": who, "pid": -1}
    journal.append(journal.directory(d) / journal.ACTIONS, record)
    from vallum.meta.factory import configured_url
    if configured_url():
        from vallum.operator.pg_state import journal_action
        journal_action(str(configured_url()), record)     # every host's gateways apply it
    if "." not in entity and ":" not in entity:
        from vallum.iam.service import store_for
        from vallum.iam.store import Op
        from vallum.meta.factory import configured_url
        store = store_for(d / "meta.sqlite3", configured_url())
        store.open()
        try:
            if store.get_key(entity) is not None:
                store.apply([Op("key_status", value=(entity, "Active"))])
        finally:
            store.close()
    typer.echo(f"released {entity}")


def _account_id(d: Path, ref: str) -> str | None:
    """The id of the account named or numbered ``ref`` in this data directory's IAM
    store; None when there is no such account (or no store yet)."""
    from vallum.iam.service import store_for
    from vallum.meta.factory import configured_url
    path, url = d / "meta.sqlite3", configured_url()
    if not url and not path.exists():
        return None
    store = store_for(path, url)
    store.open()
    try:
        found = store.get("account", id=ref)
        if found is None:
            found = next((a for a in store.scan("account") if a.get("name") == ref), None)
        return None if found is None else str(found["id"])
    finally:
        store.close()


@app.command()
def mode(account: str = typer.Argument(..., help="Account name or id, or 'default'"),
         value: str = typer.Argument(..., help="off | observe | contain"), data_dir: str = DataDir) -> None:
    """Set the operator mode of one account (by name or id) or the default; an unknown
    account is refused (exit 2), never recorded as a mode nothing would apply."""
    if value not in journal.MODES_ALLOWED:
        _fail(f"mode must be one of {', '.join(journal.MODES_ALLOWED)}", 2)
    d = _data_dir(data_dir)
    modes = journal.load_modes(d)
    if account == "default":
        modes["default"] = value
        label = "default"
    else:
        account_id = _account_id(d, account)
        if account_id is None:
            _fail(f"no account {account!r} in {d} (give an account name or id, or 'default')", 2)
            return
        modes["accounts"][account_id] = value
        label = account_id if account_id == account else f"{account} ({account_id})"
    journal.save_modes(d, modes)
    typer.echo(f"{label}: {value}")


async def _usage(d: Path) -> dict[str, int]:
    """Bytes each bucket takes on disk: every version and the parts of uploads in progress,
    from the usage the metadata store keeps (docs/quotas.md), one read per bucket."""
    from vallum.meta.factory import configured_url, meta_store
    meta = meta_store(d / "meta.sqlite3", configured_url())
    await meta.open()
    try:
        out: dict[str, int] = {}
        for b in await meta.list_buckets():
            usage = await meta.bucket_usage(b.name)
            out[b.name] = usage.bytes + usage.pending
        return out
    finally:
        await meta.close()


@app.command()
def forecast(data_dir: str = DataDir,
             sample: bool = typer.Option(False, "--sample", help="Record current usage first"),
             synthetic: int = typer.Option(None, "--synthetic", help="Forecast a synthetic curve (seed)"),
             capacity: float = typer.Option(None, "--capacity", help="Bytes [default: the data disk's size]"),
             horizon: int = typer.Option(120, "--horizon", help="Days ahead"),
             plot: str = typer.Option(None, "--plot", help="Write a PNG here"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Forecast stored bytes (seasonal model) and the days until the disk is full."""
    from vallum.operator import forecast as fc
    if synthetic is not None:
        history = fc.synthetic_growth(synthetic, 56)
        cap = capacity or history[-1] * 1.5
        title = f"synthetic curve (seed {synthetic})"
    else:
        d = _data_dir(data_dir)
        path = journal.directory(d) / "usage.jsonl"
        if sample:
            usage = asyncio.run(_usage(d))
            journal.append(path, {"ts": time.time(), "buckets": usage, "total": sum(usage.values())})
        records, _ = journal.read(path)
        if not records:
            _fail("no usage history yet: run with --sample (daily, e.g. from cron)")
        by_day: dict[int, float] = {}
        for r in records:
            by_day[int(r["ts"] // 86400)] = r["total"]
        history = [by_day[k] for k in sorted(by_day)]
        disk = shutil.disk_usage(d)
        cap = capacity or float(disk.used + disk.free)
        title = f"stored bytes in {d}"
    result = fc.forecast(history, cap, horizon)
    if plot:
        fc.plot(result, plot, title)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1))
        return
    full = "not within the horizon" if result.days_until_full is None else f"{result.days_until_full:.1f} days"
    typer.echo(f"model: {result.model}; last {history[-1] / 2**30:.2f} GiB of {cap / 2**30:.2f} GiB; "
               f"full in: {full}")
    if plot:
        typer.echo(f"plot: {plot}")


@app.command()
def simulate(out: str = typer.Option(..., "--out", help="Directory for events.jsonl + incidents.json"),
             seed: int = typer.Option(101, "--seed"), principals: int = typer.Option(120, "--principals"),
             days: int = typer.Option(7, "--days"), warmup: int = typer.Option(3, "--warmup-days")) -> None:
    """Generate multi-day traffic with labelled injected incidents."""
    from vallum.operator import simulate as sim
    if days <= warmup:
        _fail("--days must exceed --warmup-days", 2)
    trace = sim.generate(seed, principals, days, warmup)
    sim.save(trace, Path(out))
    typer.echo(f"{len(trace.events)} events, {len(trace.incidents)} incidents -> {out}")


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        _fail("--seeds takes comma-separated integers", 2)
        return []


@app.command()
def evaluate(trace: str = typer.Option(None, "--trace", help="A directory written by `simulate`"),
             seeds: str = typer.Option(None, "--seeds", help="Generate and replay these seeds [default: the reporting seeds]"),
             principals: int = typer.Option(None, "--principals", help="[default: 120; --heldout 30; --heldout2 36]"),
             days: int = typer.Option(None, "--days", help="[default: 7; --heldout 6; --heldout2 7]"),
             warmup: int = typer.Option(None, "--warmup-days", help="[default: 3; --heldout 4; --heldout2 5]"),
             capacity_eval: bool = typer.Option(False, "--forecast", help="Also report forecast MAPE"),
             scaling_eval: bool = typer.Option(False, "--scaling", help="Also compare pool sizing policies"),
             anomaly: bool = typer.Option(True, "--anomaly/--no-anomaly", help="Run the unsupervised model too"),
             model: str = typer.Option("robust", "--model", help="Unsupervised model: robust | hst"),
             heldout: bool = typer.Option(False, "--heldout", help="Replay the frozen held-out scenarios "
                                          "(heldout.py) instead: recall, time to contain, fraction leaked"),
             heldout2: bool = typer.Option(False, "--heldout2", help="Replay the second frozen held-out "
                                           "family (heldout2.py), scored the same way"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Replay traffic through the real detectors; precision, recall, F1, time to detect."""
    from vallum.operator import evaluation as ev
    from vallum.operator import simulate as sim
    if heldout or heldout2:
        from vallum.operator import heldout as ho
        from vallum.operator import heldout2 as ho2
        from vallum.operator import heldout_eval as he
        if trace or (heldout and heldout2):
            _fail("--heldout / --heldout2 generate their own traces: drop --trace, pick one", 2)
        days, warmup = days or (7 if heldout2 else 6), warmup or (5 if heldout2 else 4)
        if days <= warmup:
            _fail("--days must exceed --warmup-days", 2)
        if heldout2:
            held = ho2.run(_seeds(seeds) if seeds else list(ho2.HELDOUT2_SEEDS), principals or 36,
                           days, warmup)
        else:
            held = he.run(_seeds(seeds) if seeds else list(ho.HELDOUT_SEEDS), principals or 30,
                          days, warmup)
        typer.echo(json.dumps({"heldout": held.to_dict()}, indent=1) if as_json else he.table(held))
        return
    if model not in ("robust", "hst"):
        _fail("--model is robust or hst", 2)
    principals, days, warmup = principals or 120, days or 7, warmup or 3
    if trace:
        result = ev.replay(sim.load(Path(trace)), anomaly=anomaly, model=model)
        result.seeds = []
    else:
        chosen = _seeds(seeds) if seeds else list(ev.REPORTING_SEEDS)
        result = ev.run(chosen, principals, days, warmup, anomaly=anomaly, model=model)
    doc: dict[str, Any] = {"detection": result.to_dict()}
    if capacity_eval:
        from vallum.operator.forecast import evaluate_mape
        doc["forecast"] = evaluate_mape(list(range(1, 11)))
    if scaling_eval:
        from vallum.operator.scaling import compare
        doc["scaling"] = [r.to_dict() for r in compare(1, 14, fixed_sizes=(30, 45))]
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    typer.echo(ev.table(result))
    if "forecast" in doc:
        f = doc["forecast"]
        typer.echo(f"\nforecast MAPE over {f['horizon_days']} days: Holt-Winters {f['holt_winters_mape']}% "
                   f"(worst {f['holt_winters_max_mape']}%), straight line {f['linear_mape']}%")
    if "scaling" in doc:
        typer.echo("\n| pool | mean wait (s) | p95 wait (s) | worker-hours |\n|---|---:|---:|---:|")
        for r in doc["scaling"]:
            typer.echo(f"| {r['policy']} | {r['mean_wait_s']} | {r['p95_wait_s']} | {r['worker_hours']} |")
    sys.stdout.flush()
