"""Referring expression comprehension (REC): one predicted box per expression.

- Boxes are ``(x1, y1, x2, y2)`` in any one unit (pixels, or coordinates normalised the same way
  for the prediction and the target); the IoU is `iou.box_iou` (two zero-area boxes score 1 only
  when identical).
- **Acc@t** (``Acc@0.5`` by default): the fraction of expressions whose predicted box has IoU
  ``>= t`` (inclusive) with the expected box — the REC accuracy of the RefCOCO benchmarks.
- **box_mIoU**: the mean IoU over all expressions.
- A prediction that is ``None`` (the answer could not be parsed) scores IoU 0 and stays in both
  denominators; ``unparseable`` counts them and ``n`` counts all expressions.
- Scores are fractions in [0, 1].

**Video grounding by boxes** (`frame_box_accuracy`): an expression answers, per sampled frame, one
box per referred object visible there (in the objects' order), none where none is. Each (expression,
frame) pair is one sample: its IoU is the mean IoU of the i-th predicted box with the i-th expected
box when there are as many (1 for a frame correctly answered with no box, 0 when the counts differ),
and it counts for ``Acc@t`` when *every* box has IoU ``>= t``. A ``None`` prediction, or one with
another number of frames, scores 0 on each of its frames (all counted in ``n``; the expression counts
once in ``unparseable``). ``n`` counts frames, ``expressions`` the expressions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .iou import box_iou

Box = Sequence[float]


def _check_box(box: Box, name: str) -> Box:
    if len(box) != 4 or not np.isfinite(np.asarray(box, dtype=np.float64)).all():
        raise ValueError(f"{name}: a box is four finite numbers (x1, y1, x2, y2), got {box!r}")
    return box


def box_accuracy(predicted: Sequence[Box | None], expected: Sequence[Box], threshold: float = 0.5) -> dict[str, float]:
    """``Acc@{threshold}``, ``box_mIoU``, ``n`` and ``unparseable`` (see the module docstring)."""
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predicted boxes for {len(expected)} expressions")
    if len(expected) == 0:
        raise ValueError("no expressions to score")
    ious = np.array(
        [
            0.0 if p is None else box_iou(_check_box(p, "predicted"), _check_box(e, "expected"))
            for p, e in zip(predicted, expected)
        ]
    )
    return {
        f"Acc@{threshold:g}": float(np.mean(ious >= threshold)),
        "box_mIoU": float(ious.mean()),
        "n": len(ious),
        "unparseable": sum(p is None for p in predicted),
    }


def frame_iou(predicted: Sequence[Box], expected: Sequence[Box], threshold: float = 0.5) -> tuple[float, bool]:
    """(mean IoU, every box >= threshold) of one frame; see the module docstring."""
    if len(predicted) != len(expected):
        return 0.0, False
    if not expected:
        return 1.0, True
    ious = [box_iou(_check_box(p, "predicted"), _check_box(e, "expected")) for p, e in zip(predicted, expected)]
    return float(np.mean(ious)), all(i >= threshold for i in ious)


def frame_box_accuracy(
    predicted: Sequence[Sequence[Sequence[Box]] | None],
    expected: Sequence[Sequence[Sequence[Box]]],
    threshold: float = 0.5,
) -> dict[str, float]:
    """Per (expression, frame): ``Acc@{threshold}``, ``box_mIoU``, ``n`` (frames), ``expressions`` and
    ``unparseable`` (see the module docstring)."""
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} expressions")
    if len(expected) == 0:
        raise ValueError("no expressions to score")
    ious, hits = [], []
    for frames_p, frames_e in zip(predicted, expected):
        usable = frames_p is not None and len(frames_p) == len(frames_e)
        for t, frame_e in enumerate(frames_e):
            iou, hit = frame_iou(frames_p[t], frame_e, threshold) if usable else (0.0, False)
            ious.append(iou)
            hits.append(hit)
    return {
        f"Acc@{threshold:g}": float(np.mean(hits)),
        "box_mIoU": float(np.mean(ious)),
        "n": len(ious),
        "expressions": len(expected),
        "unparseable": sum(p is None for p in predicted),
    }
