"""Scores of one benchmark split from its saved prediction records (`predict`); no model runs here.

- **Image grounding** (RefCOCO/+/g): the first box of each answer against the expression's box,
  `metrics.box_accuracy` (``Acc@0.5``, ``box_mIoU``); an answer with no box scores like an
  unparseable one (IoU 0). Where the records carry masks (`evaluation.masks`: SAM2's mask of the
  answer, the annotation's mask), also ``cIoU`` and ``gIoU`` (`metrics.mask_iou_stats`).
- **Video grounding by boxes** (MeViS, Ref-YouTube-VOS, ReVOS): every sampled frame of every
  expression, `metrics.frame_box_accuracy`. Where the records carry masks over every frame of the
  clip (`evaluation.masks`), also ``J``, ``F`` and ``J&F`` (`metrics.j_and_f`: per expression over all
  its frames, then over expressions). ReVOS also reports its ``referring`` (type 0) and
  ``reasoning`` (type 1) expressions apart; the no-target ones (type 2) count in the whole split only.
- **Temporal grounding** (Charades-STA, DiDeMo): the window against the query's ground-truth windows
  (``expected_windows``: Charades-STA's one, DiDeMo's annotators'; ``expected``, the training target,
  where a record has no list), `metrics.r1_at` (``R1@0.3/0.5/0.7``, ``mIoU``: the best match) and
  `metrics.mean_average_precision` over the one window answered (score 1), ``mAP``.

Records without an expected answer (a split whose labels a server holds) cannot be scored here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from ..errors import EvaluationError
from .masks import decode_mask
from .metrics import box_accuracy, frame_box_accuracy, j_and_f, mask_iou_stats, mean_average_precision, r1_at

# ReVOS's expression types (manifest ``type_id``) reported apart.
SUBSET_TYPE_IDS: dict[str, int] = {"referring": 0, "reasoning": 1}


def _image_scores(records: Sequence[Mapping[str, Any]], source: str) -> dict[str, Any]:
    predicted = [r["prediction"][0][0] if r["prediction"] and r["prediction"][0] else None for r in records]
    scores = box_accuracy(predicted, [r["expected"][0][0] for r in records])
    if all("expected_mask" in r for r in records):
        masks = [None if r["mask"] is None else decode_mask(r["mask"], source=source) for r in records]
        truths = [decode_mask(r["expected_mask"], source=source) for r in records]
        stats = mask_iou_stats(masks, truths)
        scores |= {"cIoU": stats["cIoU"], "gIoU": stats["gIoU"]}
    return scores


def _video_scores(records: Sequence[Mapping[str, Any]], source: str) -> dict[str, Any]:
    scores = frame_box_accuracy([r["prediction"] for r in records], [r["expected"] for r in records])
    if all("expected_masks" in r for r in records):
        masks = [None if r["masks"] is None else _stack(r["masks"], source) for r in records]
        truths = [_stack(r["expected_masks"], source) for r in records]
        stats = j_and_f(masks, truths)
        scores |= {"J": stats["J"], "F": stats["F"], "J&F": stats["J&F"]}
    return scores


def _stack(masks: Sequence[Mapping[str, Any]], source: str) -> np.ndarray:
    return np.stack([decode_mask(m, source=source) for m in masks])  # (T, H, W)


def temporal_truths(records: Sequence[Mapping[str, Any]]) -> list[list[list[float]]]:
    """Per temporal record, the ground-truth windows a prediction is matched against (module docstring)."""
    return [r.get("expected_windows") or [r["expected"]] for r in records]


def _temporal_scores(records: Sequence[Mapping[str, Any]], source: str) -> dict[str, Any]:
    predictions = [r["prediction"] for r in records]
    truths = temporal_truths(records)
    scores = r1_at(predictions, truths)
    scored = [None if p is None else [(p[0], p[1], 1.0)] for p in predictions]
    scores["mAP"] = mean_average_precision(scored, truths)["mAP"]
    return scores


SCORERS = {IMAGE_GROUNDING: _image_scores, VIDEO_GROUNDING: _video_scores, TEMPORAL_GROUNDING: _temporal_scores}


def score_records(records: Sequence[Mapping[str, Any]], *, source: str = "predictions") -> dict[str, Any]:
    """Flat metric keys of one split (plus ``subsets`` where the dataset reports some)."""
    if not records:
        raise EvaluationError("no predictions to score", file=source, fix="run the split's prediction shards first")
    tasks = {r["task"] for r in records}
    if len(tasks) != 1:
        raise EvaluationError(f"one split holds one task, found {sorted(tasks)}", file=source, key="task")
    unlabelled = [r["id"] for r in records if r.get("expected") is None]
    if unlabelled:
        raise EvaluationError(
            f"{len(unlabelled)} records have no expected answer (first: {unlabelled[0]})",
            file=source,
            key="expected",
            fix="a split whose labels a server holds is submitted, not scored here",
        )
    (task,) = tasks
    scores = SCORERS[task](records, source)
    if task == VIDEO_GROUNDING and any(r.get("type_id") is not None for r in records):
        subsets = {}
        for name, type_id in SUBSET_TYPE_IDS.items():
            part = [r for r in records if r.get("type_id") == type_id]
            if part:
                subsets[name] = SCORERS[task](part, source)
        if subsets:
            scores["subsets"] = subsets
    return scores
