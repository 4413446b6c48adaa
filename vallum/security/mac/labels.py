"""Classification labels: a lattice, and its banner / portion-mark text forms.

A label is the product of three orders, which is why dominance is a partial
order and every pair has a least upper bound (the label a copy or a multipart
object made from several sources must carry):

- a **level** from a configurable chain (default UNCLASSIFIED < CUI <
  CONFIDENTIAL < SECRET < TOP SECRET), compared by rank;
- a set of **compartments** (SCI control systems such as SI, TK, SI-G),
  compared by inclusion: more compartments is more restrictive;
- **dissemination**: a set of *controls* (ORCON, PROPIN, IMCON...: more is more
  restrictive) and a *release set* — the countries the data may go to. ``None``
  means no foreign-release restriction at all; NOFORN is the release set
  ``{USA}``; ``REL TO USA, GBR`` is ``{USA, GBR}``. A smaller release set is
  more restrictive, and the upper bound of two release sets is their
  intersection (``REL TO USA, GBR`` joined with NOFORN is NOFORN).

``a.dominates(b)`` means a is at least as restrictive as b in all three: a
clearance ``a`` may read data labelled ``b``.

Text forms (CAPCO style): banner ``TOP SECRET//SI/TK//REL TO USA, GBR``,
portion ``(TS//SI//REL TO USA, GBR)``, ``(S//NF)``, ``(U)``. Parsing accepts
either and any case; printing is canonical (sorted, upper case) so a label
survives ``format(parse(x))`` round trips.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

HOME_COUNTRY = "USA"


class LabelError(ValueError):
    """A label string is malformed or names an unknown level/control.
    The S3 layer answers it as InvalidArgument with this message."""


# Dissemination controls other than REL TO / NOFORN: canonical name -> abbreviations.
DEFAULT_CONTROLS: dict[str, tuple[str, ...]] = {
    "ORCON": ("OC",),
    "IMCON": ("IMC",),
    "PROPIN": ("PR",),
    "RELIDO": (),
    "FISA": (),
}
_NOFORN_NAMES = ("NOFORN", "NF")
_COMPARTMENT_RE = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")
_COUNTRY_RE = re.compile(r"[A-Z]{3}|[A-Z]{4}")   # ISO 3166 trigraphs, tetragraphs (FVEY, NATO)


@dataclass(frozen=True, eq=False)
class LevelScheme:
    """The ordered levels (lowest first) with their portion abbreviations.
    Compared and hashed by identity: build one per deployment and share it."""

    levels: tuple[tuple[str, str], ...] = (
        ("UNCLASSIFIED", "U"), ("CUI", "CUI"), ("CONFIDENTIAL", "C"),
        ("SECRET", "S"), ("TOP SECRET", "TS"))
    controls: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CONTROLS))

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("a level scheme needs at least one level")
        if len({name.upper() for name, _ in self.levels}) != len(self.levels):
            raise ValueError("duplicate level names")

    def levels_by_name(self) -> list[str]:
        return [name for name, _ in self.levels]

    def rank(self, level: str) -> int:
        for i, (name, abbrev) in enumerate(self.levels):
            if level == name or level == abbrev:
                return i
        raise LabelError(f"unknown classification level {level!r}; known: "
                         + ", ".join(self.levels_by_name()))

    def name(self, rank: int) -> str:
        return self.levels[rank][0]

    def abbrev(self, rank: int) -> str:
        return self.levels[rank][1]

    @property
    def lowest(self) -> str:
        return self.levels[0][0]

    @property
    def highest(self) -> str:
        return self.levels[-1][0]

    def control(self, token: str) -> str | None:
        """Canonical name of a dissemination control token, None if unknown."""
        for name, abbrevs in self.controls.items():
            if token == name or token in abbrevs:
                return name
        return None


DEFAULT_SCHEME = LevelScheme()


@dataclass(frozen=True)
class Label:
    """One point of the lattice. Build with ``Label.of`` or ``parse``; compare with
    ``dominates`` (``<=``/``>=`` are the same partial order)."""

    rank: int
    compartments: frozenset[str] = frozenset()
    controls: frozenset[str] = frozenset()
    releasable_to: frozenset[str] | None = None    # None: no foreign-release restriction
    scheme: LevelScheme = field(default=DEFAULT_SCHEME, compare=False, repr=False, hash=False)

    @classmethod
    def of(cls, level: str, compartments: Iterable[str] = (), *, noforn: bool = False,
           rel_to: Iterable[str] | None = None, controls: Iterable[str] = (),
           scheme: LevelScheme = DEFAULT_SCHEME) -> Label:
        release: frozenset[str] | None = None
        if rel_to is not None:
            release = frozenset(rel_to) | {HOME_COUNTRY}
        if noforn:
            release = frozenset({HOME_COUNTRY})
        return cls(scheme.rank(level), frozenset(compartments), frozenset(controls), release, scheme)

    # --- properties ---------------------------------------------------------------
    @property
    def level(self) -> str:
        return self.scheme.name(self.rank)

    @property
    def noforn(self) -> bool:
        return self.releasable_to == frozenset({HOME_COUNTRY})

    # --- the order ----------------------------------------------------------------
    def dominates(self, other: Label) -> bool:
        """True if self is at least as restrictive as other (clearance self may read other)."""
        return (self.rank >= other.rank
                and self.compartments >= other.compartments
                and self.controls >= other.controls
                and _release_le(self.releasable_to, other.releasable_to))

    def __ge__(self, other: Label) -> bool:
        return self.dominates(other)

    def __le__(self, other: Label) -> bool:
        return other.dominates(self)

    def join(self, other: Label) -> Label:
        """Least upper bound: the least restrictive label dominating both."""
        return Label(max(self.rank, other.rank), self.compartments | other.compartments,
                     self.controls | other.controls,
                     _release_meet(self.releasable_to, other.releasable_to), self.scheme)

    def meet(self, other: Label) -> Label:
        """Greatest lower bound (e.g. a clearance capped by a session level)."""
        return Label(min(self.rank, other.rank), self.compartments & other.compartments,
                     self.controls & other.controls,
                     _release_join(self.releasable_to, other.releasable_to), self.scheme)

    # --- text -------------------------------------------------------------------
    def banner(self) -> str:
        """Canonical banner form, e.g. ``SECRET//SI/TK//NOFORN``."""
        return self._render(self.level)

    def portion(self) -> str:
        """Portion-mark form, e.g. ``(S//SI//NF)``."""
        return "(" + self._render(self.scheme.abbrev(self.rank), short=True) + ")"

    def _render(self, head: str, short: bool = False) -> str:
        parts = [head]
        if self.compartments:
            parts.append("/".join(sorted(self.compartments)))
        dissem = []
        if self.noforn:
            dissem.append("NF" if short else "NOFORN")
        dissem.extend(sorted(self.controls))
        if self.releasable_to is not None and not self.noforn:
            others = sorted(self.releasable_to - {HOME_COUNTRY})
            dissem.append("REL TO " + ", ".join([HOME_COUNTRY, *others]))
        if dissem:
            parts.append("/".join(dissem))
        return "//".join(parts)

    def __str__(self) -> str:
        return self.banner()


def _release_le(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    """Release set a at least as restrictive as b (None = everyone)."""
    if a is None:
        return b is None
    return b is None or a <= b


def _release_meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _release_join(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None or b is None:
        return None
    return a | b


def lub(labels: Sequence[Label], scheme: LevelScheme = DEFAULT_SCHEME) -> Label:
    """Least upper bound of any number of labels (the scheme's lowest level for none)."""
    result = lowest(scheme)
    for label in labels:
        result = result.join(label)
    return result


def lowest(scheme: LevelScheme = DEFAULT_SCHEME) -> Label:
    return Label(0, scheme=scheme)


# --- parsing ------------------------------------------------------------------------
def parse(text: str, scheme: LevelScheme = DEFAULT_SCHEME) -> Label:
    """Parse a banner (``SECRET//SI//NOFORN``) or portion mark (``(S//NF)``); LabelError if malformed."""
    if not isinstance(text, str):
        raise LabelError("a label must be a string")
    s = " ".join(text.strip().upper().split())
    if s.startswith("(") and s.endswith(")"):
        s = s[1:-1].strip()
    if not s:
        raise LabelError("empty classification label")
    if len(s) > 512:
        raise LabelError("classification label is too long (at most 512 characters)")
    segments = [seg.strip() for seg in s.split("//")]
    if any(not seg for seg in segments):
        raise LabelError(f"malformed label {text!r}: empty segment between '//'")
    rank = scheme.rank(segments[0])
    compartments: set[str] = set()
    controls: set[str] = set()
    release: frozenset[str] | None = None
    seen_dissem = False
    for seg in segments[1:]:
        tokens = [t.strip() for t in seg.split("/")]
        if any(not t for t in tokens):
            raise LabelError(f"malformed label {text!r}: empty element in {seg!r}")
        if _is_dissem(tokens, scheme):
            if seen_dissem:
                raise LabelError(f"malformed label {text!r}: more than one dissemination segment")
            seen_dissem = True
            for tok in tokens:
                if tok in _NOFORN_NAMES:
                    release = _release_meet(release, frozenset({HOME_COUNTRY}))
                elif tok.startswith("REL TO "):
                    release = _release_meet(release, _parse_rel_to(tok, text))
                else:
                    controls.add(scheme.control(tok))  # type: ignore[arg-type]
        else:
            if seen_dissem or compartments:
                raise LabelError(f"malformed label {text!r}: unexpected segment {seg!r} "
                                 "(expected LEVEL//COMPARTMENTS//DISSEMINATION)")
            for tok in tokens:
                if _is_dissem([tok], scheme):
                    raise LabelError(f"malformed label {text!r}: {tok!r} is a dissemination "
                                     "control; put it in its own segment after '//'")
                if _COMPARTMENT_RE.fullmatch(tok) is None or len(tok) > 32:
                    raise LabelError(f"malformed label {text!r}: invalid compartment {tok!r}")
                compartments.add(tok)
    return Label(rank, frozenset(compartments), frozenset(controls), release, scheme)


def _is_dissem(tokens: list[str], scheme: LevelScheme) -> bool:
    return all(t in _NOFORN_NAMES or t.startswith("REL TO ") or scheme.control(t) is not None
               for t in tokens)


def _parse_rel_to(token: str, text: str) -> frozenset[str]:
    countries = [c.strip() for c in token[len("REL TO "):].split(",")]
    if not countries or any(_COUNTRY_RE.fullmatch(c) is None for c in countries):
        raise LabelError(f"malformed label {text!r}: REL TO needs a comma-separated list of "
                         "country codes, e.g. 'REL TO USA, GBR'")
    if HOME_COUNTRY not in countries:
        raise LabelError(f"malformed label {text!r}: REL TO must include {HOME_COUNTRY}")
    return frozenset(countries)


def format_label(label: Label) -> str:
    """Canonical banner form (same as ``label.banner()``)."""
    return label.banner()
