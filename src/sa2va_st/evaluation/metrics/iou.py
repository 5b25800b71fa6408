"""Intersection over union of boxes and of time windows.

- **Box IoU** of ``(x1, y1, x2, y2)`` boxes (any unit, x2 >= x1, y2 >= y1): area of the intersection
  over the area of the union; two boxes of zero area score 1 if they are the same box, else 0.
- **Window IoU** of ``(start, end)`` windows: length of the overlap over the length of the union (the
  span from the first start to the last end only when they overlap); two empty windows score 1 if equal.
- **Frame match** (`frame_boxes_match`): a frame's predicted boxes answer its expected boxes when there
  are as many, and the i-th predicted box has IoU >= ``threshold`` with the i-th expected one (answers
  list objects in a fixed order); an empty frame is answered by no box.
"""

from __future__ import annotations

from collections.abc import Sequence


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union <= 0:
        return float(tuple(a) == tuple(b))
    return inter / union


def window_iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    if union <= 0:
        return float(tuple(a) == tuple(b))
    return inter / union


def frame_boxes_match(
    predicted: Sequence[Sequence[float]], expected: Sequence[Sequence[float]], threshold: float
) -> bool:
    if len(predicted) != len(expected):
        return False
    return all(box_iou(p, e) >= threshold for p, e in zip(predicted, expected))
