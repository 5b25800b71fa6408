"""Video object segmentation: DAVIS-2017 region similarity J and boundary accuracy F.

Computed as ``davis2017/metrics.py`` of github davisvideochallenge/davis2017-evaluation computes them
(``db_eval_iou``, ``db_eval_boundary``, ``f_measure``, ``_seg2bmap``), without void pixels, in numpy
only (their disk structuring element and their dilation are rebuilt below; no skimage, cv2 or scipy).

- Masks are boolean ``(T, H, W)`` arrays, one frame per row (any array is read as ``!= 0``; one
  ``(H, W)`` frame is read as ``T = 1``); a prediction must have its target's shape.
- **J** of a frame (`region_similarity`): ``|P & G| / |P | G|``; a frame where both masks are empty
  scores 1.
- **Boundary map** of a mask (their ``_seg2bmap``, at the mask's own size — its resizing branch
  never runs then): a pixel is a boundary pixel when its value differs from that of its east, south
  or south-east neighbour, comparing only neighbours inside the frame. Hence the frame border is no
  boundary: a mask filling the whole frame has an empty boundary map.
- **Tolerance**: ``bound_pix = ceil(bound_th * sqrt(H**2 + W**2))`` pixels when ``bound_th < 1``
  (``0.008`` by default: 8 px at 854x480), else ``bound_th`` itself (here it must then be an integer).
  A boundary pixel is matched when a boundary pixel of the other mask lies within the disk of radius
  ``bound_pix`` around it: offsets ``(dy, dx)`` with ``dy**2 + dx**2 <= bound_pix**2`` (skimage's
  ``disk``, applied by dilation as their ``cv2.dilate``).
- **F** of a frame (`boundary_f`): precision = matched predicted boundary pixels / predicted boundary
  pixels, recall = matched target boundary pixels / target boundary pixels,
  ``F = 2 P R / (P + R)``, and ``F = 0`` when ``P + R = 0``. Their empty cases, decided on the
  boundary maps: both empty → ``P = R = 1`` (F = 1); only the prediction's empty → ``P = 1, R = 0``
  (F = 0); only the target's empty → ``P = 0, R = 1`` (F = 0).
- **J, F, J&F over a split** (`j_and_f`): per expression, the mean over all its frames; then the
  mean over expressions of those (``J``, ``F``); ``J&F = (J + F) / 2`` — the order of the MeViS
  evaluation script (henghuiding/MeViS ``tools/eval_mevis.py``) and of Sa2VA's
  ``tools/eval/eval_ref_sav.py``.
- A prediction that is ``None`` is all-zero masks of the target's shape (so it scores 1 on frames
  where the target is empty too), counted in ``unparseable`` (MeViS's script scores a missing video
  J = F = 0 instead). Scores are fractions in [0, 1]; ``n`` counts expressions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_BOUND_TH = 0.008


def _frames(masks: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(masks) != 0
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name}: masks are (T, H, W), got shape {arr.shape}")
    return arr


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prediction, target = _frames(pred, "prediction"), _frames(gt, "target")
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} masks differ in shape")
    return prediction, target


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame J ``(T,)``: intersection over union, 1 where both masks are empty."""
    prediction, target = _pair(pred, gt)
    inter = np.count_nonzero(prediction & target, axis=(1, 2))
    union = np.count_nonzero(prediction | target, axis=(1, 2))
    return np.divide(inter, union, out=np.ones(len(union)), where=union > 0)


def _boundary_map(mask: np.ndarray) -> np.ndarray:
    """Their ``_seg2bmap``: differs from the east, south or south-east neighbour inside the frame."""
    b = np.zeros_like(mask)
    b[:, :-1] |= mask[:, :-1] ^ mask[:, 1:]
    b[:-1, :] |= mask[:-1, :] ^ mask[1:, :]
    b[:-1, :-1] |= mask[:-1, :-1] ^ mask[1:, 1:]
    return b


def _bound_pix(bound_th: float, shape: tuple[int, int]) -> int:
    if not (math.isfinite(bound_th) and bound_th > 0):
        raise ValueError(f"the boundary tolerance must be > 0, got {bound_th!r}")
    if bound_th < 1:
        return math.ceil(bound_th * math.hypot(*shape))
    if bound_th != int(bound_th):
        # skimage's disk of a non-integer radius is not centred; refuse rather than guess
        raise ValueError(f"a tolerance >= 1 is a whole number of pixels, got {bound_th!r}")
    return int(bound_th)


def _dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within the disk ``dy**2 + dx**2 <= radius**2`` of a set pixel (the frame is not padded)."""
    h, w = mask.shape
    row_sums = np.zeros((h, w + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, out=row_sums[:, 1:])
    out = np.zeros_like(mask)
    runs: dict[int, np.ndarray] = {}
    reach_y = min(radius, h - 1)  # row offsets beyond the frame reach nothing
    for dy in range(-reach_y, reach_y + 1):
        half = math.isqrt(radius * radius - dy * dy)  # the disk's half-width at row offset dy
        if half not in runs:
            # set pixels among x - half .. x + half, from the running row sums (edge-padded: clipped ends)
            padded = np.pad(row_sums, ((0, 0), (half, half)), mode="edge")
            runs[half] = padded[:, 2 * half + 1 : 2 * half + 1 + w] > padded[:, :w]
        reach = runs[half]
        if dy >= 0:
            out[: h - dy] |= reach[dy:]
        else:
            out[-dy:] |= reach[: h + dy]
    return out


def _crop(*maps: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of all set pixels: matches are only counted on boundary pixels, all inside it."""
    rows = np.flatnonzero(np.logical_or.reduce([m.any(axis=1) for m in maps]))
    cols = np.flatnonzero(np.logical_or.reduce([m.any(axis=0) for m in maps]))
    if len(rows) == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _precision_recall(n_pred: int, n_gt: int, pred_hits: int, gt_hits: int) -> tuple[float, float]:
    if n_pred == 0 and n_gt == 0:
        return 1.0, 1.0
    if n_pred == 0:
        return 1.0, 0.0
    if n_gt == 0:
        return 0.0, 1.0
    return pred_hits / n_pred, gt_hits / n_gt


def _frame_f(prediction: np.ndarray, target: np.ndarray, bound_th: float) -> float:
    radius = _bound_pix(bound_th, prediction.shape)
    pred_b, gt_b = _boundary_map(prediction), _boundary_map(target)
    box = _crop(pred_b, gt_b)  # dilating inside the box is enough and much cheaper on large frames
    pred_b, gt_b = pred_b[box], gt_b[box]
    pred_hits = np.count_nonzero(pred_b & _dilate_disk(gt_b, radius))
    gt_hits = np.count_nonzero(gt_b & _dilate_disk(pred_b, radius))
    p, r = _precision_recall(np.count_nonzero(pred_b), np.count_nonzero(gt_b), pred_hits, gt_hits)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> np.ndarray:
    """Per-frame boundary F-measure ``(T,)`` (see the module docstring for the tolerance and empty cases)."""
    prediction, target = _pair(pred, gt)
    return np.array([_frame_f(p, t, bound_th) for p, t in zip(prediction, target)])


def j_and_f(
    predictions: Sequence[np.ndarray | None],
    ground_truths: Sequence[np.ndarray],
    bound_th: float = DEFAULT_BOUND_TH,
) -> dict[str, float]:
    """``J``, ``F``, ``J&F``, ``n`` and ``unparseable`` over expressions (mean over frames, then expressions)."""
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truths)} expressions")
    if len(ground_truths) == 0:
        raise ValueError("no expressions to score")
    js, fs = [], []
    for pred, gt in zip(predictions, ground_truths):
        target = _frames(gt, "target")
        prediction = np.zeros_like(target) if pred is None else pred
        js.append(region_similarity(prediction, target).mean())
        fs.append(boundary_f(prediction, target, bound_th).mean())
    j, f = float(np.mean(js)), float(np.mean(fs))
    return {
        "J": j,
        "F": f,
        "J&F": (j + f) / 2,
        "n": len(ground_truths),
        "unparseable": sum(p is None for p in predictions),
    }
