"""Wildcard matching (iam/glob.py): same answers as glob semantics, in bounded time."""

from __future__ import annotations

import gc
import json
import time
from functools import lru_cache

from hypothesis import given, settings
from hypothesis import strategies as st

from vallum.iam import evaluate as ev
from vallum.iam import policy
from vallum.iam.glob import Glob, compile_glob


def reference(pattern: str, value: str) -> bool:
    """Textbook glob: '*' any run (also empty), '?' any one character, else literal."""
    @lru_cache(maxsize=None)
    def m(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(value)
        c = pattern[i]
        if c == "*":
            return m(i + 1, j) or (j < len(value) and m(i, j + 1))
        return j < len(value) and (c == "?" or c == value[j]) and m(i + 1, j + 1)
    return m(0, 0)


ALPHABET = "ab*?/."


@settings(max_examples=800, deadline=None)
@given(st.text(ALPHABET, max_size=10), st.text("ab/.*?", max_size=12))
def test_matches_the_reference(pattern, value):
    assert bool(compile_glob(pattern).fullmatch(value)) == reference(pattern, value)


@settings(max_examples=300, deadline=None)
@given(st.text("aB*?", max_size=8), st.text("AbB", max_size=10))
def test_ignore_case_matches_the_reference_on_lowered_text(pattern, value):
    got = bool(compile_glob(pattern, True).fullmatch(value))
    assert got == reference(pattern.lower(), value.lower())


@settings(max_examples=300, deadline=None)
@given(st.text("ab", max_size=4), st.text("ab*?", max_size=4), st.text("ab*?", max_size=4),
       st.text("ab*?", max_size=8))
def test_substituted_values_are_literal(head, var, tail, value):
    """A policy variable's value is literal: its '*' and '?' are plain characters."""
    glob = Glob([(head, False), (var, True), (tail, False)])
    plain = str.maketrans("*?", "XY")          # text '*' and '?' as characters of their own
    pattern = head + var.translate(plain) + tail
    assert bool(glob.fullmatch(value)) == reference(pattern, value.translate(plain))


def test_a_policy_at_the_size_limit_with_many_stars_is_fast():
    """The pattern that took seconds as a backtracking regex: stars between repeated
    characters, a value that almost matches (its start and end do, a middle piece does
    not), a policy filling the size limit."""
    evil = "arn:aws:s3:::b/" + "*a" * 40 + "*c*b"
    statements, size = [], 0
    while True:
        st_ = {"Sid": f"S{len(statements)}", "Effect": "Allow", "Principal": "*",
               "Action": "s3:GetObject", "Resource": [evil] * 4}
        size += len(json.dumps(st_)) + 2
        if size > policy.MAX_POLICY_BYTES - 200:
            break
        statements.append(st_)
    text = json.dumps({"Version": "2012-10-17", "Statement": statements})
    assert len(text) > policy.MAX_POLICY_BYTES * 0.9
    parsed = policy.parse(text, kind="resource", bucket="b")
    assert sum(r.count("*") for s in parsed.statements for r in s.resources) > 1000
    req = ev.Request("s3:GetObject", "arn:aws:s3:::b/" + "a" * 200 + "b")
    ev.evaluate(req, resource=[("bucket", parsed)])                # warm the caches
    best = float("inf")
    gc.disable()                   # a collection is not the evaluation's cost
    try:
        for _ in range(20):        # CPU time of this thread: other processes' load does not count
            t0 = time.thread_time()
            verdict = ev.evaluate(req, resource=[("bucket", parsed)])
            best = min(best, time.thread_time() - t0)
    finally:
        gc.enable()
    assert not verdict.allowed
    # About 0.1 ms on an idle machine; the bar leaves room for a loaded CI box (two test
    # workers and their servers on two cores) and is still far below a backtracking
    # matcher, which took minutes on this policy.
    assert best < 0.005, f"evaluation took {best * 1e3:.2f} ms"


def test_one_glob_with_many_stars_is_linear():
    g = compile_glob("*a" * 200 + "*c*b")
    value = "a" * 20000 + "b"
    t0 = time.thread_time()
    assert g.fullmatch(value) is None
    assert time.thread_time() - t0 < 0.05
