"""Precision and recall of the marking scanner on a labelled corpus (``vallum spill evaluate``).

A *marked* document is caught when the scan finds a label that dominates the banner it
carries (a bucket whose ceiling is below that banner refuses it). An *ordinary* document is
falsely refused when the scan finds any marking above the lowest level, or cannot scan it
whole (a bucket at the lowest level would refuse it).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vallum.security.mac.labels import DEFAULT_SCHEME, LabelError, parse
from vallum.security.spill.markings import MarkingScanner

CHUNK = 64 * 1024


@dataclass
class Report:
    marked: int = 0
    caught: int = 0
    ordinary: int = 0
    refused: int = 0
    missed: list[str] = field(default_factory=list)
    false_refusals: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.marked if self.marked else 1.0

    @property
    def precision(self) -> float:
        flagged = self.caught + self.refused
        return self.caught / flagged if flagged else 1.0

    @property
    def false_refusal_rate(self) -> float:
        return self.refused / self.ordinary if self.ordinary else 0.0

    def lines(self) -> list[str]:
        out = [f"marked documents:   {self.marked}, caught {self.caught}",
               f"ordinary documents: {self.ordinary}, refused {self.refused}",
               f"recall:             {self.recall:.4f}",
               f"precision:          {self.precision:.4f}",
               f"false refusals:     {100 * self.false_refusal_rate:.3f}%"]
        out += [f"missed: {m}" for m in self.missed[:50]]
        out += [f"falsely refused: {f}" for f in self.false_refusals[:50]]
        return out


def scan_file(path: Path):
    """(label or None, incomplete) for one file, streamed in chunks like an upload."""
    s = MarkingScanner(DEFAULT_SCHEME)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            s.feed(chunk)
    return s.finish(), s.incomplete


def evaluate(corpus: Path | None, ordinary_globs: Iterable[str] = ()) -> Report:
    """Scan ``corpus`` (marked/, ordinary/, manifest.json) and the extra ordinary files."""
    report = Report()
    ordinary: list[Path] = []
    if corpus is not None:
        manifest = json.loads((corpus / "manifest.json").read_text())
        for name, banner in sorted(manifest.items()):
            report.marked += 1
            found, _ = scan_file(corpus / "marked" / name)
            try:
                expected = parse(banner)
            except LabelError:
                raise ValueError(f"manifest: {name}: bad banner {banner!r}") from None
            if found is not None and found.dominates(expected):
                report.caught += 1
            else:
                report.missed.append(f"{name} (carries {banner}, found {found.banner() if found else 'none'})")
        ordinary += sorted(p for p in (corpus / "ordinary").rglob("*") if p.is_file())
    for pattern in ordinary_globs:
        ordinary += sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    lowest = parse(DEFAULT_SCHEME.lowest)
    for path in ordinary:
        report.ordinary += 1
        found, incomplete = scan_file(path)
        if incomplete or (found is not None and not lowest.dominates(found)):
            report.refused += 1
            report.false_refusals.append(f"{path} ({'incomplete' if incomplete else found.banner()})")
    return report
