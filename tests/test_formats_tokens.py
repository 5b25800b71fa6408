"""The special tokens: upstream order, no duplicates, and what the answers may contain."""

from __future__ import annotations

from sa2va_st.formats import SPECIAL_TOKENS, tokens
from sa2va_st.formats.boxes import encode_boxes, encode_video_boxes
from sa2va_st.formats.windows import encode_window_tokens


def test_upstream_order():
    assert list(SPECIAL_TOKENS) == [
        "<SPATIAL>",
        "<TEMPORAL>",
        "<box_sep>",
        "<no_box>",
        "<next>",
        "<single_img>",
        *[f"<frame_{d}>" for d in range(10)],
    ]
    assert len(set(SPECIAL_TOKENS)) == len(SPECIAL_TOKENS) == 16
    assert isinstance(SPECIAL_TOKENS, tuple)  # a constant: nobody appends to it by accident


def test_named_constants_are_members():
    for name in ("SPATIAL_TOKEN", "TEMPORAL_TOKEN", "BOX_SEP_TOKEN", "NO_BOX_TOKEN", "NEXT_TOKEN", "SINGLE_IMG_TOKEN"):
        assert getattr(tokens, name) in SPECIAL_TOKENS
    assert tokens.FRAME_TOKENS == SPECIAL_TOKENS[6:]


def test_answers_use_only_special_tokens_and_plain_text():
    answers = [
        encode_boxes([(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.6, 0.7)]),
        encode_video_boxes([(0.1, 0.2, 0.3, 0.4), None]),
        encode_window_tokens(3, 47),
    ]
    for text in answers:
        rest = text
        for tok in SPECIAL_TOKENS:
            rest = rest.replace(tok, "")
        assert "<" not in rest and ">" not in rest, text
