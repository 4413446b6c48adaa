"""`vallum spill evaluate` on the labelled corpus plus this machine's ordinary files:
recall 1.0 on every marked document (every format, every evasion), at most 0.1% false
refusals on the ordinary set (Debian copyright files, licences, Python sources, prose)."""

from __future__ import annotations

import glob
import re
import subprocess
import sys

import pytest

from tests.support import spill_corpus

ORDINARY = ["/usr/share/doc/*/copyright", "/usr/share/common-licenses/*", "/usr/lib/python3.11/*.py"]


def test_corpus_recall_and_false_refusals(tmp_path):
    if len(glob.glob(ORDINARY[0])) < 500:
        pytest.skip("this machine lacks the Debian copyright files of the ordinary set")
    manifest = spill_corpus.write(tmp_path)
    assert len(manifest) > 500
    args = [a for g in ORDINARY for a in ("--ordinary", g)]
    out = subprocess.run([sys.executable, "-m", "vallum", "spill", "evaluate", "--corpus", str(tmp_path), *args],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    figures = dict(re.findall(r"^(recall|precision|false refusals|ordinary documents):\s+([0-9.]+)", out, re.M))
    assert float(figures["recall"]) == 1.0, out
    assert float(figures["false refusals"]) <= 0.1, out          # percent
    assert int(figures["ordinary documents"]) >= 900, out            # 0.1% is then at most 0 or 1 file
    assert float(figures["precision"]) >= 0.99, out


def test_evaluate_needs_a_corpus_or_files():
    done = subprocess.run([sys.executable, "-m", "vallum", "spill", "evaluate"], capture_output=True, text=True)
    assert done.returncode == 2 and "--corpus" in done.stderr
