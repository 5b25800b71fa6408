"""Spatial answers: boxes as text.

Format (encoders write exactly this; decoders accept it with any whitespace):

- a box is ``x1, y1, x2, y2``: coordinates normalised to [0, 1] by the image width
  (x) and height (y), each written with three decimals (``f"{v:.3f}"``), joined by
  ``", "``. Example: ``0.120, 0.050, 0.830, 0.990``.
- several boxes (one image, several objects): joined by ``<box_sep>``.
- a video answer: one entry per sampled frame, joined by ``<next>``; an entry is the
  frame's box(es), or ``<no_box>`` when the object is absent in that frame.

Encoding clips every coordinate to [0, 1] and orders each box (``x1 <= x2``,
``y1 <= y2``) *before* rounding, so the text always holds a valid box and the
round trip is exact to 0.0005. Non-finite coordinates or an empty answer raise
`FormatError`.

Decoding never raises on model text. It finds the answer by its grammar; the text
around it ("stray text": a preamble, ``<box>``/``</box>`` wrappers, an end-of-turn
token) is tolerated when it holds no digit (of any script; numbers are read in ASCII
digits only) and none of ``<box_sep>``, ``<no_box>``, ``<next>``, ``<frame_``;
otherwise the answer is ambiguous and the result is a `ParseFailure`. Also a failure:
no answer, two answers, a coordinate outside [0, 1], ``x1 > x2`` or ``y1 > y2``, the
wrong number of frames when one is asked for.
Zero-area boxes (``x1 == x2``) are valid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from .common import FormatError, ParseFailure
from .tokens import BOX_SEP_TOKEN, NEXT_TOKEN, NO_BOX_TOKEN

Box = tuple[float, float, float, float]

DECIMALS = 3
# "0.123, 0.456, 0.789, 0.999" is 26 tokens with digit-by-digit tokenisers (Qwen), 27 with a separator:
# the length estimate of a box answer (datasets' length grouping, inference's generation budget)
TOKENS_PER_BOX = 27

# A number as a model might write one. Signs and exponents are part of the match so
# that "-0.1" or "1e-3" is read whole (and then rejected), never half-read as "0.1".
# A number never starts right after a digit or a dot ("1.0.5" is not read as ".5"), and
# quantifiers are possessive (``*+``, ``++``): the scan stays linear on any text
# (a run of 50,000 digits took minutes with plain backtracking).
_NUM = r"(?<![0-9.])[+-]?(?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)(?:[eE][+-]?[0-9]++)?+"
_BOX = rf"{_NUM}\s*+,\s*+{_NUM}\s*+,\s*+{_NUM}\s*+,\s*+{_NUM}"
_BOXES = rf"{_BOX}(?:\s*+{re.escape(BOX_SEP_TOKEN)}\s*+{_BOX})*+"
_ENTRY = rf"(?:{_BOXES}|{re.escape(NO_BOX_TOKEN)})"
_VIDEO = rf"{_ENTRY}(?:\s*+{re.escape(NEXT_TOKEN)}\s*+{_ENTRY})*+"

_NUM_RE = re.compile(_NUM)
_BOXES_RE = re.compile(_BOXES)
_VIDEO_RE = re.compile(_VIDEO)
_FORBIDDEN_STRAY = re.compile(rf"{re.escape(BOX_SEP_TOKEN)}|{re.escape(NO_BOX_TOKEN)}|{re.escape(NEXT_TOKEN)}|<frame_")


# --------------------------------------------------------------------------- encode


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value)) + 0.0  # + 0.0 turns -0.0 into 0.0


def normalize_box(box: Sequence[float]) -> Box:
    """Clip to [0, 1] and order the corners: the box an encoder writes (before rounding).

    Raises `FormatError` for anything but four finite numbers.
    """
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError) as exc:
        raise FormatError(
            f"a box must be four numbers x1, y1, x2, y2, got {box!r}",
            fix="pass normalised corner coordinates (x / width, y / height)",
        ) from exc
    if len(values) != 4:
        raise FormatError(f"a box must be four numbers x1, y1, x2, y2, got {len(values)}: {box!r}")
    if not all(math.isfinite(v) for v in values):
        raise FormatError(f"a box has a non-finite coordinate: {box!r}", fix="drop the sample or fix its annotation")
    x1, y1, x2, y2 = (_clip01(v) for v in values)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def encode_box(box: Sequence[float]) -> str:
    """One box as ``x1, y1, x2, y2`` (clipped, ordered, three decimals)."""
    return ", ".join(f"{v:.{DECIMALS}f}" for v in normalize_box(box))


def encode_boxes(boxes: Sequence[Sequence[float]]) -> str:
    """An image answer: one or more boxes joined by ``<box_sep>``."""
    boxes = list(boxes)
    if not boxes:
        raise FormatError("an image answer needs at least one box", fix="drop samples whose target is empty")
    return BOX_SEP_TOKEN.join(encode_box(b) for b in boxes)


def encode_video_box_lists(frames: Sequence[Sequence[Sequence[float]]]) -> str:
    """A video answer with any number of boxes per frame (``[]`` = absent, ``<no_box>``)."""
    frames = list(frames)
    if not frames:
        raise FormatError("a video answer needs at least one frame", fix="sample at least one frame")
    entries = [encode_boxes(f) if len(f) else NO_BOX_TOKEN for f in frames]
    return NEXT_TOKEN.join(entries)


def encode_video_boxes(frames: Sequence[Sequence[float] | None]) -> str:
    """A video answer: one box per sampled frame, ``None`` where the object is absent."""
    frames = list(frames)
    return encode_video_box_lists([[] if f is None else [f] for f in frames])


# --------------------------------------------------------------------------- decode


def _find_one(pattern: re.Pattern[str], text: object, what: str) -> re.Match[str] | ParseFailure:
    """The single match of the answer grammar, with clean stray text around it."""
    if not isinstance(text, str):
        return ParseFailure(f"expected text, got {type(text).__name__}", repr(text))
    matches = list(pattern.finditer(text))
    if not matches:
        return ParseFailure(f"no {what} in the text", text)
    if len(matches) > 1:
        return ParseFailure(f"{len(matches)} separate {what}s in the text: ambiguous", text)
    match = matches[0]
    stray = text[: match.start()] + " " + text[match.end() :]
    digit = next((c for c in stray if c.isdigit()), None)  # any script's digits, superscripts too
    if digit is not None:
        return ParseFailure(f"stray digit {digit!r} outside the {what}: ambiguous", text)
    bad = _FORBIDDEN_STRAY.search(stray)
    if bad:
        return ParseFailure(f"stray {bad.group(0)!r} outside the {what}: ambiguous", text)
    return match


def _parse_boxes(segment: str, text: str) -> list[Box] | ParseFailure:
    boxes: list[Box] = []
    for part in segment.split(BOX_SEP_TOKEN):
        numbers = _NUM_RE.findall(part)
        if len(numbers) != 4:  # cannot happen for a grammar match; kept as a guard
            return ParseFailure(f"a box with {len(numbers)} numbers", text)
        try:
            x1, y1, x2, y2 = (float(n) for n in numbers)
        except ValueError:
            return ParseFailure(f"unreadable number in {part.strip()!r}", text)
        values = (x1, y1, x2, y2)
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            return ParseFailure(f"coordinate outside [0, 1] in {part.strip()!r}", text)
        if x1 > x2 or y1 > y2:
            return ParseFailure(f"corners out of order in {part.strip()!r}", text)
        boxes.append((x1 + 0.0, y1 + 0.0, x2 + 0.0, y2 + 0.0))
    return boxes


def decode_boxes(text: str) -> list[Box] | ParseFailure:
    """An image answer → its boxes (at least one), or a `ParseFailure`.

    ``<no_box>`` and ``<next>`` do not belong in an image answer: failure.
    """
    match = _find_one(_BOXES_RE, text, "box answer")
    if isinstance(match, ParseFailure):
        return match
    return _parse_boxes(match.group(0), text)


def decode_video_box_lists(text: str, n_frames: int | None = None) -> list[list[Box]] | ParseFailure:
    """A video answer → per frame the list of its boxes (``[]`` for ``<no_box>``), or a `ParseFailure`.

    With ``n_frames`` the answer must have exactly that many entries.
    """
    match = _find_one(_VIDEO_RE, text, "video box answer")
    if isinstance(match, ParseFailure):
        return match
    frames: list[list[Box]] = []
    for entry in match.group(0).split(NEXT_TOKEN):
        if entry.strip() == NO_BOX_TOKEN:
            frames.append([])
            continue
        boxes = _parse_boxes(entry, text)
        if isinstance(boxes, ParseFailure):
            return boxes
        frames.append(boxes)
    if n_frames is not None and len(frames) != n_frames:
        return ParseFailure(f"{len(frames)} frame entries, expected {n_frames}", text)
    return frames


def decode_video_boxes(text: str, n_frames: int | None = None) -> list[Box | None] | ParseFailure:
    """A video answer → per frame its box, or ``None`` for ``<no_box>``; or a `ParseFailure`.

    A frame with several boxes is a failure here (use `decode_video_box_lists` for
    multi-object answers). With ``n_frames`` the answer must have exactly that many entries.
    """
    frames = decode_video_box_lists(text, n_frames)
    if isinstance(frames, ParseFailure):
        return frames
    out: list[Box | None] = []
    for i, boxes in enumerate(frames):
        if len(boxes) > 1:
            return ParseFailure(f"frame {i} holds {len(boxes)} boxes, expected one or <no_box>", text)
        out.append(boxes[0] if boxes else None)
    return out
