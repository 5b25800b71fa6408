"""Moment retrieval: one query, a video, and the window(s) of it the query describes.

Conventions follow Moment-DETR's ``standalone_eval`` (github jayleicn/moment_detr, ``eval.py`` and
``utils.py``); where this module departs from it, the departure is named.

- **Windows** are ``(start, end)`` in seconds. A query's ground truth is one window or a list of
  windows (DiDeMo-style queries have several); a query needs at least one, each with ``end >= start``.
- **Temporal IoU** (`temporal_iou_matrix`): overlap length over union length. A pair whose union has
  no length scores 0 (Moment-DETR's paired IoU does the same), so a zero-length window never counts
  as a hit, and a reversed predicted window (``end < start``) overlaps nothing and scores 0.
  (`iou.window_iou`, used for training answers, scores two equal empty windows 1; that case only.)
- **Top-1 IoU of a query** (`top1_ious`): the IoU of its one predicted window with the ground-truth
  window that matches it best (maximum over the query's ground truths), as Moment-DETR's R1 picks
  the ground truth of highest IoU. A prediction that is ``None`` (the answer could not be parsed)
  scores 0 and stays in every denominator.
- **R1@t** (`r1_at`): the fraction of queries whose top-1 IoU is ``>= t`` (inclusive, as
  Moment-DETR). **mIoU** (`miou`): the mean top-1 IoU over all queries. Thresholds are rounded to
  two decimals before use, as Moment-DETR does (``np.linspace`` gives ``0.6000000000000001``).
- **mAP** (`mean_average_precision`): each query has a list of scored windows
  ``(start, end, score)``. Only the first ``max_windows`` (10) *in the order given* are kept (Moment-DETR
  keeps the first 10 of a submission, which it expects sorted by score); they are then sorted by score
  descending (stable: ties keep their order). For each IoU threshold ``t`` separately, predictions are
  taken in that order and each is a true positive when some still-unmatched ground truth has IoU
  ``>= t`` with it — among those, the one of highest IoU is matched (each ground truth at most once);
  otherwise it is a false positive. The query's AP at ``t`` is the area under its precision/recall
  curve with VOC-2011 all-point interpolation (recall padded with 0 and 1, precision with 0 and 0,
  precision made non-increasing from the right, summed over the points where recall changes) —
  Moment-DETR's ``interpolated_precision_recall``, not the 11-point VOC-2007 rule. Recall is over
  the query's own ground truths. AP is averaged over queries per threshold (``mAP@t``) and those are
  averaged over thresholds (``mAP``; Moment-DETR's ``"average"``), by default ``0.5, 0.55, ..., 0.95``.
  A ``None`` list (unparseable) or an empty list scores AP 0 at every threshold and stays in the
  denominator (Moment-DETR silently leaves queries without predictions out of the mean).
- **Recall ceiling** (`recall_ceiling`): the best R1@t and mIoU any answer could reach when answer
  boundaries can only lie on a grid (`grid_points`): ``fps`` — multiples of ``1 / fps`` seconds,
  the one past the end clipped to the duration (the feature rows of `sa2va_st.features.timing`);
  ``n_bins`` — the ``n + 1`` edges ``j * d / n`` of `sa2va_st.formats.windows` (an answer is a union
  of whole bins). A grid window has two different grid points as start and end. Per ground-truth
  window the best grid window is exact: for a fixed end the IoU only grows as the start approaches the
  true start from either side, and likewise for the end, so the optimum uses one of the two grid points
  around each true boundary; a query scores the best over its ground truths.
- Scores are **fractions in [0, 1]**, unrounded (Moment-DETR reports percentages rounded to two
  decimals). Every result also carries ``n`` (queries) and ``unparseable`` (``None`` predictions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...formats.windows import bin_edges

Window = Sequence[float]
GroundTruth = Window | Sequence[Window]  # one window, or a list of windows

DEFAULT_R1_THRESHOLDS = (0.3, 0.5, 0.7)
DEFAULT_MAP_THRESHOLDS = tuple(np.linspace(0.5, 0.95, 10))
MAX_PRED_WINDOWS = 10  # Moment-DETR's max_pred_windows


def _as_windows(windows: object, name: str, columns: int = 2) -> np.ndarray:
    """``(K, columns)`` float array; a single flat window becomes one row."""
    arr = np.asarray(windows, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, columns)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != columns:
        raise ValueError(f"{name}: expected rows of {columns} numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: windows must be finite, got {arr.tolist()}")
    return arr


def _gt_windows(ground_truth: GroundTruth) -> np.ndarray:
    gts = _as_windows(ground_truth, "ground truth")
    if len(gts) == 0:
        raise ValueError("a query needs at least one ground-truth window")
    if (gts[:, 1] < gts[:, 0]).any():
        raise ValueError(f"ground-truth windows must have end >= start, got {gts.tolist()}")
    return gts


def _thresholds(thresholds: Sequence[float]) -> list[float]:
    # two decimals, as Moment-DETR: linspace's 0.6000000000000001 must not fail an IoU of exactly 0.6
    return [float(f"{t:.2f}") for t in thresholds]


def _check_lengths(predictions: Sequence, ground_truths: Sequence) -> None:
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truths)} queries")
    if len(ground_truths) == 0:
        raise ValueError("no queries to score")


def temporal_iou_matrix(pred_windows: Sequence[Window], gt_windows: Sequence[Window]) -> np.ndarray:
    """IoU of every predicted window ``(N, 2)`` with every ground-truth window ``(M, 2)``: ``(N, M)``."""
    p = _as_windows(pred_windows, "pred_windows")
    g = _as_windows(gt_windows, "gt_windows")
    inter = np.minimum(p[:, None, 1], g[None, :, 1]) - np.maximum(p[:, None, 0], g[None, :, 0])
    inter = np.clip(inter, 0.0, None)
    # the hull equals the union whenever the windows overlap; when they do not, inter is 0 anyway
    hull = np.maximum(p[:, None, 1], g[None, :, 1]) - np.minimum(p[:, None, 0], g[None, :, 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull > 0)


def top1_ious(predictions: Sequence[Window | None], ground_truths: Sequence[GroundTruth]) -> np.ndarray:
    """Per query, the IoU of its predicted window with its best-matching ground truth (0 for ``None``)."""
    _check_lengths(predictions, ground_truths)
    ious = np.zeros(len(ground_truths))
    for i, (pred, gt) in enumerate(zip(predictions, ground_truths)):
        gts = _gt_windows(gt)
        if pred is None:
            continue
        window = _as_windows(pred, "prediction")
        if len(window) != 1:
            raise ValueError(f"a top-1 prediction is one window, got {window.tolist()}")
        ious[i] = temporal_iou_matrix(window, gts).max()
    return ious


def r1_at(
    predictions: Sequence[Window | None],
    ground_truths: Sequence[GroundTruth],
    thresholds: Sequence[float] = DEFAULT_R1_THRESHOLDS,
) -> dict[str, float]:
    """``R1@t`` for each threshold, ``mIoU``, ``n`` and ``unparseable`` (see the module docstring)."""
    ious = top1_ious(predictions, ground_truths)
    scores: dict[str, float] = {f"R1@{t}": float(np.mean(ious >= t)) for t in _thresholds(thresholds)}
    scores["mIoU"] = float(ious.mean())
    scores["n"] = len(ious)
    scores["unparseable"] = sum(p is None for p in predictions)
    return scores


def miou(predictions: Sequence[Window | None], ground_truths: Sequence[GroundTruth]) -> float:
    """Mean top-1 IoU over all queries, ``None`` predictions counting 0."""
    return float(top1_ious(predictions, ground_truths).mean())


def _matched(ious: np.ndarray, threshold: float) -> np.ndarray:
    """Which predictions (rows, best score first) are true positives at ``threshold``."""
    taken = np.zeros(ious.shape[1], dtype=bool)
    hits = np.zeros(ious.shape[0], dtype=bool)
    for k, row in enumerate(ious):
        for j in np.argsort(row)[::-1]:  # Moment-DETR's order: highest IoU first
            if row[j] < threshold:
                break
            if not taken[j]:
                taken[j] = hits[k] = True
                break
    return hits


def _interpolated_ap(hits: np.ndarray, num_gt: int) -> float:
    """VOC-2011 all-point interpolated AP of one ranked list (Moment-DETR's interpolated_precision_recall)."""
    tp = np.cumsum(hits)
    precision = np.concatenate([[0.0], tp / np.arange(1, len(hits) + 1), [0.0]])
    recall = np.concatenate([[0.0], tp / num_gt, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def _query_ap(scored: np.ndarray, gts: np.ndarray, thresholds: list[float]) -> np.ndarray:
    if len(scored) == 0:
        return np.zeros(len(thresholds))
    ranked = scored[np.argsort(-scored[:, 2], kind="stable")]
    ious = temporal_iou_matrix(ranked[:, :2], gts)
    return np.array([_interpolated_ap(_matched(ious, t), len(gts)) for t in thresholds])


def mean_average_precision(
    scored_predictions: Sequence[Sequence[Sequence[float]] | None],
    ground_truths: Sequence[GroundTruth],
    iou_thresholds: Sequence[float] = DEFAULT_MAP_THRESHOLDS,
    max_windows: int | None = MAX_PRED_WINDOWS,
) -> dict[str, float]:
    """``mAP@t`` per threshold, ``mAP`` (their mean), ``n`` and ``unparseable``.

    ``scored_predictions[i]`` is query i's list of ``(start, end, score)``, or ``None``.
    """
    _check_lengths(scored_predictions, ground_truths)
    thresholds = _thresholds(iou_thresholds)
    ap = np.zeros((len(ground_truths), len(thresholds)))
    for i, (pred, gt) in enumerate(zip(scored_predictions, ground_truths)):
        gts = _gt_windows(gt)
        if pred is None:
            continue
        scored = _as_windows(list(pred), "scored prediction", columns=3)
        ap[i] = _query_ap(scored[:max_windows], gts, thresholds)
    per_threshold = ap.mean(axis=0)
    scores: dict[str, float] = {f"mAP@{t}": float(v) for t, v in zip(thresholds, per_threshold)}
    scores["mAP"] = float(per_threshold.mean())
    scores["n"] = len(ground_truths)
    scores["unparseable"] = sum(p is None for p in scored_predictions)
    return scores


def grid_points(duration: float, *, fps: float | None = None, n_bins: int | None = None) -> np.ndarray:
    """The times an answer boundary can take (sorted, from 0 to ``duration``); give ``fps`` or ``n_bins``."""
    if (fps is None) == (n_bins is None):
        raise ValueError("give exactly one of fps (a feature grid) or n_bins (bins over the duration)")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"a duration must be finite and > 0, got {duration!r}")
    if n_bins is not None:
        return bin_edges(duration, n_bins)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be finite and > 0, got {fps!r}")
    rows = math.ceil(duration * fps)  # feature rows at i / fps, as sa2va_st.features.timing
    return np.unique(np.minimum(np.arange(rows + 1) / fps, duration))


def best_grid_iou(ground_truth: GroundTruth, grid: np.ndarray) -> float:
    """The highest IoU a window with both ends on ``grid`` reaches with any of the ground truths."""
    gts = _gt_windows(ground_truth)
    best = 0.0
    for start, end in gts:
        # the grid points on either side of each true boundary (see the module docstring)
        i, j = np.searchsorted(grid, [start, end])
        starts = grid[np.clip([i - 1, i], 0, len(grid) - 1)]
        ends = grid[np.clip([j - 1, j], 0, len(grid) - 1)]
        candidates = np.array([(s, e) for s in starts for e in ends if e > s]).reshape(-1, 2)
        if len(candidates):
            best = max(best, float(temporal_iou_matrix(candidates, [(start, end)]).max()))
    return best


def recall_ceiling(
    ground_truths: Sequence[GroundTruth],
    durations: Sequence[float],
    *,
    fps: float | None = None,
    n_bins: int | None = None,
    thresholds: Sequence[float] = DEFAULT_R1_THRESHOLDS,
) -> dict[str, float]:
    """Best achievable ``R1@t`` and ``mIoU`` on the answer grid, and ``n`` (see the module docstring)."""
    _check_lengths(durations, ground_truths)
    best = np.array(
        [best_grid_iou(gt, grid_points(float(d), fps=fps, n_bins=n_bins)) for gt, d in zip(ground_truths, durations)]
    )
    scores: dict[str, float] = {f"R1@{t}": float(np.mean(best >= t)) for t in _thresholds(thresholds)}
    scores["mIoU"] = float(best.mean())
    scores["n"] = len(best)
    return scores
