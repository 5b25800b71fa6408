"""Evaluation metrics (sa2va_st.evaluation.metrics): hand-computed cases, and independent computations
(pycocotools for masks, a brute-force boundary match for F, Moment-DETR's logic re-written here, the
real Charades-STA test split)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from sa2va_st.evaluation.metrics import (
    boundary_f,
    box_accuracy,
    grid_points,
    j_and_f,
    mask_iou_stats,
    mean_average_precision,
    miou,
    r1_at,
    recall_ceiling,
    region_similarity,
    temporal_iou_matrix,
    top1_ious,
)
from sa2va_st.evaluation.metrics.jf import _bound_pix, _boundary_map, _dilate_disk

CHARADES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "charades_sta"


# ---------------------------------------------------------------- temporal IoU


def test_temporal_iou_matrix_hand():
    preds = [(0, 10), (5, 15), (20, 20), (8, 2)]
    gts = [(0, 10), (10, 20)]
    expected = [
        [1.0, 0.0],  # identical; touching at 10: no overlap
        [1 / 3, 1 / 3],  # overlap 5 over union 15, both ways
        [0.0, 0.0],  # zero-length at 20: overlap 0 with (10, 20)
        [0.0, 0.0],  # reversed window: overlaps nothing
    ]
    np.testing.assert_allclose(temporal_iou_matrix(preds, gts), expected)
    # a zero-length window equal to a zero-length ground truth: union 0 -> 0, as Moment-DETR's paired IoU
    assert temporal_iou_matrix([(3, 3)], [(3, 3)]).tolist() == [[0.0]]
    assert temporal_iou_matrix(np.zeros((0, 2)), gts).shape == (0, 2)


def test_r1_and_miou_hand():
    predictions = [(0, 7), None, (10, 20), (0, 5)]
    ground_truths = [
        (0, 10),  # IoU 7/10 = 0.7 exactly: counts at R1@0.7 (inclusive)
        (3, 4),  # unparseable: IoU 0, still in the denominator
        [(0, 1), (12, 20)],  # two gts: best is (12, 20), IoU 8/10 = 0.8
        [[10, 20]],  # IoU 0
    ]
    scores = r1_at(predictions, ground_truths)
    # R1@0.3 = R1@0.5 = R1@0.7 = 2/4 (0.7 and 0.8 pass); mIoU = (0.7 + 0 + 0.8 + 0) / 4 = 0.375
    assert scores == {
        "R1@0.3": 0.5,
        "R1@0.5": 0.5,
        "R1@0.7": 0.5,
        "mIoU": pytest.approx(0.375),
        "n": 4,
        "unparseable": 1,
    }
    assert miou(predictions, ground_truths) == pytest.approx(0.375)
    assert r1_at(predictions, ground_truths, thresholds=(0.75,))["R1@0.75"] == 0.25  # only the 0.8


def test_r1_rejects_bad_input():
    with pytest.raises(ValueError, match="predictions for"):
        r1_at([(0, 1)], [(0, 1), (0, 2)])
    with pytest.raises(ValueError, match="at least one"):
        r1_at([(0, 1)], [[]])
    with pytest.raises(ValueError, match="end >= start"):
        r1_at([(0, 1)], [(5, 1)])
    with pytest.raises(ValueError, match="no queries"):
        r1_at([], [])


def _moment_detr_r1(pred_windows, gt_lists, thresholds):
    """Moment-DETR's compute_mr_r1 re-written: the gt of highest IoU (first on ties) is the query's gt,
    then the paired IoU (intersection over the hull), percentages rounded to two decimals."""
    chosen = []
    for (ps, pe), gts in zip(pred_windows, gt_lists):
        ious = []
        for gs, ge in gts:
            inter = max(0.0, min(pe, ge) - max(ps, gs))
            ious.append(inter / ((pe - ps) + (ge - gs) - inter))
        chosen.append(gts[int(np.argmax(ious))])
    paired = []
    for (ps, pe), (gs, ge) in zip(pred_windows, chosen):
        inter = max(0.0, min(pe, ge) - max(ps, gs))
        hull = max(pe, ge) - min(ps, gs)
        paired.append(inter / hull if hull != 0 else 0.0)
    paired = np.array(paired)
    return {str(t): float(f"{np.mean(paired >= t) * 100:.2f}") for t in thresholds}


def test_r1_multi_gt_matches_moment_detr():
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for _ in range(300):
        s = rng.uniform(0, 50)
        preds.append((s, s + rng.uniform(0.5, 30)))
        gts.append([(g, g + rng.uniform(0.5, 30)) for g in rng.uniform(0, 50, size=rng.integers(1, 5))])
    thresholds = (0.3, 0.5, 0.7)
    ours = r1_at(preds, gts, thresholds)
    theirs = _moment_detr_r1(preds, gts, thresholds)
    for t in thresholds:
        assert round(ours[f"R1@{t}"] * 100, 2) == pytest.approx(theirs[str(t)])
    assert 0.05 < ours["R1@0.5"] < 0.95  # the data exercise both outcomes


# ---------------------------------------------------------------- mAP


def test_map_hand():
    scored = [
        [(0, 10, 0.9), (40, 50, 0.8), (20, 28, 0.7)],
        None,  # unparseable: AP 0 at every threshold, still in the denominator
    ]
    gts = [[(0, 10), (20, 30)], (0, 5)]
    scores = mean_average_precision(scored, gts)
    # query 1, ranked by score: (0,10) IoU 1 with gt1 -> TP; (40,50) -> FP; (20,28) IoU 8/10 = 0.8 with gt2.
    # t <= 0.8: TP FP TP: precision 1, 1/2, 2/3; recall 1/2, 1/2, 1. Interpolated (max to the right):
    #   1, 2/3, 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    # t >= 0.85: TP FP FP: recall 1/2 only -> AP = 1/2 * 1 = 1/2.
    # mAP@t is the mean over the two queries (query 2 scores 0): 5/12 for t <= 0.8, 1/4 above.
    for t in ("0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8"):
        assert scores[f"mAP@{t}"] == pytest.approx(5 / 12)
    for t in ("0.85", "0.9", "0.95"):
        assert scores[f"mAP@{t}"] == pytest.approx(1 / 4)
    # mAP = (7 * 5/12 + 3 * 1/4) / 10 = 0.366666...
    assert scores["mAP"] == pytest.approx((7 * 5 / 12 + 3 / 4) / 10)
    assert scores["n"] == 2 and scores["unparseable"] == 1


def test_map_matching_ranking_and_truncation():
    one = [(0, 10)]
    # a second window on an already matched gt is a false positive: precision 1, 1/2 at recall 1 -> AP 1
    assert mean_average_precision([[(0, 10, 0.9), (0, 9, 0.8)]], [one])["mAP"] == pytest.approx(1.0)
    # sorted by score, not by position: the miss ranked first halves the AP (precision 1/2 at recall 1)
    assert mean_average_precision([[(0, 10, 0.5), (40, 50, 0.9)]], [one])["mAP"] == pytest.approx(0.5)
    # only the first max_windows in the order given are kept, before sorting (as Moment-DETR's [:10])
    late_hit = [(40, 50, 0.1)] * 10 + [(0, 10, 1.0)]
    assert mean_average_precision([late_hit], [one])["mAP"] == 0.0
    assert mean_average_precision([late_hit], [one], max_windows=None)["mAP"] == pytest.approx(1.0)
    # no windows at all: AP 0, but not unparseable
    assert mean_average_precision([[]], [one]) == {
        **{f"mAP@{t}": 0.0 for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)},
        "mAP": 0.0,
        "n": 1,
        "unparseable": 0,
    }


def _moment_detr_ap(gts, preds, thresholds):
    """compute_average_precision_detection + interpolated_precision_recall of Moment-DETR, re-written."""
    preds = sorted(preds, key=lambda p: -p[2])
    ap = []
    for t in thresholds:
        locked = [False] * len(gts)
        tp = []
        for ps, pe, _ in preds:
            ious = []
            for gs, ge in gts:
                inter = max(0.0, min(pe, ge) - max(ps, gs))
                ious.append(inter / ((pe - ps) + (ge - gs) - inter))
            hit = 0
            for j in np.argsort(ious)[::-1]:
                if ious[j] < t:
                    break
                if not locked[j]:
                    locked[j], hit = True, 1
                    break
            tp.append(hit)
        cum = np.cumsum(tp)
        prec = [0.0, *(cum / np.arange(1, len(tp) + 1)), 0.0]
        rec = [0.0, *(cum / len(gts)), 1.0]
        for i in range(len(prec) - 2, -1, -1):
            prec[i] = max(prec[i], prec[i + 1])
        ap.append(sum((rec[i] - rec[i - 1]) * prec[i] for i in range(1, len(rec)) if rec[i] != rec[i - 1]))
    return np.array(ap)


def test_map_matches_moment_detr_on_random_queries():
    rng = np.random.default_rng(1)
    thresholds = [float(f"{t:.2f}") for t in np.linspace(0.5, 0.95, 10)]
    scored, gts, expected = [], [], []
    for _ in range(60):
        q_gts = [(g, g + rng.uniform(1, 20)) for g in rng.uniform(0, 60, size=rng.integers(1, 4))]
        q_preds = [(s, s + rng.uniform(1, 20), rng.random()) for s in rng.uniform(0, 60, size=rng.integers(1, 10))]
        q_preds += [(g0 + rng.normal(0, 1), g1 + rng.normal(0, 1), rng.random()) for g0, g1 in q_gts]
        scored.append(q_preds)
        gts.append(q_gts)
        expected.append(_moment_detr_ap(q_gts, q_preds[:10], thresholds))
    scores = mean_average_precision(scored, gts)
    per_t = np.mean(expected, axis=0)
    for t, v in zip(thresholds, per_t):
        assert scores[f"mAP@{t}"] == pytest.approx(v)
    assert scores["mAP"] == pytest.approx(per_t.mean())
    assert 0.05 < scores["mAP"] < 0.95


# ---------------------------------------------------------------- recall ceiling


def test_grid_points():
    # fps grid: multiples of 1/fps, the one past the end clipped to the duration
    np.testing.assert_allclose(grid_points(10.5, fps=1.0), [*range(11), 10.5])
    np.testing.assert_allclose(grid_points(2.0, fps=2.0), [0, 0.5, 1, 1.5, 2])
    # bins: n + 1 edges over the duration
    np.testing.assert_allclose(grid_points(30.0, n_bins=3), [0, 10, 20, 30])
    with pytest.raises(ValueError, match="exactly one"):
        grid_points(10.0)
    with pytest.raises(ValueError, match="exactly one"):
        grid_points(10.0, fps=1.0, n_bins=10)


def test_recall_ceiling_hand():
    # gt (0.4, 2.6) on the 1 s grid of a 10 s video: candidates [0,2] 1.6/2.6, [0,3] 2.2/3 = 0.7333,
    # [1,2] 1/2.2, [1,3] 1.6/2.6 -> best 0.7333 (>= 0.7).
    # gt (9.6, 10.5) on a 10.5 s video: [10, 10.5] 0.5/0.9 = 0.556, [9, 10.5] 0.9/1.5 = 0.6 -> best 0.6.
    scores = recall_ceiling([(0.4, 2.6), [(9.6, 10.5)]], [10.0, 10.5], fps=1.0)
    assert scores == {"R1@0.3": 1.0, "R1@0.5": 1.0, "R1@0.7": 0.5, "mIoU": pytest.approx((2.2 / 3 + 0.6) / 2), "n": 2}
    # 4 bins over 8 s (edges 0, 2, 4, 6, 8): gt (1, 3) -> [0, 4] 2/4 or [2, 4] 1/3 or [0, 2] 1/3 -> 0.5;
    # with a second gt (4, 6) exactly on edges the query scores 1 (best over its gts).
    assert recall_ceiling([(1, 3)], [8.0], n_bins=4)["mIoU"] == pytest.approx(0.5)
    assert recall_ceiling([[(1, 3), (4, 6)]], [8.0], n_bins=4)["mIoU"] == 1.0


def _brute_force_ceiling(gts, grid):
    windows = [(grid[i], grid[j]) for i in range(len(grid)) for j in range(i + 1, len(grid))]
    best = 0.0
    for gs, ge in gts:
        for ws, we in windows:
            inter = max(0.0, min(we, ge) - max(ws, gs))
            best = max(best, inter / ((we - ws) + (ge - gs) - inter))
    return best


@pytest.mark.parametrize("grid", [{"fps": 1.0}, {"fps": 2.5}, {"n_bins": 7}])
def test_recall_ceiling_is_the_exhaustive_optimum(grid):
    rng = np.random.default_rng(2)
    gts, durations, best = [], [], []
    for _ in range(40):
        d = rng.uniform(3, 25)
        windows = [tuple(sorted(rng.uniform(0, d, size=2))) for _ in range(rng.integers(1, 3))]
        gts.append(windows)
        durations.append(d)
        best.append(_brute_force_ceiling(windows, grid_points(d, **grid)))
    scores = recall_ceiling(gts, durations, **grid, thresholds=(0.5, 0.7))
    assert scores["mIoU"] == pytest.approx(np.mean(best))
    assert scores["R1@0.5"] == np.mean(np.array(best) >= 0.5)
    assert scores["R1@0.7"] == np.mean(np.array(best) >= 0.7)


# ---------------------------------------------------------------- boxes


def test_box_accuracy_hand():
    predicted = [(0, 0, 10, 10), (0, 0, 10, 10), (0, 0, 10, 10), None]
    expected = [
        (0, 0, 10, 10),  # IoU 1
        (5, 0, 15, 10),  # overlap 50, union 150: 1/3
        (0, 0, 10, 5),  # overlap 50, union 100: 0.5 exactly, counts (inclusive)
        (0, 0, 1, 1),  # unparseable: IoU 0
    ]
    # Acc@0.5 = 2/4; box_mIoU = (1 + 1/3 + 1/2 + 0) / 4 = 11/24
    assert box_accuracy(predicted, expected) == {
        "Acc@0.5": 0.5,
        "box_mIoU": pytest.approx(11 / 24),
        "n": 4,
        "unparseable": 1,
    }
    assert box_accuracy(predicted, expected, threshold=0.3)["Acc@0.3"] == 0.75
    with pytest.raises(ValueError, match="four finite"):
        box_accuracy([(0, 0, 1)], [(0, 0, 1, 1)])


# ---------------------------------------------------------------- masks


def test_mask_iou_stats_hand():
    a = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 pixels
    b = np.zeros((4, 4), bool)
    b[:2, :] = True  # 8 pixels, contains a
    empty = np.zeros((4, 4), bool)
    scores = mask_iou_stats([a, empty, None, a], [b, empty, b, a])
    # I / U per sample: 4/8, 0/0 (-> 1), 0/8 (None = empty), 4/4
    # cIoU = (4 + 0 + 0 + 4) / (8 + 0 + 8 + 4) = 8/20; gIoU = (0.5 + 1 + 0 + 1) / 4 = 0.625
    assert scores == {"cIoU": pytest.approx(0.4), "gIoU": pytest.approx(0.625), "n": 4, "unparseable": 1}
    # None on an empty target is an empty prediction of an empty target: 1, but still unparseable
    assert mask_iou_stats([None], [empty]) == {"cIoU": 0.0, "gIoU": 1.0, "n": 1, "unparseable": 1}
    with pytest.raises(ValueError, match="differ in shape"):
        mask_iou_stats([np.zeros((3, 4), bool)], [b])


def test_mask_iou_stats_matches_pycocotools():
    rng = np.random.default_rng(3)
    preds, gts = [], []
    for _ in range(25):
        h, w = rng.integers(5, 40, size=2)
        preds.append(rng.random((h, w)) < rng.uniform(0.1, 0.9))
        gts.append(rng.random((h, w)) < rng.uniform(0.1, 0.9))
    inter = union = 0.0
    ious = []
    for p, g in zip(preds, gts):
        rp, rg = (coco_mask.encode(np.asfortranarray(m.astype(np.uint8))) for m in (p, g))
        ious.append(coco_mask.iou([rp], [rg], [0])[0][0])
        inter += coco_mask.area(coco_mask.merge([rp, rg], intersect=True))
        union += coco_mask.area(coco_mask.merge([rp, rg], intersect=False))
    scores = mask_iou_stats(preds, gts)
    assert scores["gIoU"] == pytest.approx(np.mean(ious))
    assert scores["cIoU"] == pytest.approx(inter / union)


# ---------------------------------------------------------------- J & F


def test_region_similarity_hand():
    gt = np.zeros((3, 4, 4), bool)
    pred = np.zeros((3, 4, 4), bool)
    gt[0, :2, :2] = pred[0, :2, :] = True  # 4 / 8
    pred[1, 0, 0] = True  # gt empty: 0 / 1
    # frame 2 empty in both: 1
    np.testing.assert_allclose(region_similarity(pred, gt), [0.5, 0.0, 1.0])


def test_boundary_map_hand():
    seg = np.zeros((5, 5), bool)
    seg[1:3, 1:3] = True
    # a pixel is boundary when it differs from its E, S or SE neighbour inside the frame: the ring is
    # offset half a pixel towards the origin (row 0 cols 0-2, col 0 rows 0-2, and (1,2), (2,1), (2,2))
    expected = np.zeros((5, 5), bool)
    expected[0, 0:3] = expected[0:3, 0] = True
    expected[1, 2] = expected[2, 1] = expected[2, 2] = True
    np.testing.assert_array_equal(_boundary_map(seg), expected)
    # the frame border is not a boundary: a full mask has none, a half frame only its inner edge
    assert not _boundary_map(np.ones((4, 6), bool)).any()
    half = np.zeros((4, 6), bool)
    half[:, :3] = True
    assert np.argwhere(_boundary_map(half)).tolist() == [[r, 2] for r in range(4)]


def test_bound_pix():
    assert _bound_pix(0.008, (480, 854)) == 8  # ceil(0.008 * 979.77) = ceil(7.84)
    assert _bound_pix(0.008, (12, 12)) == 1  # ceil(0.008 * 16.97) = ceil(0.136)
    assert _bound_pix(3, (12, 12)) == 3  # >= 1: pixels
    with pytest.raises(ValueError, match="whole number"):
        _bound_pix(2.5, (12, 12))
    with pytest.raises(ValueError, match="> 0"):
        _bound_pix(0, (12, 12))


@pytest.mark.parametrize("shape", [(15, 19), (2, 3)])
def test_dilate_disk_matches_shifted_union(shape):
    rng = np.random.default_rng(4)
    mask = rng.random(shape) < 0.1
    mask[0, 0] = True
    h, w = shape
    for radius in range(6):  # up to larger than the small frame
        expected = np.zeros_like(mask)
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                if dy * dy + dx * dx > radius * radius or abs(dy) >= h or abs(dx) >= w:
                    continue
                # a pixel is reached from a set pixel at offset (dy, dx)
                shifted = np.zeros_like(mask)
                src = mask[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
                shifted[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)] = src
                expected |= shifted
        np.testing.assert_array_equal(_dilate_disk(mask, radius), expected)


def test_boundary_f_hand():
    def columns(upto: int) -> np.ndarray:
        m = np.zeros((1, 12, 12), bool)
        m[0, :, : upto + 1] = True
        return m

    gt = columns(5)  # boundary: column 5 (differs from its east neighbour), all 12 rows
    # 12x12: bound_pix = 1. Prediction up to column 6: boundary column 6, 1 px away -> P = R = 1
    assert boundary_f(columns(6), gt).tolist() == [1.0]
    # up to column 7: 2 px away -> P = R = 0 -> F = 0; with a 2 px tolerance -> 1
    assert boundary_f(columns(7), gt).tolist() == [0.0]
    assert boundary_f(columns(7), gt, bound_th=2).tolist() == [1.0]
    empty, full = np.zeros((1, 12, 12), bool), np.ones((1, 12, 12), bool)
    assert boundary_f(empty, empty).tolist() == [1.0]  # no boundary in either: P = R = 1
    assert boundary_f(empty, gt).tolist() == [0.0]  # P = 1, R = 0
    assert boundary_f(gt, empty).tolist() == [0.0]  # P = 0, R = 1
    assert boundary_f(full, full).tolist() == [1.0]  # a full frame has no boundary either
    assert boundary_f(gt, full).tolist() == [0.0]


def _brute_force_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    """F by the definitions: boundary pixels pixel by pixel, matches by exhaustive distance search."""

    def boundary(m):
        h, w = m.shape
        pts = []
        for y in range(h):
            for x in range(w):
                neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
                if any(ny < h and nx < w and m[ny, nx] != m[y, x] for ny, nx in neighbours):
                    pts.append((y, x))
        return np.array(pts).reshape(-1, 2)

    bp, bg = boundary(pred), boundary(gt)
    if len(bp) == 0 or len(bg) == 0:
        p, r = (1.0, 1.0) if len(bp) == len(bg) == 0 else ((1.0, 0.0) if len(bp) == 0 else (0.0, 1.0))
    else:
        d2 = ((bp[:, None, :] - bg[None, :, :]) ** 2).sum(-1)  # every pair of boundary pixels
        p = float(np.mean((d2 <= radius * radius).any(axis=1)))
        r = float(np.mean((d2 <= radius * radius).any(axis=0)))
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    for _ in range(rng.integers(0, 4)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        m[y : y + rng.integers(1, h // 2 + 2), x : x + rng.integers(1, w // 2 + 2)] = True
    return m


@pytest.mark.parametrize(("shape", "bound_th", "radius"), [((12, 12), 0.008, 1), ((12, 12), 2, 2), ((20, 30), 3, 3)])
def test_boundary_f_matches_brute_force(shape, bound_th, radius):
    rng = np.random.default_rng(5)
    pred = np.stack([_blobs(rng, *shape) for _ in range(30)])
    gt = np.stack([_blobs(rng, *shape) for _ in range(30)])
    expected = [_brute_force_f(p, g, radius) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(boundary_f(pred, gt, bound_th=bound_th), expected)
    assert 0 < np.mean(expected) < 1


def test_j_and_f_averaging_order_and_unparseable():
    gt1 = np.zeros((2, 12, 12), bool)
    gt1[:, 2:6, 2:6] = True
    pred1 = gt1.copy()
    pred1[1] = False  # frame 0 exact (J = F = 1); frame 1 empty vs a square (J = F = 0)
    gt2 = np.zeros((4, 12, 12), bool)  # four empty frames; predicted empty: J = F = 1 each
    scores = j_and_f([pred1, gt2.copy()], [gt1, gt2])
    # per expression then over expressions: J = (mean(1, 0) + mean(1, 1, 1, 1)) / 2 = 0.75
    # (pooling the 6 frames would give 5/6); F likewise 0.75; J&F = 0.75
    assert scores == {"J": 0.75, "F": 0.75, "J&F": 0.75, "n": 2, "unparseable": 0}
    # None = all-zero masks, counted: on gt1 J = F = 0 for both frames
    scores = j_and_f([None, None], [gt1, gt2])
    assert scores == {"J": 0.5, "F": 0.5, "J&F": 0.5, "n": 2, "unparseable": 2}


# ---------------------------------------------------------------- Charades-STA, real annotations


def _charades(split: str) -> list[tuple[list[list[float]], float | None]]:
    """(windows, duration or None) per query, from QVHighlights-style jsonl or `vid s e##sentence` text."""
    if not CHARADES.is_dir():
        pytest.skip(f"Charades-STA annotations not found at {CHARADES}")
    for path in sorted(CHARADES.glob(f"*{split}*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [(r["relevant_windows"], r.get("duration")) for r in rows]
    for path in sorted(CHARADES.glob(f"*{split}*.txt")):
        heads = [line.split("##")[0].split() for line in path.read_text().splitlines() if line.strip()]
        return [([[float(h[1]), float(h[2])]], None) for h in heads]
    pytest.skip(f"no Charades-STA {split} annotations (*{split}*.jsonl or .txt) in {CHARADES}")


def test_charades_sta_mean_window_predictor():
    train, test = _charades("train"), _charades("test")
    mean_start = float(np.mean([w[0][0] for w, _ in train]))
    mean_end = float(np.mean([w[0][1] for w, _ in train]))
    # the train-set mean window, clipped to each test video where its duration is known
    preds = [(mean_start, mean_end) if d is None else (min(mean_start, d), min(mean_end, d)) for _, d in test]
    scores = r1_at(preds, [w for w, _ in test])

    ious = []
    for (ps, pe), (windows, _) in zip(preds, test):
        best = 0.0
        for gs, ge in windows:
            inter = max(0.0, min(pe, ge) - max(ps, gs))
            union = (pe - ps) + (ge - gs) - inter
            best = max(best, inter / union if union > 0 else 0.0)
        ious.append(best)
    n = len(ious)
    assert scores["n"] == n == len(test) and scores["unparseable"] == 0
    for t in (0.3, 0.5, 0.7):
        assert scores[f"R1@{t}"] == sum(iou >= t for iou in ious) / n
    assert scores["mIoU"] == pytest.approx(sum(ious) / n)
    assert 0 < scores["R1@0.7"] < scores["R1@0.5"] < scores["R1@0.3"] < 1
    # the answer grid at 1 fps bounds every predictor: the ceiling is above the trivial one
    if all(d is not None for _, d in test):
        ceiling = recall_ceiling([w for w, _ in test], [d for _, d in test], fps=1.0)
        assert all(ceiling[f"R1@{t}"] >= scores[f"R1@{t}"] for t in (0.3, 0.5, 0.7))
        assert scores["mIoU"] <= ceiling["mIoU"] <= 1


def test_top1_ious_is_per_query():
    ious = top1_ious([(0, 5), None], [(0, 10), (0, 1)])
    np.testing.assert_allclose(ious, [0.5, 0.0])
    assert math.isclose(miou([(0, 5)], [[(20, 30), (0, 10)]]), 0.5)
