"""Pictures of spatial answers: the expected boxes (green) and the answered ones (red) drawn on the image
or on each shown frame of a clip, as PNG bytes. Boxes are normalised ``(x1, y1, x2, y2)``. Where an image
record carries masks (`evaluation.masks`), the true mask is tinted green and SAM2's mask red beside it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..evaluation.masks import decode_mask
from ..evaluation.metrics import frame_iou

EXPECTED, ANSWERED = (40, 200, 60), (230, 40, 40)
SCALE = 3  # the synthetic images are small: draw them larger


def _tint(image: Image.Image, mask: np.ndarray, colour: tuple[int, int, int]) -> Image.Image:
    """The image with the mask's pixels blended half-way to `colour`."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    pixels[mask] = 0.5 * pixels[mask] + 0.5 * np.asarray(colour, dtype=np.float32)
    return Image.fromarray(pixels.astype(np.uint8))


def _draw(
    image: Image.Image,
    expected: Sequence[Sequence[float]],
    answered: Sequence[Sequence[float]] | None,
    masks: Sequence[np.ndarray | None] = (),
):
    image = image.convert("RGB")
    for mask, colour in zip(masks, (EXPECTED, ANSWERED)):
        if mask is not None:
            image = _tint(image, mask, colour)
    image = image.resize((image.width * SCALE, image.height * SCALE), Image.NEAREST)
    pen = ImageDraw.Draw(image)
    for boxes, colour in ((expected, EXPECTED), (answered or [], ANSWERED)):
        for x1, y1, x2, y2 in boxes:
            pen.rectangle(
                [x1 * image.width, y1 * image.height, x2 * image.width, y2 * image.height], outline=colour, width=2
            )
    return image


def _frames_of(row: Mapping[str, Any], record: Mapping[str, Any], root: Path) -> list[Path]:
    if "image_path" in row:
        return [root / row["image_path"]]
    frames = list(row["frames"])
    return [root / row["frame_dir"] / frames[i] for i in record["frame_indices"]]


def picture(record: Mapping[str, Any], row: Mapping[str, Any], root: str | Path = ".") -> bytes:
    """One answer drawn: the image, or the clip's shown frames side by side."""
    panels = []
    answered = record["prediction"]
    for t, path in enumerate(_frames_of(row, record, Path(root))):
        boxes = answered[t] if answered is not None and t < len(answered) else None
        panels.append(_draw(Image.open(path), record["expected"][t], boxes))
        if record.get("expected_mask") is not None:  # an image with masks: a second panel shows them
            masks = [
                decode_mask(record["expected_mask"]),
                None if record["mask"] is None else decode_mask(record["mask"]),
            ]
            panels.append(_draw(Image.open(path), [], None, masks))
    width = sum(p.width for p in panels) + 4 * (len(panels) - 1)
    sheet = Image.new("RGB", (width, max(p.height for p in panels)), "white")
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width + 4
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def answer_iou(record: Mapping[str, Any]) -> float:
    """Mean over shown frames of `metrics.frame_iou` (0 for a frame with another count of boxes, 1 for a
    frame rightly answered with none): a ranking for the gallery, not a metric."""
    if record["prediction"] is None or len(record["prediction"]) != len(record["expected"]):
        return 0.0
    return float(np.mean([frame_iou(a, e)[0] for a, e in zip(record["prediction"], record["expected"])]))


def examples_and_failures(records: Sequence[Mapping[str, Any]], count: int = 4) -> tuple[list, list]:
    """``count`` records in split order (examples) and the ``count`` with the lowest `answer_iou` (failures)."""
    ranked = sorted(records, key=answer_iou)
    return list(records[:count]), ranked[:count]
