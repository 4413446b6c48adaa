"""`vallum operator status` says the mode the gateway really applies; `vallum operator
mode` takes account names and ids and refuses unknown accounts (issue 16)."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from vallum.cli.main import app
from vallum.iam.directory import Directory
from vallum.iam.sqlstore import SQLiteIAMStore
from vallum.operator import gateway, journal
from vallum.security.crypto import primitives as crypto


def status(tmp_path, **env):
    r = CliRunner().invoke(app, ["operator", "status", "--data-dir", str(tmp_path), "--json"], env=env)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_status_reports_the_running_gateways_mode_not_this_shells(tmp_path):
    assert status(tmp_path, VALLUM_OPERATOR="contain")["default_mode"] == "off"   # no gateway
    gateway.Hook(tmp_path, None, "observe")                  # a gateway process in observe
    doc = status(tmp_path, VALLUM_OPERATOR="")
    assert doc["default_mode"] == "observe" and "VALLUM_OPERATOR" in doc["default_mode_source"]
    r = CliRunner().invoke(app, ["operator", "mode", "default", "contain", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0
    assert status(tmp_path)["default_mode"] == "contain"       # modes.json wins, as in the gateway


def test_a_gateway_that_exited_is_not_reported(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    journal.announce(tmp_path, int(dead.stdout), "contain")
    assert status(tmp_path)["default_mode"] == "off"


def make_account(tmp_path, name):
    store = SQLiteIAMStore(tmp_path / "meta.sqlite3")
    store.open()
    try:
        account, _ = Directory(store, crypto.new_key()).create_account(name)
    finally:
        store.close()
    return account["id"]


def test_mode_takes_names_and_ids_and_refuses_unknown_accounts(tmp_path):
    acct = make_account(tmp_path, "research")
    runner = CliRunner()
    r = runner.invoke(app, ["operator", "mode", "research", "contain", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert journal.load_modes(tmp_path)["accounts"] == {acct: "contain"}     # stored by id
    r = runner.invoke(app, ["operator", "mode", acct, "observe", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and journal.load_modes(tmp_path)["accounts"] == {acct: "observe"}
    r = runner.invoke(app, ["operator", "mode", "nosuch", "contain", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "no account" in r.output
    assert journal.load_modes(tmp_path)["accounts"] == {acct: "observe"}
