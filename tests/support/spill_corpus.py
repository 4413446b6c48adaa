"""The labelled spill corpus: marked documents (every real format and every evasion) and
ordinary ones (licences, source code, CSV, prose in several languages, office files).

``write(dir)`` lays it out for ``vallum spill evaluate --corpus DIR``:
``marked/<name>`` + ``ordinary/<name>`` + ``manifest.json`` (marked name -> the banner the
document carries). Run ``python -m tests.support.spill_corpus DIR`` to write it by hand.
Generated, never downloaded: the same bytes on every run (no randomness).
"""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import lzma
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

from tests.support import spill_encodings

# --- documents ----------------------------------------------------------------------
MEMOS = {
    "TOP SECRET//SI//NOFORN": ("TOP SECRET//SI//NOFORN", "(TS//SI//NF) The collection plan for the coming quarter.",
                               "(U) Logistics follow the usual schedule."),
    "SECRET//NOFORN": ("SECRET//NOFORN", "(S//NF) Movement of the second battalion begins at dawn.",
                       "(U) Contact the duty officer."),
    "SECRET": ("SECRET", "(S) The unit will move north on Tuesday.", "(U) Rations as before."),
    "TOP SECRET": ("TOP SECRET", "(TS) Source identities are listed in annex B.", "(U) Handle with care."),
    "CONFIDENTIAL": ("CONFIDENTIAL", "(C) Supplier pricing for the next contract.", "(U) Meeting at ten."),
    "CUI": ("CUI", "(CUI) Personnel records of the applicants.", "(U) Office hours are unchanged."),
    "CUI//SP-PRVCY": ("CUI//SP-PRVCY", "Privacy data of the staff follows.", "Names and addresses."),
}
ALT_BANNERS = {          # the same levels in their other real forms
    "CONTROLLED UNCLASSIFIED INFORMATION": "CUI",
    "Classification: SECRET": "SECRET",
    "*** TOP SECRET ***": "TOP SECRET",
    "- CONFIDENTIAL -": "CONFIDENTIAL",
    "SECRET//REL TO USA, GBR": "SECRET//REL TO USA, GBR",
}


RED_TEAM_FORMS = {       # banner forms the red-team pass found unread
    "TS//NF\n\nThe collection plan.\n": "TOP SECRET//NOFORN",
    "Memo\n  S//REL TO USA, GBR\nBody.\n": "SECRET//REL TO USA, GBR",
    "TOP SECRET,,,\nsite,owner,date,note\nnorth,ops,2024-01-02,ok\n": "TOP SECRET",
    '"SECRET//NOFORN","",""\nsite,owner,date\n': "SECRET//NOFORN",
    '{"classification":"TOP SECRET","body":"the plan"}': "TOP SECRET",
    '{\n  "classification": "CONFIDENTIAL",\n  "body": "x"\n}\n': "CONFIDENTIAL",
    "classification: SECRET\nbody: the plan\n": "SECRET",
    "Annex: TS//SI//NF material follows.\n": "TOP SECRET//SI//NOFORN",
}


def memo(banner: str, lines: tuple[str, ...] = ()) -> str:
    body = "\n".join(lines) or "The body of the memorandum."
    return f"{banner}\n\nMEMORANDUM FOR THE RECORD\nSubject: quarterly review\n\n{body}\n\n{banner}\n"


def portions_only(level_mark: str) -> str:
    return f"Notes from the meeting\n\n{level_mark} The plan is to relocate the site.\n(U) Lunch was served.\n"


def docx(paragraphs: list[str], header: str | None = None, *, streaming: bool = False) -> bytes:
    runs = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{p[:3]}</w:t></w:r><w:r><w:rPr><w:b/></w:rPr>'
        f'<w:t xml:space="preserve">{p[3:]}</w:t></w:r></w:p>' for p in paragraphs)
    doc = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="urn:w">'
           f"<w:body>{runs}</w:body></w:document>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("word/document.xml", doc)
        if header is not None:
            z.writestr("word/header1.xml", f'<?xml version="1.0"?><w:hdr><w:p><w:r><w:t>{header}'
                                           f"</w:t></w:r></w:p></w:hdr>")
        z.writestr("docProps/core.xml", '<?xml version="1.0"?><cp:coreProperties><dc:title>Review'
                                        "</dc:title></cp:coreProperties>")
    return buf.getvalue()


def xlsx(rows: list[list[str]], header: str | None = None) -> bytes:
    strings = sorted({c for r in rows for c in r})
    index = {s: i for i, s in enumerate(strings)}
    sst = "".join(f"<si><t>{s}</t></si>" for s in strings)
    cells = "".join("<row>" + "".join(f'<c t="s"><v>{index[c]}</v></c>' for c in r) + "</row>" for r in rows)
    hf = f"<headerFooter><oddHeader>&amp;C{header}</oddHeader></headerFooter>" if header else ""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/sharedStrings.xml", f'<?xml version="1.0"?><sst>{sst}</sst>')
        z.writestr("xl/worksheets/sheet1.xml", f'<?xml version="1.0"?><worksheet><sheetData>{cells}'
                                               f"</sheetData>{hf}</worksheet>")
    return buf.getvalue()


def pdf(lines: list[str], *, flate: bool, kerned: bool = False) -> bytes:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    ops = []
    for i, line in enumerate(lines):
        if kerned and " " in line:
            a, b = line.split(" ", 1)
            ops.append(f"BT /F1 11 Tf 72 {720 - 14 * i} Td [({esc(a)}) -280 ({esc(b)})] TJ ET")
        else:
            ops.append(f"BT /F1 11 Tf 72 {720 - 14 * i} Td ({esc(line)}) Tj ET")
    content = "\n".join(ops).encode()
    stream = zlib.compress(content) if flate else content
    filt = b"/Filter /FlateDecode " if flate else b""
    return (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"4 0 obj\n<< " + filt + b"/Length " + str(len(stream)).encode() + b" >>\nstream\n"
            + stream + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")


def html_doc(banner: str, text: str) -> bytes:
    return (f'<!DOCTYPE html><html><head><title>Report</title></head><body>'
            f'<div class="banner">{banner}</div><p>{text}</p><div class="banner">{banner}</div>'
            f"</body></html>").encode()


def email(body: str, *, cte: str = "8bit", subtype: str = "plain",
          attachment: tuple[str, bytes] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ops@example.org", "team@example.org", "Weekly update"
    msg.set_content(body, subtype=subtype, cte=cte)
    if attachment is not None:
        msg.add_attachment(attachment[1], maintype="application", subtype="octet-stream",
                           filename=attachment[0])
    return msg.as_bytes()


zip_of = spill_encodings.zip_of


def tar_gz(members: dict[str, bytes]) -> bytes:
    return tar_of(members, "w:gz")


def tar_of(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- the marked set -----------------------------------------------------------------
def evasions(text: str) -> Iterator[tuple[str, bytes]]:
    """Every encoding of a marked text that must still be read."""
    raw = text.encode()
    yield "txt", raw
    yield "crlf.txt", raw.replace(b"\n", b"\r\n")
    yield "nul.txt", b"\x00".join(bytes([c]) for c in raw)
    yield "nul-head.bin", b"\x00\x01\x02\x03" * 64 + b"\n" + raw
    yield "controls.txt", b"".join(bytes([c]) + (b"\x01\x02\x1b" if c == 10 else b"") for c in raw) + b"\x07" * 500
    for enc in ("utf-16-le", "utf-16-be", "utf-16", "utf-32"):
        yield f"{enc}.txt", text.encode(enc)
    yield "zero-width.txt", text.replace("SECRET", "SE\u200bCRET").replace("CUI", "C\u00adUI").encode()
    yield "nbsp.txt", text.replace(" ", "\u00a0").encode()
    yield "gz", gzip.compress(raw, mtime=0)
    yield "bz2", bz2.compress(raw)
    yield "xz", lzma.compress(raw)
    yield "b64", base64.encodebytes(raw)
    yield "b64-oneline", base64.b64encode(raw)
    yield "zip-any-name.zip", zip_of({"data/blob.bin": raw})
    yield "zip-stored.zip", zip_of({"x": raw}, zipfile.ZIP_STORED)
    yield "zip-nested.zip", zip_of({"outer/inner.zip": zip_of({"deep/notes.dat": raw})})
    yield "zip-in-gz", gzip.compress(zip_of({"a.bin": raw}), mtime=0)
    yield "gz-in-b64", base64.encodebytes(gzip.compress(raw, mtime=0))
    yield "tar.gz", tar_gz({"readme.md": b"Project notes\n", "docs/memo.txt": raw})


def marked() -> Iterator[tuple[str, bytes, str]]:
    """(name, bytes, the banner it carries)."""
    for banner, (top, para, other) in MEMOS.items():
        slug = banner.replace("//", "_").replace(" ", "-").replace(",", "")
        text = memo(top, (para, other))
        for suffix, data in evasions(text):
            yield f"{slug}.{suffix}", data, banner
        yield f"{slug}.html", html_doc(top, para), banner
        yield f"{slug}.docx", docx([top, para, other, top]), banner
        yield f"{slug}.header.docx", docx(["Review of the quarter.", para], header=top), banner
        yield f"{slug}.xlsx", xlsx([["item", "owner"], ["site", "ops"]], header=top), banner
        yield f"{slug}.pdf", pdf([top, para, other, top], flate=False), banner
        yield f"{slug}.flate.pdf", pdf([top, para, other, top], flate=True), banner
        yield f"{slug}.kerned.pdf", pdf([top, para, top], flate=True, kerned=True), banner
        yield f"{slug}.eml", email(text), banner
        yield f"{slug}.qp.eml", email(text.replace("\n\n", "\n" + "=" * 90 + "\n"), cte="quoted-printable"), banner
        yield f"{slug}.b64.eml", email(text, cte="base64"), banner
        yield f"{slug}.html.qp.eml", email(html_doc(top, para).decode(), subtype="html",
                                           cte="quoted-printable"), banner
        yield f"{slug}.docx-attached.eml", email("See attached.", attachment=("memo.docx", docx([top, para]))), banner
        yield f"{slug}.docx.gz", gzip.compress(docx([top, para]), mtime=0), banner
        for suffix, encode in spill_encodings.RED_TEAM.items():
            yield f"{slug}.red.{suffix}", encode(text.encode()), banner
    for form, banner in ALT_BANNERS.items():
        slug = "alt-" + "".join(c if c.isalnum() else "-" for c in form)
        for suffix, data in evasions(memo(form, ("Body text of the note.",))):
            yield f"{slug}.{suffix}", data, banner
        for suffix, encode in spill_encodings.RED_TEAM.items():
            yield f"{slug}.red.{suffix}", encode(memo(form, ("Body text of the note.",)).encode()), banner
    for form, banner in RED_TEAM_FORMS.items():
        slug = "form-" + "".join(c if c.isalnum() else "-" for c in form)[:40]
        yield f"{slug}.txt", form.encode(), banner
    for mark, banner in (("(S//NF)", "SECRET//NOFORN"), ("(TS)", "TOP SECRET"), ("(C)", "CONFIDENTIAL"),
                         ("(S)", "SECRET"), ("(CUI)", "CUI")):
        slug = "portion-" + "".join(c for c in mark if c.isalnum())
        for suffix, data in evasions(portions_only(mark)):
            yield f"{slug}.{suffix}", data, banner
    for spaced, banner in (("TOP  SECRET", "TOP SECRET"), ("TOP\nSECRET", "TOP SECRET"),
                           ("TOP\tSECRET//NOFORN", "TOP SECRET//NOFORN"), ("TOP \r\n SECRET", "TOP SECRET")):
        slug = "spaced-" + "".join(c if c.isalnum() else "-" for c in spaced)
        for suffix, data in evasions(memo(spaced)):
            yield f"{slug}.{suffix}", data, banner


# --- the ordinary set ---------------------------------------------------------------
PROSE = {
    "it": "La casa in cui vivo è vecchia. Il libro di cui ti ho parlato è sul tavolo.\n"
          "LA CITTÀ IN CUI SIAMO NATI\nÈ un segreto che nessuno conosce.\n",
    "de": "Das Geheimnis liegt im Detail. Die STRENG GEHEIM Akte ist ein Roman von 1998.\n"
          "Kapitel (C) beschreibt die Reise.\n",
    "fr": "Le secret de la cuisine française : du beurre. CONFIDENTIEL n'est pas un mot anglais.\n"
          "Voir la section (S) du règlement.\n",
    "es": "El secreto está en la salsa. La palabra SECRETO aparece en el título.\n",
    "en": "The Secret Garden is a novel. SECRET LABS AB AND THE AUTHOR DISCLAIM ALL WARRANTIES.\n"
          "TOP SECRET RECIPES FOR THE HOLIDAYS\nThe secretary kept the minutes (see FILE(S) attached).\n"
          "Controlled unclassified information (CUI) is defined by the registry.\n"
          "Copyright (C) 2024 Example Corp. All rights reserved.\n"
          "(C) 2021 Someone Else\n(c) lower case too\n",
    "pt": "O segredo do sucesso é a persistência. CONFIDENCIAL é uma palavra portuguesa.\n",
    "nl": "Het geheim van de smid. (A) eerste punt\n(B) tweede punt\n(C) derde punt\n",
}


def ordinary() -> Iterator[tuple[str, bytes]]:
    """(name, bytes): documents that must never be refused."""
    for lang, text in PROSE.items():
        yield f"prose-{lang}.txt", text.encode()
        yield f"prose-{lang}.utf16.txt", text.encode("utf-16")
        yield f"prose-{lang}.docx", docx(text.splitlines())
        yield f"prose-{lang}.pdf", pdf(text.splitlines(), flate=True)
        yield f"prose-{lang}.html", html_doc("Report", text)
        yield f"prose-{lang}.eml", email(text, cte="quoted-printable")
        yield f"prose-{lang}.b64.eml", email(text, cte="base64")
        yield f"prose-{lang}.gz", gzip.compress(text.encode(), mtime=0)
    rows = [["id", "category", "owner", "note"]] + [
        [str(i), ["CUI", "SECRET", "U", "CONFIDENTIAL", "TOP SECRET"][i % 5], f"user{i}", "ok"] for i in range(200)]
    csv = "\n".join(",".join(r) for r in rows) + "\n"
    yield "categories.csv", csv.encode()
    yield "categories.tsv", csv.replace(",", "\t").encode()
    yield "categories.xlsx", xlsx(rows[:40])
    yield "categories.csv.gz", gzip.compress(csv.encode(), mtime=0)
    yield "source.py", (b"SECRET_KEY = 'x'  # never commit\nTOP_SECRET = 1\nCUI = 'a'\n"
                        b"def f(x):  # (C) 2024\n    return x // 2\nprint('SECRET')\n")
    yield "source.c", b"/* Copyright (C) 2019 Example */\nint SECRET = 3; // SECRET value\n"
    yield "legal.txt", (b"1. Definitions\n(A) the term licence means\n(B) the term work means\n"
                        b"(C) the term source means\n(S) reserved\n")
    yield "manual.ps", (b"%!PS-Adobe-2.0\n/Times-Roman findfont 10 scalefont setfont\n72 700 moveto\n(TS)\nshow\n"
                        b"(C)\nshow (S)\nshow\n(The manual) show\nshowpage\n")
    yield "binary.bin", bytes(range(256)) * 64
    yield "prose-ru.txt", ("ТОР СЕКРЕТОВ. Совершенно секретно: РЕЦЕПТ ТОРТА\nСЕКРЕТ\nКОНФИДЕНЦИАЛЬНО\n"
                           "Москва — столица России. ОТЧЁТ О РАБОТЕ ЗА КВАРТАЛ\n").encode()
    yield "prose-el.txt", "ΑΠΟΡΡΗΤΟ ΕΓΓΡΑΦΟ\nΤΟ ΚΟΡΙΤΣΙ ΚΑΙ Η ΘΑΛΑΣΣΑ\nΚΑΤΗΓΟΡΙΑ: ΕΜΠΙΣΤΕΥΤΙΚΟ\n".encode()
    yield "prose-fr-caps.txt", "SÉCRÉTAIRE GÉNÉRAL\nCONFIDENTIALITÉ DES DONNÉES\n".encode()
    yield "hexdump.txt", b"".join(b"%08x: " % i + bytes((i * 37 + k) % 256 for k in range(16)).hex(" ").encode()
                                  + b"  ................\n" for i in range(0, 8192, 16))
    yield "sha256sums.txt", b"".join(f"{i * 2654435761 % 2**256:064x}  file{i}.bin\n".encode() for i in range(300))
    for lang in ("en", "de", "nl"):
        yield f"prose-{lang}.rot13.txt", spill_encodings.rot13(PROSE[lang].encode())
    yield "enumeration-rot13.txt", b"(F) first item\n(P) second item\n(G) third\n(N) fourth\n"
    yield "public.json", b'{"classification": "public", "level": "SECRET-SANTA", "items": [1, 2]}\n'
    yield "random.b32", spill_encodings.base32(bytes((i * 7919) % 251 for i in range(6000)))
    yield "binary.uu", spill_encodings.uuencoded(bytes(range(256)) * 16)
    yield "ordinary.rtf", spill_encodings.rtf(PROSE["en"].encode())
    yield "initials.txt", b"Made in the U S A by A. B. C. Ltd\nT O D O\nR.I.P. S.O.S.\n"
    yield "ordinary.deflate", spill_encodings.raw_deflate(PROSE["fr"].encode())
    yield "ordinary.sfx.exe", spill_encodings.self_extracting(PROSE["de"].encode())
    yield "image.png", b"\x89PNG\r\n\x1a\n" + bytes((i * 7919) % 251 for i in range(50000))


def write(out: Path) -> dict[str, str]:
    """Write the corpus under ``out``; return the manifest (marked name -> banner)."""
    (out / "marked").mkdir(parents=True, exist_ok=True)
    (out / "ordinary").mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, data, banner in marked():
        (out / "marked" / name).write_bytes(data)
        manifest[name] = banner
    for name, data in ordinary():
        (out / "ordinary" / name).write_bytes(data)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


if __name__ == "__main__":
    write(Path(sys.argv[1]))
