"""The pure listing helpers: seeking past a prefix, and page filling on a plain list."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st

from vallum.meta.listing import paginate, start_of, successor

CHARS = st.characters(exclude_categories=["Cs"])     # no surrogates: not valid UTF-8


def test_successor_examples():
    assert successor("a/") == "a0"
    assert successor("") is None
    assert successor("\U0010ffff") is None
    assert successor("a\U0010ffff") == "b"
    assert successor("a\ud7ff") == "a\ue000"            # jumps the surrogate gap


@given(prefix=st.text(CHARS, min_size=1, max_size=4), other=st.text(CHARS, max_size=6))
def test_successor_bounds_exactly_the_strings_under_prefix(prefix, other):
    nxt = successor(prefix)
    if other.startswith(prefix):
        assert nxt is None or other < nxt
    elif other > prefix:
        assert nxt is not None and other >= nxt
    # Python order equals UTF-8 byte order for these strings.
    if nxt is not None:
        assert (other < nxt) == (other.encode() < nxt.encode())


def list_page(keys, **kw):
    keys = sorted(keys)

    def seek(k, inclusive=True):
        i = bisect.bisect_left(keys, k) if inclusive else bisect.bisect_right(keys, k)
        return iter(keys[i:])

    return paginate(seek(*start_of(kw["prefix"], kw["marker"])), seek, lambda k: k, **kw)


def test_paginate_rolls_up_and_counts_prefixes():
    keys = ["a", "b/1", "b/2", "c/x/1", "d"]
    page = list_page(keys, prefix="", delimiter="/", marker="", limit=3)
    assert (page.entries, page.prefixes, page.truncated) == (["a"], ["b/", "c/"], True)
    assert page.last_entry_is_prefix
    page = list_page(keys, prefix="c/", delimiter="/", marker="", limit=3)
    assert (page.entries, page.prefixes, page.truncated) == ([], ["c/x/"], False)
    page = list_page(keys, prefix="", delimiter="", marker="b/1", limit=0)
    assert (page.entries, page.prefixes, page.truncated) == ([], [], False)


def test_paginate_seeks_instead_of_scanning():
    reads = []

    def seek(k, inclusive=True):
        def gen():
            for key in ["p/" + "%06d" % i for i in range(100_000)] + ["q"]:
                if key >= k:
                    reads.append(key)
                    yield key
        return gen()

    page = paginate(seek(""), seek, lambda k: k, prefix="", delimiter="/", marker="", limit=10)
    assert (page.entries, page.prefixes) == (["q"], ["p/"])
    assert len(reads) == 2          # one key under p/, then straight to q
