"""Listings against a naive model: every page, and pagination until exhausted.

The model is deliberately simple (sort everything, filter, roll up, slice) so
that it is obviously right; the stores seek and stream instead.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vallum.meta.base import MetaStore
from vallum.meta.records import ObjectRecord, UploadRecord

from . import BACKENDS, bucket, make_store, scratch_dir, storable

# Characters chosen to stress UTF-8 byte order: ASCII below and above '/',
# NUL, 2-, 3- and 4-byte sequences, both sides of the surrogate gap.
ALPHABET = ["a", "b", "/", "-", "\x00", "é", "\ud7ff", "\ue000", "\uffff", "\U0001f600",
            "\U0010ffff"]
KEYS = st.text(alphabet=ALPHABET, min_size=1, max_size=5)
DELIMS = st.sampled_from(["", "/", "a", "é/", "\U0001f600"])
PREFIXES = st.text(alphabet=ALPHABET, max_size=2)
OPS = st.lists(st.tuples(st.sampled_from(["put", "put_null", "mark", "del_newest", "del_oldest"]),
                         KEYS), min_size=1, max_size=40)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def utf8_sorted(items):
    """Sort by the UTF-8 bytes of the key: the order S3 promises."""
    return sorted(items, key=lambda kv: kv[0].encode("utf-8", "surrogatepass"))


def rollup(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    cut = key.find(delimiter, len(prefix))
    return key[:cut + len(delimiter)] if cut >= 0 else None


def model_page(items, *, prefix, delimiter, marker, after, max_keys):
    """items: [(key, payload)] in listing order; ``after(i)`` says item i is past the marker."""
    out, seen = [], set()
    for i, (key, payload) in enumerate(items):
        if not key.startswith(prefix) or not after(i):
            continue
        cp = rollup(key, prefix, delimiter)
        if cp is None:
            out.append(("E", key, payload))
        elif cp > marker and cp not in seen:
            seen.add(cp)
            out.append(("P", cp, None))
    return out[:max(max_keys, 0)], len(out) > max_keys and max_keys > 0


def flatten(page, payload):
    merged = [("E", e.key, payload(e)) for e in page.entries] + \
             [("P", p, None) for p in page.common_prefixes]
    return sorted(merged, key=lambda t: t[1].encode())


class Model:
    def __init__(self) -> None:
        self.versions: dict[str, list[tuple[str, bool]]] = {}    # key -> newest first
        self.counter = 0

    async def apply(self, store: MetaStore, op: str, key: str) -> None:
        vs = self.versions.setdefault(key, [])
        self.counter += 1
        vid = f"v{self.counter:04d}"
        if op in ("put", "mark", "put_null"):
            if op == "put_null":
                vid = "null"
                vs[:] = [v for v in vs if v[0] != "null"]
            vs.insert(0, (vid, op == "mark"))
            await store.put_object(ObjectRecord("bkt", key, vid, delete_marker=op == "mark",
                                                blob_id=None if op == "mark" else vid))
        elif vs:
            victim = vs.pop(0 if op == "del_newest" else -1)[0]
            removed, _ = await store.delete_version("bkt", key, victim)
            assert removed is not None and removed.version_id == victim
        if not vs:
            del self.versions[key]

    def visible(self):
        return utf8_sorted((k, vs[0][0]) for k, vs in self.versions.items() if not vs[0][1])

    def all_versions(self):
        return [(k, vid) for k, vs in utf8_sorted(self.versions.items()) for vid, _ in vs]


def run_model(kind: str, ops, check) -> None:
    async def main(directory):
        store = make_store(kind, directory)
        await store.open()
        try:
            await store.create_bucket(bucket())
            model = Model()
            for op, key in ops:
                await model.apply(store, op, key)
            await check(store, model)
        finally:
            await store.close()

    with scratch_dir() as d:
        asyncio.run(main(d))


@pytest.mark.parametrize("kind", BACKENDS)
@SETTINGS
@given(ops=OPS, prefix=PREFIXES, delimiter=DELIMS, marker=st.one_of(st.just(""), KEYS),
       max_keys=st.integers(0, 6))
def test_list_objects_matches_model(kind, ops, prefix, delimiter, marker, max_keys):
    ops, prefix, marker = storable(kind, (ops, prefix, marker))

    async def check(store: MetaStore, model: Model):
        items = model.visible()
        want, truncated = model_page(items, prefix=prefix, delimiter=delimiter, marker=marker,
                                     after=lambda i: items[i][0] > marker, max_keys=max_keys)
        page = await store.list_objects("bkt", prefix=prefix, delimiter=delimiter,
                                        start_after=marker, max_keys=max_keys)
        assert flatten(page, lambda e: e.version_id) == want
        assert page.is_truncated == truncated
        assert page.next_marker == (want[-1][1] if want else None)
        # Paging with next_marker until done yields the whole model listing.
        everything, _ = model_page(items, prefix=prefix, delimiter=delimiter, marker="",
                                   after=lambda i: True, max_keys=10**9)
        got, mark, step = [], "", max(max_keys, 1)
        for _ in range(len(items) + 2):
            page = await store.list_objects("bkt", prefix=prefix, delimiter=delimiter,
                                            start_after=mark, max_keys=step)
            got += flatten(page, lambda e: e.version_id)
            if not page.is_truncated:
                break
            mark = page.next_marker
        assert got == everything

    run_model(kind, ops, check)


@pytest.mark.parametrize("kind", BACKENDS)
@SETTINGS
@given(ops=OPS, prefix=PREFIXES, delimiter=DELIMS, max_keys=st.integers(1, 5),
       start=st.integers(0, 60))
def test_list_versions_matches_model(kind, ops, prefix, delimiter, max_keys, start):
    ops, prefix = storable(kind, (ops, prefix))

    async def check(store: MetaStore, model: Model):
        items = model.all_versions()
        everything, _ = model_page(items, prefix=prefix, delimiter=delimiter, marker="",
                                   after=lambda i: True, max_keys=10**9)
        # Page through; each page must equal the model's page for the same markers.
        got, km, vm = [], "", ""
        for _ in range(len(items) + 2):
            page = await store.list_versions("bkt", prefix=prefix, delimiter=delimiter,
                                             key_marker=km, version_id_marker=vm,
                                             max_keys=max_keys)
            if vm:
                pos = items.index((km, vm))
                after = lambda i, pos=pos: i > pos          # noqa: E731
            else:
                after = lambda i, km=km: items[i][0] > km   # noqa: E731
            want, truncated = model_page(items, prefix=prefix, delimiter=delimiter, marker=km,
                                         after=after, max_keys=max_keys)
            entries = [("E", e.key, e.version_id) for e in page.entries]
            assert [t for t in want if t[0] == "E"] == entries        # newest first within key
            assert flatten(page, lambda e: e.version_id) == sorted(want, key=lambda t: t[1].encode())
            assert page.is_truncated == truncated
            got += want
            if not page.is_truncated:
                break
            km, vm = page.next_marker, page.next_version_marker or ""
        assert got == everything
        # A key marker alone skips every version of that key.
        if items:
            km = items[start % len(items)][0]
            page = await store.list_versions("bkt", key_marker=km, max_keys=1000)
            assert [(e.key, e.version_id) for e in page.entries] == \
                [(k, v) for k, v in items if k > km]

    run_model(kind, ops, check)


@pytest.mark.parametrize("kind", BACKENDS)
@SETTINGS
@given(uploads=st.lists(KEYS, max_size=15), prefix=PREFIXES, delimiter=DELIMS,
       max_uploads=st.integers(1, 4))
def test_list_uploads_paginates_like_model(kind, uploads, prefix, delimiter, max_uploads):
    uploads, prefix = storable(kind, (uploads, prefix))

    async def main(directory):
        store = make_store(kind, directory)
        await store.open()
        try:
            await store.create_bucket(bucket())
            for i, key in enumerate(uploads):
                await store.create_upload(UploadRecord(f"u{i:03d}", "bkt", key, float(i)))
            items = [(k, f"u{i:03d}") for i, k in enumerate(uploads)]
            items.sort(key=lambda kv: (kv[0].encode(), kv[1]))
            everything, _ = model_page(items, prefix=prefix, delimiter=delimiter, marker="",
                                       after=lambda i: True, max_keys=10**9)
            got, km, um = [], "", ""
            for _ in range(len(items) + 2):
                page = await store.list_uploads("bkt", prefix=prefix, delimiter=delimiter,
                                                key_marker=km, upload_id_marker=um,
                                                max_uploads=max_uploads)
                assert len(page.entries) + len(page.common_prefixes) <= max_uploads
                got += [("E", u.key, u.upload_id) for u in page.entries]
                got += [("P", p, None) for p in page.common_prefixes]
                if not page.is_truncated:
                    break
                km, um = page.next_marker, page.next_version_marker or ""
            assert sorted(got, key=lambda t: (t[1].encode(), t[2] or "")) == everything
        finally:
            await store.close()

    with scratch_dir() as d:
        asyncio.run(main(d))


def test_model_helpers_agree_with_examples():
    """The model itself, on a hand-checked case (so a wrong model cannot pass silently)."""
    items = [("a", 1), ("b/1", 2), ("b/2", 3), ("c", 4)]
    page, truncated = model_page(items, prefix="", delimiter="/", marker="", after=lambda i: True,
                                 max_keys=2)
    assert page == [("E", "a", 1), ("P", "b/", None)] and truncated
    page, truncated = model_page(items, prefix="", delimiter="/", marker="b/",
                                 after=lambda i: items[i][0] > "b/", max_keys=2)
    assert page == [("E", "c", 4)] and not truncated
    assert utf8_sorted([("\uffff", 0), ("\U0001f600", 0), ("\ue000", 0)])[0][0] == "\ue000"
