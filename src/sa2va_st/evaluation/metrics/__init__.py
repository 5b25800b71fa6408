"""Scores computed from saved predictions and ground truth only: nothing here runs a model.

Every score is a fraction in [0, 1] (never a percentage), unrounded; thresholds are inclusive
(``IoU >= t``). Every result dict also carries ``n`` (samples scored) and, except the recall
ceiling, ``unparseable`` (predictions that are ``None`` because the answer could not be parsed).
An unparseable answer is never dropped: it stays in every denominator. The definitions, and the
peer implementation each follows, are in each module's docstring and in ``docs/evaluation.md``.

Keys, by function:

- `r1_at` (`temporal`, moment retrieval, Moment-DETR): ``R1@0.3``, ``R1@0.5``, ``R1@0.7`` — fraction
  of queries whose top-1 window has IoU >= t with its best-matching ground-truth window; ``mIoU`` —
  mean of that IoU. ``None`` → IoU 0. `miou` returns the ``mIoU`` alone.
- `mean_average_precision` (`temporal`, Moment-DETR): ``mAP@0.5`` … ``mAP@0.95`` — per-query AP of
  the scored windows (VOC-2011 all-point interpolation), averaged over queries; ``mAP`` — their mean
  over thresholds. ``None`` (or no window) → AP 0.
- `recall_ceiling` (`temporal`): ``R1@t``, ``mIoU`` — the best any answer on the grid (``fps`` or
  ``n_bins``) could score; ``n`` only (ground truth alone, nothing to parse).
- `box_accuracy` (`boxes`, REC): ``Acc@0.5`` — fraction with box IoU >= 0.5; ``box_mIoU`` — mean box
  IoU. ``None`` → IoU 0.
- `frame_box_accuracy` (`boxes`, video grounding by boxes): ``Acc@0.5``, ``box_mIoU`` over (expression,
  frame) pairs, every object's box in the frame matched; ``None`` → 0 on each of its frames.
- `mask_iou_stats` (`masks`, LISA / Sa2VA): ``cIoU`` — summed intersections over summed unions;
  ``gIoU`` — mean per-sample IoU, an empty prediction of an empty target scoring 1. ``None`` → an
  all-zero mask of the target's shape.
- `j_and_f` (`jf`, DAVIS-2017 metrics averaged as MeViS): ``J`` — region IoU, ``F`` — boundary
  F-measure, each the mean over an expression's frames then over expressions; ``J&F`` — their mean.
  ``None`` → all-zero masks of the target's shape. `region_similarity` and `boundary_f` give the
  per-frame values.

`box_iou`, `window_iou` and `frame_boxes_match` (`iou`) score single answers (training answers).
"""

from .boxes import box_accuracy, frame_box_accuracy, frame_iou
from .iou import box_iou, frame_boxes_match, window_iou
from .jf import boundary_f, j_and_f, region_similarity
from .masks import mask_iou_stats
from .temporal import (
    best_grid_iou,
    grid_points,
    mean_average_precision,
    miou,
    r1_at,
    recall_ceiling,
    temporal_iou_matrix,
    top1_ious,
)

__all__ = [
    "best_grid_iou",
    "boundary_f",
    "box_accuracy",
    "frame_box_accuracy",
    "frame_iou",
    "box_iou",
    "frame_boxes_match",
    "grid_points",
    "j_and_f",
    "mask_iou_stats",
    "mean_average_precision",
    "miou",
    "r1_at",
    "recall_ceiling",
    "region_similarity",
    "temporal_iou_matrix",
    "top1_ious",
    "window_iou",
]
