"""The offline bundle: built from a small subset lock (two pure-Python wheels, to keep the
suite fast), installed with the network unreachable, and refused when tampered with."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backup import cli
from vallum.ops import bundle as offline

LOCK = "defusedxml==0.7.1\nsix==1.17.0\n"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("bundle")
    (base / "small.lock").write_text(LOCK)
    out = cli("bundle", "build", "--out", str(base / "bundle"), "--lock", str(base / "small.lock"),
              "--signing-key", str(base / "signing.key"), "--no-project", passphrase=None)
    assert out.returncode == 0, out.stderr
    return base


def _install(bundle: Path, pub: Path, prefix: Path) -> subprocess.CompletedProcess:
    cmd = ["sh", str(bundle / "install.sh"), "--public-key", str(pub), "--prefix", str(prefix)]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        cmd = ["unshare", "-n", *cmd]                     # no network at all: only loopback, down
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})


def test_bundle_contents_are_pinned_and_described(made):
    bundle = made / "bundle"
    reqs = (bundle / "requirements.txt").read_text().splitlines()
    assert [r.split(" ")[0] for r in reqs] == ["defusedxml==0.7.1", "six==1.17.0"]
    assert all("--hash=sha256:" in r for r in reqs)
    import json
    sbom = json.loads((bundle / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    assert {c["purl"] for c in sbom["components"]} == {"pkg:pypi/defusedxml@0.7.1", "pkg:pypi/six@1.17.0"}
    assert (made / "signing.key").stat().st_mode & 0o777 == 0o600
    assert cli("bundle", "verify", str(bundle), "--public-key", str(made / "signing.key.pub.pem"),
               passphrase=None).returncode == 0


def test_installs_offline(made, tmp_path):
    done = _install(made / "bundle", made / "signing.key.pub.pem", tmp_path / "venv")
    assert done.returncode == 0, done.stdout + done.stderr
    check = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c",
                            "import six, defusedxml; print(six.__version__)"], capture_output=True, text=True)
    assert check.stdout.strip() == "1.17.0"


def _tampered(made, tmp_path, how: str) -> tuple[Path, Path]:
    bundle = tmp_path / "bundle"
    shutil.copytree(made / "bundle", bundle)
    pub = made / "signing.key.pub.pem"
    if how == "wheel":
        wheel = next((bundle / "wheels").glob("six-*.whl"))
        data = bytearray(wheel.read_bytes())
        data[100] ^= 1
        wheel.write_bytes(bytes(data))
    elif how == "sums":                                    # a new wheel hash, re-listed
        sums = (bundle / "SHA256SUMS").read_text()
        (bundle / "SHA256SUMS").write_text(sums.replace(sums[:64], "0" * 64, 1))
    elif how == "installer":
        with open(bundle / "install.sh", "a") as f:
            f.write("echo pwned\n")
    elif how == "extra-wheel":
        shutil.copy(next((bundle / "wheels").glob("six-*.whl")), bundle / "wheels" / "six-9.9.9-py3-none-any.whl")
    else:                                                  # another signer's key
        offline.signing_key(tmp_path / "other.key")
        pub = tmp_path / "other.key.pub.pem"
    return bundle, pub


@pytest.mark.parametrize("how", ["wheel", "sums", "installer", "extra-wheel", "other-key"],
                         ids=["wheel", "sums", "installer", "extra-wheel", "other-key"])
def test_tampered_bundle_is_refused(made, tmp_path, how):
    bundle, pub = _tampered(made, tmp_path, how)
    out = cli("bundle", "verify", str(bundle), "--public-key", str(pub), passphrase=None)
    assert out.returncode == 1, out.stdout
    if how == "extra-wheel":                               # not signed: the installer ignores it,
        assert "not covered by the signature" in out.stderr  # verify names it
        return
    done = _install(bundle, pub, tmp_path / "venv")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "refusing to install" in done.stderr
    assert not (tmp_path / "venv").exists()
