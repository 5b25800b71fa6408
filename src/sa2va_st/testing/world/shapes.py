"""Coloured shapes, the only objects of the synthetic world, and their masks.

Every shape is a polygon (a circle is a 24-gon).  Its mask is the polygon
rasterized by pycocotools, and the image is painted through exactly that mask,
so a polygon segmentation, an RLE segmentation and the painted pixels all agree
to the pixel; boxes derived from the masks are therefore exact.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

RGB = tuple[int, int, int]

# Colours far apart in RGB so that JPEG/H.264 artefacts never make two alike.
PALETTE: dict[str, RGB] = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (50, 90, 225),
    "yellow": (235, 205, 45),
    "purple": (150, 70, 195),
    "orange": (245, 135, 30),
    "cyan": (40, 205, 215),
    "white": (248, 248, 248),
}

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "rectangle")

# Backgrounds are dull greys/browns: no palette colour is near them.
BACKGROUNDS: tuple[RGB, ...] = ((96, 96, 96), (70, 78, 88), (110, 100, 86), (60, 60, 66))

CIRCLE_SIDES = 24
JPEG_QUALITY = 92


@dataclass(frozen=True)
class PlacedShape:
    """One shape at one place: what it is, and the polygon that defines its pixels."""

    kind: str
    colour: str
    radius: float
    cx: float
    cy: float
    polygon: tuple[float, ...]  # flat x0, y0, x1, y1, ... in image pixels (2 decimals)

    @property
    def rgb(self) -> RGB:
        return PALETTE[self.colour]


def outline(kind: str, radius: float) -> list[tuple[float, float]]:
    """Vertices of a shape centred on the origin, clockwise in image coordinates."""
    r = radius
    if kind == "circle":
        return [
            (r * math.cos(2 * math.pi * k / CIRCLE_SIDES), r * math.sin(2 * math.pi * k / CIRCLE_SIDES))
            for k in range(CIRCLE_SIDES)
        ]
    if kind == "square":
        return [(-r, -r), (r, -r), (r, r), (-r, r)]
    if kind == "triangle":
        return [(0.0, -r), (r, r), (-r, r)]
    if kind == "diamond":
        return [(0.0, -r), (r, 0.0), (0.0, r), (-r, 0.0)]
    if kind == "rectangle":
        return [(-1.6 * r, -0.7 * r), (1.6 * r, -0.7 * r), (1.6 * r, 0.7 * r), (-1.6 * r, 0.7 * r)]
    raise ValueError(f"unknown shape kind {kind!r}; known: {SHAPE_KINDS}")


def half_extent(kind: str, radius: float) -> tuple[float, float]:
    """Half width and half height of the shape's bounding box."""
    if kind == "rectangle":
        return 1.6 * radius, 0.7 * radius
    return radius, radius


def place_shape(kind: str, colour: str, radius: float, cx: float, cy: float) -> PlacedShape:
    """The shape at (cx, cy).

    Radius, centre and vertices are rounded to 2 decimals first, so the recorded
    (kind, radius, cx, cy) rebuild exactly the same polygon, hence the same mask.
    """
    radius, cx, cy = round(radius, 2), round(cx, 2), round(cy, 2)
    polygon = tuple(round(v, 2) for x, y in outline(kind, radius) for v in (x + cx, y + cy))
    return PlacedShape(kind, colour, radius, cx, cy, polygon)


def rasterize(polygon: tuple[float, ...] | list[float], height: int, width: int) -> np.ndarray:
    """The pixels of a polygon as pycocotools sees them (uint8 H×W of 0/1); clipped to the image."""
    rles = mask_utils.frPyObjects([list(polygon)], height, width)
    return mask_utils.decode(mask_utils.merge(rles))


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE with `counts` as str, the form JSON and the upstream files use."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def rle_bbox(rle: dict) -> list[float]:
    """COCO [x, y, w, h] of an RLE, as pycocotools computes it."""
    as_bytes = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return [float(v) for v in mask_utils.toBbox(as_bytes)]


def paint(image: np.ndarray, mask: np.ndarray, rgb: RGB) -> None:
    """Fill the mask's pixels with one colour, in place."""
    image[mask.astype(bool)] = rgb


def noisy_background(rng: np.random.Generator, height: int, width: int, base: RGB, amplitude: int) -> np.ndarray:
    """A plain colour with mild per-pixel noise (uint8 H×W×3)."""
    noise = rng.integers(-amplitude, amplitude + 1, size=(height, width, 1), dtype=np.int16)
    return np.clip(np.asarray(base, dtype=np.int16)[None, None, :] + noise, 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray) -> bytes:
    """JPEG without chroma subsampling, so colour edges stay on the mask's border."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def indefinite_article(word: str) -> str:
    """'an' before a vowel sound ('an orange'), else 'a'."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def horizontal_word(cx: float, width: int) -> str:
    """'left', 'middle' or 'right' by thirds of the width."""
    third = width / 3
    return "left" if cx < third else ("right" if cx >= 2 * third else "middle")


def vertical_word(cy: float, height: int) -> str:
    """'top', 'middle' or 'bottom' by thirds of the height."""
    third = height / 3
    return "top" if cy < third else ("bottom" if cy >= 2 * third else "middle")
