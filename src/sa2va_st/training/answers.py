"""Does the trained model answer what it was trained on? A fixed set of training samples, asked through
the inference API (`ground_boxes_batch`, `ground_window_batch`), scored against their answers.

- **The set.** Per task, ``n`` items spread evenly over the task's training datasets (in the mix's
  order), as the training mix builds them in its first pass (training mode, pass 0: the frames and
  expressions the run's first pass used); each item's first turn is one sample.
- **Correct.** An image sample when the one box answered has IoU >= 0.5 with its box; a video sample
  when every frame is answered with as many boxes as it has objects there, each with IoU >= 0.5
  (`metrics.iou.frame_boxes_match`; a frame without the object is answered by none); a temporal sample
  when the window answered has IoU >= 0.5 with its window. An answer that does not parse is wrong.
  Video also reports its frames apart (``frames_asked``, ``frames_correct``): each frame judged alone,
  the frames of an unparseable answer all wrong.

This runs the model, so it is not an evaluation metric (those score saved predictions); it is the
check that a run really learned: a model that lowers its loss but cannot answer its own training data
is not trained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from ..datasets import ConcatTaskDataset
from ..evaluation.metrics.iou import frame_boxes_match, window_iou
from ..formats.boxes import decode_boxes, decode_video_box_lists
from ..formats.common import ParseFailure
from .data import sample_id

THRESHOLD = 0.5


def check_items(mix: ConcatTaskDataset, n: int) -> dict[str, list[dict[str, Any]]]:
    """Per task, ``n`` training items spread evenly over its datasets, as pass 0 builds them."""
    mix.set_epoch(0)
    chosen: dict[str, list[dict[str, Any]]] = {}
    for task in dict.fromkeys(s.task for s in mix.specs):
        indices = [
            offset + i for spec, offset in zip(mix.specs, mix.offsets) if spec.task == task for i in range(spec.length)
        ]
        picks = np.unique(np.linspace(0, len(indices) - 1, num=min(n, len(indices))).round().astype(int))
        chosen[task] = [mix[indices[p]] for p in picks.tolist()]
    return chosen


def _first_turn(item: Mapping[str, Any]) -> tuple[str, str]:
    if item["task"] == TEMPORAL_GROUNDING:
        return item["sentence"], item["answer"]
    return item["sentences"][0], item["answers"][0]


def answer_training_samples(model: Any, items: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Ask every item's first turn through the inference API; see the module docstring for 'correct'."""
    from ..model.inference import ground_boxes_batch, ground_window_batch

    report: dict[str, Any] = {"threshold": THRESHOLD, "tasks": {}}
    for task, task_items in items.items():
        turns = [_first_turn(item) for item in task_items]
        frame_verdicts: list[list[bool]] = []
        if task == TEMPORAL_GROUNDING:
            requests = [(np.asarray(item["features"]), item["duration"], s) for item, (s, _) in zip(task_items, turns)]
            predictions, texts = ground_window_batch(model, requests, return_text=True)
            verdicts = [
                not isinstance(p, ParseFailure) and window_iou(p, item["window_s"]) >= THRESHOLD
                for p, item in zip(predictions, task_items)
            ]
        else:
            key = "image" if task == IMAGE_GROUNDING else "frames"
            requests = [(item[key], s) for item, (s, _) in zip(task_items, turns)]
            predictions, texts = ground_boxes_batch(model, requests, return_text=True)
            verdicts = []
            for prediction, item, (_, answer) in zip(predictions, task_items, turns):
                if task == VIDEO_GROUNDING:
                    expected = decode_video_box_lists(answer, n_frames=int(item["frames"].shape[0]))
                else:
                    expected = [decode_boxes(answer)]
                parsed = not isinstance(prediction, ParseFailure) and len(prediction) == len(expected)
                frames = (
                    [frame_boxes_match(p, e, THRESHOLD) for p, e in zip(prediction, expected)]
                    if parsed
                    else [False] * len(expected)
                )
                frame_verdicts.append(frames)
                verdicts.append(parsed and all(frames))
        samples = [
            {"id": sample_id(item), "sentence": s, "expected": a, "answered": text, "correct": bool(ok)}
            for item, (s, a), text, ok in zip(task_items, turns, texts, verdicts)
        ]
        correct = sum(v for v in verdicts)
        report["tasks"][task] = {
            "asked": len(samples),
            "correct": int(correct),
            "fraction": correct / len(samples) if samples else None,
            "samples": samples,
        }
        if task == VIDEO_GROUNDING:
            report["tasks"][task]["frames_asked"] = sum(len(f) for f in frame_verdicts)
            report["tasks"][task]["frames_correct"] = sum(sum(f) for f in frame_verdicts)
    return report
