"""Referring expression segmentation on images: cIoU and gIoU of binary masks.

Follows LISA's ``validate`` (dvlab-research/LISA, ``train_ds.py``) and Sa2VA's RefCOCO evaluation
(bytedance/Sa2VA, ``projects/sa2va/evaluation/dataset/RES.py``), which compute the same two numbers.

- Masks are boolean ``(H, W)`` arrays (any array is read as ``!= 0``); a prediction must have its
  target's shape (nothing is resized here).
- Per sample: ``I`` = pixels in both masks, ``U`` = pixels in either; ``IoU = I / U``, and a sample
  whose union is empty (empty prediction of an empty target) scores 1 (their "no-object target").
- **cIoU** (cumulative IoU): ``sum(I) / sum(U)`` over the split, so large objects weigh more; 0 when
  the summed union is 0 (their ``1e-10`` guard gives 0).
- **gIoU** (generalised, i.e. mean IoU): the mean of the per-sample IoUs.
- Their ``1e-5`` / ``1e-10`` epsilons in the denominators are left out (they move scores by less
  than 1e-5).
- A prediction that is ``None`` (no mask could be read from the answer) is an all-zero mask of the
  target's shape, as Sa2VA does; it is counted in ``unparseable`` (and scores 1 on an empty target).
- Scores are fractions in [0, 1]; ``n`` counts the samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pair(pred: np.ndarray | None, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(gt) != 0
    if target.ndim != 2:
        raise ValueError(f"a target mask is (H, W), got shape {target.shape}")
    prediction = np.zeros_like(target) if pred is None else np.asarray(pred) != 0
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} masks differ in shape")
    return prediction, target


def mask_iou_stats(pred_masks: Sequence[np.ndarray | None], gt_masks: Sequence[np.ndarray]) -> dict[str, float]:
    """``cIoU``, ``gIoU``, ``n`` and ``unparseable`` (see the module docstring)."""
    if len(pred_masks) != len(gt_masks):
        raise ValueError(f"{len(pred_masks)} predicted masks for {len(gt_masks)} targets")
    if len(gt_masks) == 0:
        raise ValueError("no masks to score")
    inter = np.zeros(len(gt_masks), dtype=np.int64)
    union = np.zeros(len(gt_masks), dtype=np.int64)
    for i, (pred, gt) in enumerate(zip(pred_masks, gt_masks)):
        prediction, target = _pair(pred, gt)
        inter[i] = np.count_nonzero(prediction & target)
        union[i] = np.count_nonzero(prediction | target)
    per_sample = np.divide(inter, union, out=np.ones(len(union)), where=union > 0)
    total_union = int(union.sum())
    return {
        "cIoU": float(inter.sum() / total_union) if total_union else 0.0,
        "gIoU": float(per_sample.mean()),
        "n": len(gt_masks),
        "unparseable": sum(p is None for p in pred_masks),
    }
