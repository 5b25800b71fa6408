"""Masks (COCO polygons and RLE) to tight pixel boxes, and pixel boxes to normalised boxes.

pycocotools' C code trusts its input: a compressed RLE string whose runs add up to more than
height x width makes it write or read past its buffers. So every RLE is first parsed and
checked here in Python (its runs must cover the image exactly), then handed to pycocotools,
which computes the box (`toBbox`) and rasterises polygons (`frPyObjects`).

A pixel box is (x0, y0, x1, y1) in pixels with x1, y1 exclusive: the mask's pixels are the
columns x0..x1-1 and rows y0..y1-1. Normalised boxes divide by the image's width and height,
so they lie in [0, 1] and a box over the whole image is [0, 0, 1, 1].
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import AnnotationError
from .common import as_int, rounded, type_name

PixelBox = tuple[int, int, int, int]
Box = tuple[float, float, float, float]

RLE_FIX = "the mask is corrupt; download and unpack the dataset again"


@dataclass(frozen=True)
class Rle:
    """A checked RLE in the form pycocotools takes: size [height, width], compressed bytes counts."""

    height: int
    width: int
    counts: bytes

    def coco(self) -> dict:
        return {"size": [self.height, self.width], "counts": self.counts}


MAX_CHARS_PER_COUNT = 12  # 60 bits: far above any image's pixel count, and safe in int64


def decode_counts_string(text: bytes, *, file: Path, key: str) -> np.ndarray:
    """The run lengths of a compressed COCO RLE string (the inverse of pycocotools' rleToString).

    Each count is a little-endian base-32 number in characters 48..111, 5 bits per character,
    bit 0x20 meaning "more follows" and bit 0x10 of the last character the sign; from the third
    count on, counts are stored as differences to the count two places before. Vectorised with
    numpy: real mask dicts hold hundreds of thousands of these strings.
    """
    if not text:
        return np.zeros(0, dtype=np.int64)
    chars = np.frombuffer(text, dtype=np.uint8).astype(np.int64) - 48
    if chars.min() < 0 or chars.max() >= 64:
        bad = int(np.flatnonzero((chars < 0) | (chars >= 64))[0])
        raise AnnotationError(
            f"RLE string holds {chr(text[bad])!r}, outside the COCO alphabet", file=str(file), key=key, fix=RLE_FIX
        )
    last = (chars & 0x20) == 0  # the last character of each number
    if not last[-1]:
        raise AnnotationError("RLE string ends in the middle of a number", file=str(file), key=key, fix=RLE_FIX)
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > MAX_CHARS_PER_COUNT:
        raise AnnotationError(
            "RLE string holds a run length too large for any image", file=str(file), key=key, fix=RLE_FIX
        )
    position = np.arange(len(chars)) - np.repeat(starts, lengths)  # index of each character inside its number
    values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)
    negative = (chars[ends] & 0x10) != 0
    values = values - (negative.astype(np.int64) << (5 * lengths))
    counts = values.copy()
    if len(counts) > 2:  # c[i] = d[i] + c[i - 2] from i = 3 on
        counts[3::2] = np.cumsum(values[1::2])[1:]
        counts[4::2] = np.cumsum(values[2::2])[1:]
    return counts


def check_rle(obj: Any, *, file: Path, key: str, size: tuple[int, int] | None = None) -> Rle:
    """A COCO RLE dict ({size: [h, w], counts: str | bytes | list}) checked to decode to exactly h x w pixels.

    `size`, when given, is the (height, width) the mask must have (the image's).
    """
    if not isinstance(obj, dict) or "size" not in obj or "counts" not in obj:
        raise AnnotationError(
            f"a mask must be an RLE object with 'size' and 'counts', got {type_name(obj)}",
            file=str(file),
            key=key,
            fix=RLE_FIX,
        )
    shape = obj["size"]
    if hasattr(shape, "tolist") and not isinstance(shape, (bytes, str)):  # a numpy array from a pickle
        shape = shape.tolist()
    if not isinstance(shape, (list, tuple)) or len(shape) != 2:
        raise AnnotationError(
            f"RLE 'size' must be [height, width], got {shape!r}", file=str(file), key=key, fix=RLE_FIX
        )
    height, width = (as_int(v, file=file, key=f"{key}.size") for v in shape)
    if height <= 0 or width <= 0:
        raise AnnotationError(f"RLE 'size' must be positive, got {shape!r}", file=str(file), key=key, fix=RLE_FIX)
    if size is not None and (height, width) != tuple(size):
        raise AnnotationError(
            f"mask is {height}x{width} (h x w), expected {size[0]}x{size[1]} (its image's size, or that of the entry's other frames)",
            file=str(file),
            key=key,
            fix=RLE_FIX,
        )
    raw = obj["counts"]
    if hasattr(raw, "tolist") and not isinstance(raw, (bytes, str)):
        raw = raw.tolist()
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    pixels = height * width
    if isinstance(raw, (bytes, bytearray)):
        counts = decode_counts_string(bytes(raw), file=file, key=key)
        encoded = bytes(raw)
    elif isinstance(raw, (list, tuple)):  # uncompressed (COCO crowd regions): Python ints, checked one by one
        values = [as_int(v, file=file, key=f"{key}.counts") for v in raw]
        if any(v > pixels for v in values):
            raise AnnotationError(
                f"RLE has a run longer than the mask's {pixels} pixels", file=str(file), key=key, fix=RLE_FIX
            )
        counts = np.array(values, dtype=np.int64)
        encoded = b""
    else:
        raise AnnotationError(
            f"RLE 'counts' is a {type_name(raw)}, expected a string or a list", file=str(file), key=key, fix=RLE_FIX
        )
    if len(counts) and counts.min() < 0:
        raise AnnotationError("RLE has a negative run length", file=str(file), key=key, fix=RLE_FIX)
    if len(counts) and counts.max() > pixels:
        raise AnnotationError(
            f"RLE has a run longer than the mask's {pixels} pixels", file=str(file), key=key, fix=RLE_FIX
        )
    total = int(counts.sum())
    if total != pixels:
        raise AnnotationError(
            f"RLE runs cover {total} pixels, the mask has {height}x{width} = {pixels}",
            file=str(file),
            key=key,
            fix=RLE_FIX,
        )
    if not encoded or (counts[1:] == 0).any():
        # pycocotools' toBbox would count the pixel before a zero-length run: re-encode without them.
        canonical = merge_empty_runs(counts.tolist())
        encoded = mask_utils.frPyObjects({"size": [height, width], "counts": canonical}, height, width)["counts"]
    return Rle(height, width, encoded)


def merge_empty_runs(counts: Sequence[int]) -> list[int]:
    """The same mask with no zero-length runs (except a leading one: masks start with a 0-run)."""
    merged: list[int] = [counts[0]] if counts else []
    for count in counts[1:]:
        if count == 0:
            merged.append(0)  # placeholder: joined with the next run below
            continue
        if len(merged) >= 2 and merged[-1] == 0:
            merged.pop()
            merged[-1] += count
        else:
            merged.append(count)
    while len(merged) > 1 and merged[-1] == 0:
        merged.pop()
    return merged


def rle_box(rle: Rle) -> PixelBox | None:
    """The tight pixel box of an RLE mask; None when it has no pixel."""
    coco = rle.coco()
    if int(mask_utils.area(coco)) == 0:
        return None
    x, y, w, h = (int(v) for v in mask_utils.toBbox(coco))
    return (x, y, x + w, y + h)


def frame_boxes(
    entries: Sequence[Any], memo: dict | None = None
) -> tuple[list[PixelBox | None], tuple[int, int] | None] | None:
    """Per-frame pixel boxes of a mask dict entry (a list of compressed RLEs or nulls), all frames at once.

    The same answer as ``rle_box(check_rle(e, size=...))`` frame by frame (boxes, and the masks'
    (height, width), None when every frame is null), but decoded and checked with numpy over the
    whole list at once: real mask dicts hold millions of masks. Returns None, leaving the entry to
    that per-frame path (which names the problem, or handles the rare form), unless every mask is a
    dict with an int [height, width] equal to the first one's and a str/bytes count string that
    decodes to exactly height x width pixels without zero-length runs after the first.

    `memo` (a dict kept by the caller) remembers answers by content: lists holding the same masks
    (Ref-YouTube-VOS repeats an object's masks for each of its expressions) are decoded once.
    """
    strings: list[bytes] = []
    frames: list[int] = []
    size: list[int] | None = None
    for t, entry in enumerate(entries):
        if entry is None:
            continue
        if type(entry) is not dict:
            return None
        shape, raw = entry.get("size"), entry.get("counts")
        if type(shape) is not list or len(shape) != 2 or type(shape[0]) is not int or type(shape[1]) is not int:
            return None
        if size is None:
            if shape[0] <= 0 or shape[1] <= 0:
                return None
            size = shape
        elif shape[0] != size[0] or shape[1] != size[1]:
            return None
        if type(raw) is str:
            try:
                raw = raw.encode("latin1")
            except UnicodeEncodeError:
                return None
        elif type(raw) is not bytes:
            return None
        strings.append(raw)
        frames.append(t)
    boxes: list[PixelBox | None] = [None] * len(entries)
    if size is None:
        return boxes, None
    height, width = size
    key = (height, width, len(entries), tuple(frames), tuple(strings)) if memo is not None else None
    found = memo.get(key) if memo is not None else None
    if found is None:
        found = _string_boxes(strings, height, width)
        if found is None:
            return None
        if memo is not None:
            memo[key] = found
    for t, box in zip(frames, found):
        boxes[t] = box
    return boxes, (height, width)


_SIGNED = np.array([(c ^ 0x10) - 0x10 if c < 32 else 0 for c in range(256)], dtype=np.int64)  # a last character's value


def _string_boxes(strings: list[bytes], height: int, width: int) -> list[PixelBox | None] | None:
    """Boxes of compressed COCO RLE strings of one size, or None when any string is malformed, does not
    cover height x width exactly or has a zero-length run after the first (what check_rle re-encodes).

    The numbers are decoded as in decode_counts_string, for all strings at once; the box follows
    pycocotools' rleToBbox: the hull of the one-runs' first and last pixels, where a run that goes on
    into the next column covers every row.
    """
    pixels = height * width
    if pixels >= 1 << 32:  # pycocotools counts in 32 bits: leave such masks to it
        return None
    count = len(strings)
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=count)
    if not count or lengths.min() == 0:
        return None
    chars = np.frombuffer(b"".join(strings), dtype=np.uint8) - np.uint8(48)  # wraps: anything below '0' is >= 64
    if chars.max() >= 64:
        return None
    last = chars < 32  # no "more follows" bit: the last character of a number
    string_ends = np.cumsum(lengths) - 1
    if not last[string_ends].all():  # a string ends inside a number
        return None
    ends = np.flatnonzero(last)  # one per number; numbers never span two strings
    values = _SIGNED[chars[ends]]
    more = np.flatnonzero(~last)  # characters of numbers longer than one character (a few per string)
    if len(more):
        number = np.searchsorted(ends, more)
        begin = np.where(number > 0, ends[np.maximum(number - 1, 0)] + 1, 0)
        offset = more - begin  # 5-bit group of the character, low bits first
        size = ends[number] - begin + 1
        if size.max() > MAX_CHARS_PER_COUNT:
            return None
        head = offset == 0  # one per long number: its last character holds the high (signed) bits
        values[number[head]] <<= 5 * (size[head] - 1)
        np.add.at(values, number, (chars[more] & 0x1F).astype(np.int64) << (5 * offset))
    # counts[i] = values[i] + counts[i - 2] from each string's 4th number on: running sums along every
    # other number of the whole batch, less their value just before the string's part of the chain
    per_string = np.searchsorted(ends, string_ends, side="right")
    numbers = np.diff(per_string, prepend=0)
    first = per_string - numbers
    chain = np.empty_like(values)
    chain[0::2] = np.cumsum(values[0::2])
    chain[1::2] = np.cumsum(values[1::2])
    odd_base = np.where(first > 0, chain[np.maximum(first - 1, 0)], 0)
    odd = (np.arange(len(values)) & 1) != np.repeat(first & 1, numbers)  # odd place in its string: a one-run
    counts = chain - np.where(odd, np.repeat(odd_base, numbers), np.repeat(chain[first], numbers))
    counts[first] = values[first]
    if counts.min() < 0 or counts.max() > pixels or (np.add.reduceat(counts, first) != pixels).any():
        return None
    zeros = np.flatnonzero(counts == 0)
    if len(zeros) and not np.isin(zeros, first).all():
        return None
    runs = np.flatnonzero(odd)
    if not len(runs):
        return [None] * count
    before = np.cumsum(counts) - counts
    per = numbers // 2  # one-runs per string
    start = before[runs] - np.repeat(before[first], per)  # first pixel of each one-run, column-major
    length = counts[runs]
    row = start % height
    end_row = row + length - 1
    wraps = end_row >= height
    has_runs = np.flatnonzero(per)
    run_first = (np.cumsum(per) - per)[has_runs]
    run_last = run_first + per[has_runs] - 1
    x0 = start[run_first] // height
    x1 = (start[run_last] + length[run_last] - 1) // height + 1
    y0 = np.minimum.reduceat(np.where(wraps, 0, row), run_first)
    y1 = np.maximum.reduceat(np.where(wraps, height - 1, end_row), run_first) + 1
    found: list[PixelBox | None] = [None] * count
    for k, box in zip(has_runs.tolist(), np.stack([x0, y0, x1, y1], axis=1).tolist()):
        found[k] = tuple(box)
    return found


def polygons_rle(polygons: Any, height: int, width: int, *, file: Path, key: str) -> tuple[Rle | None, int]:
    """One RLE for a COCO polygon segmentation (a list of flat [x0, y0, x1, y1, ...] lists).

    Returns (rle or None when no part has an area, number of degenerate parts skipped). A part
    with fewer than 3 points has no area; pycocotools would even read a 2-point part as a box.
    """
    if not isinstance(polygons, list) or not polygons:
        raise AnnotationError(
            "a polygon segmentation must be a non-empty list of coordinate lists", file=str(file), key=key, fix=RLE_FIX
        )
    parts, degenerate = [], 0
    for index, part in enumerate(polygons):
        where = f"{key}[{index}]"
        if not isinstance(part, list) or len(part) % 2:
            raise AnnotationError("a polygon must be a flat list of x, y pairs", file=str(file), key=where, fix=RLE_FIX)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in part):
            raise AnnotationError(
                "a polygon holds a value that is not a finite number", file=str(file), key=where, fix=RLE_FIX
            )
        if len(part) < 6:
            degenerate += 1
            continue
        parts.append([float(v) for v in part])
    if not parts:
        return None, degenerate
    merged = mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    return Rle(height, width, merged["counts"]), degenerate


def normalise(box: PixelBox | None, width: int, height: int) -> Box | None:
    """A pixel box divided by the image size, rounded to 6 decimals; None stays None."""
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return (rounded(x0 / width), rounded(y0 / height), rounded(x1 / width), rounded(y1 / height))


@functools.lru_cache(maxsize=64)
def _fractions(size: int) -> tuple[float, ...]:
    """rounded(k / size) for k = 0..size: the normalised coordinates of one image dimension."""
    return tuple(rounded(k / size) for k in range(size + 1))


def normalise_all(boxes: Iterable[PixelBox | None], width: int, height: int) -> tuple[Box | None, ...]:
    """normalise() of every box (of masks of this size: coordinates in 0..width, 0..height), by table look-up."""
    xs, ys = _fractions(width), _fractions(height)
    return tuple([None if b is None else (xs[b[0]], ys[b[1]], xs[b[2]], ys[b[3]]) for b in boxes])
