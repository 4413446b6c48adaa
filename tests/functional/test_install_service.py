"""The whole offline path as a site runs it: build the real bundle (Vallum's wheel and every
run-time dependency), install it with no network, as a service (system user, data directory,
config, systemd unit), start the installed `vallum` as that user inside a network namespace
of its own, and use it with boto3 there."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.support.backup import vallum

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("useradd"),
    reason="the service install creates a system user: root with unshare and useradd (CI)")

SMOKE = textwrap.dedent("""
    import os, subprocess, sys, time, urllib.request
    import boto3
    from botocore.config import Config
    port, ak, sk = sys.argv[1], os.environ["VALLUM_ROOT_ACCESS_KEY"], os.environ["VALLUM_ROOT_SECRET_KEY"]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = subprocess.Popen(sys.argv[2:] + ["--address", f"127.0.0.1:{port}"],
                              stdout=open(os.environ["SMOKE_LOG"], "ab"), stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        else:
            raise SystemExit("not ready")
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id=ak, aws_secret_access_key=sk,
                          config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="smoke")
        s3.put_object(Bucket="smoke", Key="hello.txt", Body=b"offline and served")
        body = s3.get_object(Bucket="smoke", Key="hello.txt")["Body"].read()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="smoke")["Contents"]]
        print("SMOKE", body.decode(), keys)
    finally:
        server.terminate()
        server.wait(timeout=60)
""")


@pytest.fixture(scope="module")
def site():
    """A bundle built from this source tree and installed as a service under a fresh root
    (0755, so the service user can reach its prefix); the user is removed afterwards."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python, "a system python3 (3.11) is needed: the service user cannot enter /root"
    base = Path(tempfile.mkdtemp(prefix="vallum-install-"))
    os.chmod(base, 0o755)
    user = "vt" + secrets.token_hex(4)
    try:
        lock = Path(__file__).resolve().parents[2] / "requirements.lock"
        built = vallum("bundle", "build", "--out", str(base / "bundle"), "--lock", str(lock),
                       "--signing-key", str(base / "signing.key"), passphrase=None, timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        paths = {"prefix": base / "opt", "data": base / "data", "conf": base / "etc",
                 "units": base / "units"}
        cmd = ["unshare", "-n", "sh", str(base / "bundle" / "install.sh"),
               "--public-key", str(base / "signing.key.pub.pem"), "--prefix", str(paths["prefix"]),
               "--service", "--user", user, "--data-dir", str(paths["data"]),
               "--config-dir", str(paths["conf"]), "--unit-dir", str(paths["units"])]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHON": python})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        yield {**paths, "user": user, "base": base, "install": done}
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_service_layout(site):
    entry = pwd.getpwnam(site["user"])
    assert entry.pw_uid < 1000 and entry.pw_shell == "/usr/sbin/nologin"      # a system user
    data = site["data"].stat()
    assert (data.st_uid, data.st_mode & 0o777) == (entry.pw_uid, 0o700)
    assert site["prefix"].stat().st_uid == 0                                   # it cannot change its code
    assert site["conf"].stat().st_uid == 0
    unit = (site["units"] / "vallum.service").read_text()
    assert f"User={site['user']}" in unit
    assert f"ExecStart={site['prefix']}/bin/vallum serve --config {site['conf']}/vallum.toml" in unit
    assert f"ReadWritePaths={site['data']}" in unit and "ProtectSystem=strict" in unit
    assert f'data_dir = "{site["data"]}"' in (site["conf"] / "vallum.toml").read_text()
    # The scale-out engines' drivers came with it: --meta postgresql:// and --blobs s3://
    # can be turned on without a new bundle.
    engines = subprocess.run([str(site["prefix"] / "bin" / "python"), "-c",
                              "import psycopg, psycopg_pool, boto3"], capture_output=True, text=True)
    assert engines.returncode == 0, engines.stderr


def test_installed_gateway_serves_with_no_network(site, tmp_path):
    """The installed console script, as the service user, in a namespace whose only
    interface is loopback: start, then a bucket, a PUT, a GET and a listing."""
    entry = pwd.getpwnam(site["user"])
    script = site["base"] / "smoke.py"
    script.write_text(SMOKE)
    log = tmp_path / "server.log"
    server = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
              "--inh-caps=-all", "--", str(site["prefix"] / "bin" / "vallum"), "serve",
              "--config", str(site["conf"] / "vallum.toml")]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SMOKE_LOG": str(log), "HOME": str(site["data"]),
           "VALLUM_ROOT_ACCESS_KEY": "SMOKEADMIN0000000001", "VALLUM_ROOT_SECRET_KEY": secrets.token_hex(20)}
    done = subprocess.run(["unshare", "-n", sys.executable, str(script), "9000", *server],
                          capture_output=True, text=True, timeout=300, env=env)
    tail = log.read_text()[-3000:] if log.exists() else ""
    assert done.returncode == 0, done.stdout + done.stderr[-3000:] + tail
    assert "SMOKE offline and served ['hello.txt']" in done.stdout
    owned = {p.stat().st_uid for p in site["data"].rglob("*")}
    assert owned == {entry.pw_uid}, owned                  # everything it wrote is its own


def test_service_options_are_checked(site):
    """Bad option values stop the installer before it touches anything."""
    bundle, pub = site["base"] / "bundle", site["base"] / "signing.key.pub.pem"
    for extra in (["--prefix", "relative/dir"], ["--user", "Root;rm"], ["--data-dir", "/srv/a b"],
                  ["--prefix", str(site["base"] / "x$(id)")], ["--user"]):
        done = subprocess.run(["sh", str(bundle / "install.sh"), "--public-key", str(pub), *extra],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (extra, done.stdout, done.stderr)
    assert not (site["base"] / "x$(id)").exists()
