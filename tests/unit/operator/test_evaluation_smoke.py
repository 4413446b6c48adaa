"""Smoke: `vallum operator simulate` then `evaluate` on a small seed the tuning never saw.

The thresholds below are what this seed actually achieves (every kind P = R = 1.0 with
2 incidents each, exfiltration detected in a median 25 s, both label climbs patient ones
found in about 11 minutes, no false quarantine;
docs/operator.md has the full figures): a regression in any detector, the simulator or
the scoring fails here.
"""

import json

from typer.testing import CliRunner

from vallum.cli.main import app
from vallum.operator.alerts import KINDS


def test_simulate_then_evaluate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "trace"
    r = runner.invoke(app, ["operator", "simulate", "--out", str(out), "--seed", "201",
                            "--principals", "20", "--days", "4", "--warmup-days", "3"])
    assert r.exit_code == 0, r.output
    assert (out / "events.jsonl").stat().st_size > 0
    r = runner.invoke(app, ["operator", "evaluate", "--trace", str(out), "--no-anomaly",
                                   "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)["detection"]
    kinds = doc["kinds"]
    for kind in KINDS:
        assert kinds[kind]["incidents"] >= 2, kind
        assert kinds[kind]["recall"] >= 0.9, (kind, kinds[kind])
        assert kinds[kind]["precision"] >= 0.9, (kind, kinds[kind])
        # A patient climb (a read or two a minute, both of this seed's) is judged over the
        # 15-minute climbing window; every other kind within two minutes.
        bound = 900 if kind == "label_climbing" else 120
        assert kinds[kind]["median_ttd_s"] < bound, (kind, kinds[kind])
    assert kinds["exfiltration"]["median_ttd_s"] < 60, kinds["exfiltration"]     # 25 s on this seed
    assert doc["false_quarantines"] == 0
    assert doc["false_suspensions_per_1000_principal_days"] == 0


def test_evaluate_rejects_bad_seeds():
    r = CliRunner().invoke(app, ["operator", "evaluate", "--seeds", "a,b"])
    assert r.exit_code == 2
