"""Render S3 XML responses and parse S3 XML request bodies.

Rendering builds strings directly (listings of 1,000 keys are on the hot path);
parsing uses defusedxml so entity bombs and external entities are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from xml.etree.ElementTree import Element  # noqa: S405 - only the type; parsing goes through defusedxml

from defusedxml import ElementTree as SafeET

from vallum.s3 import errors

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 2 * 1024 * 1024
_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


def escape(text: str) -> str:
    return text.translate(_ESCAPES)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _emit(out: list[str], tag: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            _emit(out, tag, item)
        return
    if isinstance(value, dict):
        out.append(f"<{tag}>")
        for k, v in value.items():
            _emit(out, k, v)
        out.append(f"</{tag}>")
        return
    if isinstance(value, tuple):  # ordered children with repeated tags: ((tag, value), ...)
        out.append(f"<{tag}>")
        for k, v in value:
            _emit(out, k, v)
        out.append(f"</{tag}>")
        return
    out.append(f"<{tag}>{_value(value)}</{tag}>")


def render(root: str, body: dict[str, Any] | Iterable[tuple[str, Any]], *, ns: str | None = S3_NS) -> bytes:
    """Render ``body`` under ``root``. Values: str/int/bool (text), None (skipped),
    dict or tuple of pairs (nested element), list (the tag repeated per item)."""
    out = [_HEADER, f'<{root} xmlns="{ns}">' if ns else f"<{root}>"]
    items = body.items() if isinstance(body, dict) else body
    for k, v in items:
        _emit(out, k, v)
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8")


# -- listings rendered from pre-built entry text (ListObjectVersions) -------------
# A thousand-entry page through ``render`` costs more than the database read: a
# str.translate per value (~0.8 us) and a recursive _emit per element. The hot
# path checks a whole page's text at once, escapes only if something needs it,
# and formats each entry as one f-string.
_NEEDS_ESCAPE = re.compile('[&<>"\r]').search


def text_of(value: str) -> str:
    """``escape(value)``, skipping the translate when nothing needs escaping (the usual case)."""
    return value.translate(_ESCAPES) if _NEEDS_ESCAPE(value) else value


def _verbatim(value: str) -> str:
    return value


def escaper(texts: Iterable[str]) -> Callable[[str], str]:
    """``text_of`` if any of ``texts`` needs escaping, else the identity: one scan of a
    page's values instead of one per value."""
    return text_of if _NEEDS_ESCAPE("".join(texts)) else _verbatim


def checksum_fragment(checksums: dict[str, str]) -> str:
    """ChecksumAlgorithm + ChecksumType of a listed object or version ("" if it has none)."""
    alg = next((a for a in checksums if a != "type"), None) if checksums else None
    if alg is None:
        return ""
    return (f"<ChecksumAlgorithm>{text_of(alg)}</ChecksumAlgorithm><ChecksumType>"
            f"{text_of(checksums.get('type', 'FULL_OBJECT'))}</ChecksumType>")


def fragment(tag: str, value: Any) -> str:
    """One element as ``render`` would emit it, for a part repeated verbatim in every entry."""
    out: list[str] = []
    _emit(out, tag, value)
    return "".join(out)


def render_around(root: str, head: Iterable[tuple[str, Any]], entries: str,
                  tail: Iterable[tuple[str, Any]], *, ns: str | None = S3_NS) -> bytes:
    """``render(root, [*head, *tail])`` with the already-rendered ``entries`` between them."""
    out = [_HEADER, f'<{root} xmlns="{ns}">' if ns else f"<{root}>"]
    for k, v in head:
        _emit(out, k, v)
    out.append(entries)
    for k, v in tail:
        _emit(out, k, v)
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8")


# Characters XML 1.0 cannot carry even as references (C0 controls, surrogates, U+FFFE/F).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_error(err: errors.S3Error, request_id: str, host_id: str = "") -> bytes:
    """Error fields echo client input (ArgumentValue, Key, ...): characters XML cannot
    carry become U+FFFD, so every error document stays parseable."""
    body: dict[str, Any] = {"Code": err.code, "Message": err.message}
    body.update(err.fields)
    body["Resource"] = err.resource
    body["RequestId"] = request_id
    body["HostId"] = host_id or request_id
    clean = {k: _NOT_XML.sub("\ufffd", v) if isinstance(v, str) else v for k, v in body.items()}
    return render("Error", clean, ns=None)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(data: bytes, root: str) -> Element:
    """Parse a request body whose root element must be ``root`` (namespace optional)."""
    if not data.strip():
        raise errors.MalformedXML()
    if len(data) > MAX_XML_BODY:
        raise errors.MalformedXML("The XML you provided was too large")
    try:
        # S3 bodies are UTF-8; handlers keep accepted documents as UTF-8 text, so a body
        # in another declared encoding (which expat would accept) is refused here.
        data.decode("utf-8")
        doc = SafeET.fromstring(data)
    except Exception as exc:  # ParseError and defusedxml's forbidden-construct errors
        raise errors.MalformedXML() from exc
    if _local(doc.tag) != root:
        raise errors.MalformedXML()
    return doc


def children(elem: Element, tag: str) -> list[Element]:
    return [c for c in elem if _local(c.tag) == tag]


def child(elem: Element, tag: str) -> Element | None:
    for c in elem:
        if _local(c.tag) == tag:
            return c
    return None


def text(elem: Element, tag: str, default: str | None = None) -> str | None:
    c = child(elem, tag)
    if c is None:
        return default
    return c.text or ""


def only_known(elem: Element, allowed: set[str]) -> None:
    """Refuse unknown child elements, as S3's schema validation does."""
    for c in elem:
        if _local(c.tag) not in allowed:
            raise errors.MalformedXML()
