"""Spatial answers (formats.boxes): exact format, round trips, and decoders that never guess."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sa2va_st.errors import Sa2vaError
from sa2va_st.formats import FormatError, ParseFailure, is_failure
from sa2va_st.formats.boxes import (
    decode_boxes,
    decode_video_box_lists,
    decode_video_boxes,
    encode_box,
    encode_boxes,
    encode_video_box_lists,
    encode_video_boxes,
    normalize_box,
)

TOL = 0.0005 + 1e-12

coord = st.floats(min_value=-0.5, max_value=1.5, allow_nan=False, allow_infinity=False)
raw_box = st.tuples(coord, coord, coord, coord)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def close(a, b) -> bool:
    return all(abs(x - y) <= TOL for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------- exact format


def test_exact_format():
    assert encode_box((0.12, 0.05, 0.83, 0.99)) == "0.120, 0.050, 0.830, 0.990"
    assert encode_boxes([(0, 0, 1, 1), (0.5, 0.25, 0.75, 1)]) == (
        "0.000, 0.000, 1.000, 1.000<box_sep>0.500, 0.250, 0.750, 1.000"
    )
    assert encode_video_boxes([(0.1, 0.2, 0.3, 0.4), None, (0, 0, 1, 1)]) == (
        "0.100, 0.200, 0.300, 0.400<next><no_box><next>0.000, 0.000, 1.000, 1.000"
    )
    assert encode_video_boxes([None]) == "<no_box>"


def test_encode_clips_and_orders():
    assert normalize_box((1.2, -0.3, 0.4, 0.9)) == (0.4, 0.0, 1.0, 0.9)
    assert encode_box((-0.0, -1e-9, 0.5, 0.5)) == "0.000, 0.000, 0.500, 0.500"  # never "-0.000"


@pytest.mark.parametrize(
    "bad",
    [
        (0.1, 0.2, 0.3),
        (0.1, 0.2, 0.3, 0.4, 0.5),
        (0.1, math.nan, 0.3, 0.4),
        (0.1, 0.2, math.inf, 0.4),
        ("a", 0, 0, 0),
        None,
    ],
)
def test_encode_rejects_non_boxes(bad):
    with pytest.raises(FormatError) as info:
        encode_box(bad)
    assert isinstance(info.value, Sa2vaError)


def test_encode_rejects_empty_answers():
    with pytest.raises(FormatError):
        encode_boxes([])
    with pytest.raises(FormatError):
        encode_video_boxes([])


# ---------------------------------------------------------------- round trips


@settings(max_examples=300, deadline=None)
@given(st.lists(raw_box, min_size=1, max_size=5))
def test_boxes_round_trip(boxes):
    decoded = decode_boxes(encode_boxes(boxes))
    assert not is_failure(decoded)
    assert len(decoded) == len(boxes)
    for got, box in zip(decoded, boxes):
        assert close(got, normalize_box(box))
        assert got[0] <= got[2] and got[1] <= got[3]
        assert all(0.0 <= v <= 1.0 for v in got)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), raw_box), min_size=1, max_size=12))
def test_video_boxes_round_trip_with_absences(frames):
    text = encode_video_boxes(frames)
    decoded = decode_video_boxes(text, n_frames=len(frames))
    assert not is_failure(decoded)
    assert len(decoded) == len(frames)
    for got, box in zip(decoded, frames):
        if box is None:
            assert got is None
        else:
            assert close(got, normalize_box(box))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(raw_box, max_size=3), min_size=1, max_size=6))
def test_video_box_lists_round_trip(frames):
    decoded = decode_video_box_lists(encode_video_box_lists(frames))
    assert not is_failure(decoded)
    assert [len(f) for f in decoded] == [len(f) for f in frames]
    for got_f, f in zip(decoded, frames):
        for got, box in zip(got_f, f):
            assert close(got, normalize_box(box))


# ---------------------------------------------------------------- tolerance


@pytest.mark.parametrize(
    "text",
    [
        "0.1,0.2,0.3,0.4",
        "  0.100 ,0.200,\n0.300 , 0.400  ",
        "Sure, the object is at 0.100, 0.200, 0.300, 0.400.",
        "<box>0.100, 0.200, 0.300, 0.400</box><|im_end|>",
        "[0.1, 0.2, 0.3, 0.4]",
        "<SPATIAL>0.1, .2, 0.3, 0.40",
    ],
)
def test_decode_tolerates_whitespace_and_stray_text(text):
    assert decode_boxes(text) == [(0.1, 0.2, 0.3, 0.4)]


def test_decode_several_boxes_with_spaces_around_separator():
    assert decode_boxes("0.1, 0.2, 0.3, 0.4 <box_sep> 0.5, 0.5, 0.6, 0.6") == [
        (0.1, 0.2, 0.3, 0.4),
        (0.5, 0.5, 0.6, 0.6),
    ]
    assert decode_video_boxes(" <no_box> <next>\n0.1, 0.2, 0.3, 0.4 ") == [None, (0.1, 0.2, 0.3, 0.4)]


# ---------------------------------------------------------------- never guess


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no idea",
        "0.1, 0.2, 0.3",  # three numbers
        "0.1, 0.2, 0.3, 0.4, 0.5",  # five: stray digits
        "0.1 0.2 0.3 0.4",  # no commas
        "0.1, 0.2, 0.3, 1.4",  # outside [0, 1]
        "-0.1, 0.2, 0.3, 0.4",  # negative, not half-read as 0.1
        "0.5, 0.2, 0.3, 0.4",  # x1 > x2
        "0.1, 0.5, 0.3, 0.4",  # y1 > y2
        "1e-1, 0.2, 0.3, 0.4e1",
        "0.1.5, 0.2, 0.3, 0.4",
        "0.1, 0.2, 0.3, 0.4 and 0.5, 0.6, 0.7, 0.8",  # two answers
        "0.1, 0.2, 0.3, 0.4<box_sep>",  # dangling separator
        "<box_sep>0.1, 0.2, 0.3, 0.4",
        "0.1, 0.2, 0.3, 0.4<next>0.1, 0.2, 0.3, 0.4",  # a video answer is not an image answer
        "<no_box>",
        "object 2: 0.1, 0.2, 0.3, 0.4",  # stray digit
        "nan, 0.2, 0.3, 0.4",
    ],
)
def test_decode_boxes_rejects_malformed(text):
    result = decode_boxes(text)
    assert isinstance(result, ParseFailure), result
    assert not result  # falsy
    assert result.reason


@pytest.mark.parametrize(
    "text, n_frames",
    [
        ("0.1, 0.2, 0.3, 0.4<next>", None),
        ("<next><no_box>", None),
        ("<no_box><no_box>", None),  # two answers, no separator
        ("<no_box><next>0.1, 0.2, 0.3", None),
        ("<no_box><next>0.1, 0.2, 0.3, 0.4", 3),  # wrong frame count
        ("0.1, 0.2, 0.3, 0.4<box_sep>0.1, 0.2, 0.3, 0.4<next><no_box>", None),  # two boxes in a frame
        ("<no_box> then <next> 0.1, 0.2, 0.3, 0.4", None),  # text between entries
        ("<no_box><next>0.6, 0.2, 0.3, 0.4", None),
    ],
)
def test_decode_video_rejects_malformed(text, n_frames):
    assert is_failure(decode_video_boxes(text, n_frames=n_frames))


def test_video_box_lists_accept_several_boxes_per_frame():
    text = "0.1, 0.2, 0.3, 0.4<box_sep>0.5, 0.5, 0.6, 0.6<next><no_box>"
    assert decode_video_box_lists(text) == [[(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.6, 0.6)], []]


def test_decoders_never_raise_on_non_text():
    for fn in (decode_boxes, decode_video_boxes, decode_video_box_lists):
        assert is_failure(fn(None))  # type: ignore[arg-type]
        assert is_failure(fn(b"0.1, 0.2, 0.3, 0.4"))  # type: ignore[arg-type]


_ALPHABET = st.sampled_from(list("0123456789.,- \n-+eab") + ["<box_sep>", "<no_box>", "<next>", "<box>"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_ALPHABET, max_size=40).map("".join)))
def test_fuzz_decoders_return_valid_boxes_or_failure(text):
    result = decode_boxes(text)
    if not is_failure(result):
        assert result and all(0 <= b[0] <= b[2] <= 1 and 0 <= b[1] <= b[3] <= 1 for b in result)
        assert all(close(x, y) for x, y in zip(decode_boxes(encode_boxes(result)), result, strict=True))
    video = decode_video_box_lists(text)
    if not is_failure(video):
        assert video and all(0 <= b[0] <= b[2] <= 1 and 0 <= b[1] <= b[3] <= 1 for f in video for b in f)


@settings(max_examples=200, deadline=None)
@given(st.lists(raw_box, min_size=1, max_size=3), st.text(max_size=20), st.text(max_size=20))
def test_fuzz_stray_text_around_a_valid_answer(boxes, before, after):
    text = before + encode_boxes(boxes) + after
    result = decode_boxes(text)
    stray = before + after
    clean = not any(c.isdigit() for c in stray) and not any(
        t in text.replace(encode_boxes(boxes), " ") for t in ("<box_sep>", "<no_box>", "<next>", "<frame_")
    )
    # stray text glued to the answer can change it (a sign, a digit): then only "valid or failure" holds
    glued = (before[-1:] in set("+-.0123456789,eE") or after[:1] in set(".0123456789,eE<")) if stray else False
    assume(not glued)
    if clean:
        assert not is_failure(result)
        assert all(close(g, normalize_box(b)) for g, b in zip(result, boxes, strict=True))
    else:
        assert is_failure(result)


@pytest.mark.parametrize(
    "text", ["1" * 50_000, "0" + " " * 50_000, "1." * 25_000, "1e" * 25_000, "0.1 ," * 10_000 + "x"]
)
def test_long_garbage_is_rejected_in_linear_time(text):
    # with backtracking regexes a run of 50,000 digits took minutes; the grammar is possessive now
    assert is_failure(decode_boxes(text))
    assert is_failure(decode_video_boxes(text))
