"""Temporal answers (formats.windows): bins over the whole video, index tokens, uniform sampling."""

from __future__ import annotations

import inspect
import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sa2va_st.formats import FRAME_TOKENS, FormatError, ParseFailure, is_failure
from sa2va_st.formats.windows import (
    bin_centres,
    bin_edges,
    decode_window_tokens,
    encode_window_tokens,
    indices_to_window,
    sample_positions,
    window_to_indices,
)

durations = st.floats(min_value=0.5, max_value=2000.0, allow_nan=False, allow_infinity=False)
ns = st.integers(min_value=1, max_value=100)
fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


# ---------------------------------------------------------------- bins


def test_bins_definition():
    edges = bin_edges(30.0, 100)
    assert edges.shape == (101,) and edges[0] == 0.0 and edges[-1] == 30.0
    assert np.allclose(np.diff(edges), 0.3)
    assert np.allclose(bin_centres(30.0, 100), edges[:-1] + 0.15)


def test_window_to_indices_examples():
    # d = 30 s, n = 100: bin j = [0.3 j, 0.3 (j + 1))
    assert window_to_indices(0.0, 30.0, 30.0) == (0, 99)
    assert window_to_indices(0.3, 0.6, 30.0) == (1, 1)  # edges belong to the bin they start
    assert window_to_indices(0.31, 0.61, 30.0) == (1, 2)
    assert window_to_indices(6.9, 6.9, 30.0) == (23, 23)  # zero length on an edge keeps the bin it starts
    assert window_to_indices(-3.0, 45.0, 30.0) == (0, 99)  # clipped to the video
    assert window_to_indices(29.99, 31.0, 30.0) == (99, 99)
    assert window_to_indices(0.0, 10.0, 10.0, n=1) == (0, 0)
    assert indices_to_window(1, 1, 30.0) == pytest.approx((0.3, 0.6))
    assert indices_to_window(0, 99, 30.0) == (0.0, 30.0)


@pytest.mark.parametrize(
    "args",
    [
        (5.0, 4.0, 30.0, 100),
        (float("nan"), 4.0, 30.0, 100),
        (0.0, 4.0, 0.0, 100),
        (0.0, 4.0, -1.0, 100),
        (0.0, 4.0, float("inf"), 100),
        (0.0, 4.0, 30.0, 0),
        (0.0, 4.0, 30.0, 2.5),
    ],
)
def test_window_to_indices_rejects(args):
    with pytest.raises(FormatError):
        window_to_indices(*args)


@pytest.mark.parametrize("a, b, n", [(-1, 3, 100), (5, 4, 100), (0, 100, 100), (0, 10, 10), (1.0, 2, 100)])
def test_indices_to_window_rejects(a, b, n):
    with pytest.raises(FormatError):
        indices_to_window(a, b, 30.0, n)


@settings(max_examples=500, deadline=None)
@given(durations, ns, fractions, fractions)
def test_seconds_indices_seconds(d, n, f1, f2):
    s, e = sorted((f1 * d, f2 * d))
    a, b = window_to_indices(s, e, d, n)
    assert 0 <= a <= b <= n - 1
    s2, e2 = indices_to_window(a, b, d, n)
    tol = 1e-9 * d
    # within one bin at each end ...
    assert abs(s2 - s) <= d / n + tol and abs(e2 - e) <= d / n + tol
    # ... and the decoded window contains the original (the bins a..b cover it)
    assert s2 <= s + tol and e2 >= e - tol
    # the interval property: indices -> seconds -> indices is the identity
    assert window_to_indices(s2, e2, d, n) == (a, b)
    # every bin the window overlaps (with positive length) lies in a..b, and no other
    edges = bin_edges(d, n)
    for j in range(n):
        overlap = min(e, edges[j + 1]) - max(s, edges[j])
        if overlap > 1e-7 * d:
            assert a <= j <= b
        if j < a or j > b:
            assert overlap <= 1e-7 * d


@settings(max_examples=200, deadline=None)
@given(durations, ns, st.data())
def test_indices_seconds_indices(d, n, data):
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(a, n - 1))
    s, e = indices_to_window(a, b, d, n)
    assert 0.0 <= s < e <= d
    assert window_to_indices(s, e, d, n) == (a, b)


# ---------------------------------------------------------------- tokens


def test_tokens_exact():
    assert encode_window_tokens(7, 42) == "<frame_0><frame_7>-<frame_4><frame_2>"
    assert encode_window_tokens(0, 0) == "<frame_0><frame_0>-<frame_0><frame_0>"
    assert encode_window_tokens(99, 99) == "<frame_9><frame_9>-<frame_9><frame_9>"


def test_tokens_round_trip_every_pair():
    seen = set()
    for a, b in itertools.combinations_with_replacement(range(100), 2):
        text = encode_window_tokens(a, b)
        assert decode_window_tokens(text) == (a, b)
        seen.add(text)
    assert len(seen) == 5050


@pytest.mark.parametrize(
    "a, b, n", [(5, 4, 100), (-1, 4, 100), (0, 100, 100), (0, 10, 10), (0, 5, 101), (True, 3, 100)]
)
def test_encode_tokens_rejects(a, b, n):
    with pytest.raises(FormatError):
        encode_window_tokens(a, b, n)


@pytest.mark.parametrize(
    "text",
    [
        "The event happens at <frame_1><frame_2>-<frame_3><frame_4>.",
        " <frame_1> <frame_2> - <frame_3><frame_4>\n",
        "<TEMPORAL><frame_1><frame_2>-<frame_3><frame_4><|im_end|>",
        "from 12 to 34: <frame_1><frame_2>-<frame_3><frame_4>",  # plain digits are not tokens
    ],
)
def test_decode_tolerates_whitespace_and_stray_text(text):
    assert decode_window_tokens(text) == (12, 34)


@pytest.mark.parametrize(
    "text, n",
    [
        ("", 100),
        ("12-34", 100),
        ("<frame_3><frame_4>-<frame_1><frame_2>", 100),  # a > b
        ("<frame_1><frame_2>-<frame_3><frame_4>", 30),  # out of range for n
        ("<frame_1>-<frame_3><frame_4>", 100),  # one digit
        ("<frame_1><frame_2><frame_3>-<frame_4><frame_5>", 100),  # three digits: never guess
        ("<frame_1><frame_2>-<frame_3><frame_4><frame_5>", 100),
        ("<frame_1><frame_2>-<frame_3><frame_4> <frame_1><frame_2>-<frame_3><frame_4>", 100),  # two answers
        ("<frame_1><frame_2> to <frame_3><frame_4>", 100),
        ("<frame_12><frame_2>-<frame_3><frame_4>", 100),
        ("<frame_a><frame_2>-<frame_3><frame_4>", 100),
        ("<frame_1><frame_2>–<frame_3><frame_4>", 100),  # en dash
    ],
)
def test_decode_rejects_malformed(text, n):
    result = decode_window_tokens(text, n)
    assert isinstance(result, ParseFailure) and not result and result.reason


def test_decode_never_raises_on_non_text():
    assert is_failure(decode_window_tokens(None))  # type: ignore[arg-type]


_PIECES = st.sampled_from([*FRAME_TOKENS, "-", " ", "<frame_", ">", "1", "x", "<next>"])


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=50), st.lists(_PIECES, max_size=12).map("".join)), st.integers(1, 100))
def test_fuzz_decode_is_valid_or_failure(text, n):
    result = decode_window_tokens(text, n)
    if not is_failure(result):
        a, b = result
        assert 0 <= a <= b <= n - 1
        assert text.count("<frame_") == 4  # exactly one answer, nothing stray
        assert encode_window_tokens(a, b) in re.sub(r"\s", "", text)


# ---------------------------------------------------------------- sampling positions


def test_sample_positions_takes_no_target():
    assert list(inspect.signature(sample_positions).parameters) == ["num_available", "n", "rng"]


def test_sample_positions_eval_examples():
    assert sample_positions(100, 100).tolist() == list(range(100))
    assert sample_positions(1000, 100).tolist() == list(range(5, 1000, 10))
    assert sample_positions(1, 100).tolist() == [0] * 100
    # T < n: the row nearest to each bin centre (j + 0.5) / 2, ties to the earlier row
    assert sample_positions(50, 100).tolist() == [min((j + 1) // 2, 49) for j in range(100)]
    assert sample_positions(3, 2).tolist() == [1, 2]  # centres 0.75 and 2.25


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000), ns, st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_sample_positions_properties(t, n, seed):
    rng = None if seed is None else np.random.default_rng(seed)
    rows = sample_positions(t, n, rng)
    assert rows.shape == (n,) and rows.dtype == np.int64
    assert (rows >= 0).all() and (rows < t).all()
    assert (np.diff(rows) >= 0).all()  # sorted
    # position j is a row of bin j ([j T / n, (j + 1) T / n) in rows): the whole video, evenly
    j = np.arange(n)
    centre = np.clip((j + 0.5) * t / n, 0, t - 1)  # past the last row: the last row is nearest
    lo = np.ceil(j * t / n - 1e-9).astype(np.int64)
    hi = np.ceil((j + 1) * t / n - 1e-9).astype(np.int64)  # exclusive
    owns = hi > lo
    assert ((rows >= lo) & (rows < hi))[owns].all()
    assert (np.abs(rows - centre)[~owns] <= 0.5 + 1e-9).all()  # no own row: the nearest one
    if seed is None:
        assert (np.abs(rows - centre) <= 0.5 + 1e-9).all()  # eval: nearest to the centre
    if t >= n:
        assert rows[0] < t / n + 1 and rows[-1] >= t - t / n - 1
        assert len(np.unique(rows)) == n  # one distinct row per bin
    # deterministic for a seed, and eval mode deterministic
    again = sample_positions(t, n, None if seed is None else np.random.default_rng(seed))
    assert np.array_equal(rows, again)


def test_training_jitter_varies_but_stays_in_bins():
    rng = np.random.default_rng(0)
    draws = np.stack([sample_positions(1000, 100, rng) for _ in range(50)])  # (50, 100)
    assert len({tuple(d) for d in draws}) > 1
    for j in range(100):
        assert draws[:, j].min() >= 10 * j and draws[:, j].max() <= 10 * j + 9
    # every row of a bin is reachable: jitter is uniform inside the bin
    assert set(draws[:, 0].tolist()) == set(range(10))


def test_sample_positions_rejects():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(FormatError):
            sample_positions(bad, 100)  # type: ignore[arg-type]
    with pytest.raises(FormatError):
        sample_positions(10, 0)


def test_long_garbage_is_rejected():
    assert is_failure(decode_window_tokens("<frame_1> " * 30_000))
    assert is_failure(decode_window_tokens(" " * 50_000 + "-"))
