"""A model's answers on one benchmark split, saved so that every score re-runs without the model.

- **Requests.** The split's manifest is read by its task's dataset class in evaluation mode (no
  randomness): an image with all its expressions, a video clip with all its expressions over
  ``video_frames`` frames taken at the centres of equal segments, a temporal query over
  ``num_tokens`` features at the centres of equal bins. Each expression is asked on its own, as a
  one-turn conversation, through the inference API (`ground_boxes_batch`, `ground_window_batch`).
- **Shards.** Item ``i`` belongs to shard ``i % num_shards``; a shard is one job (one GPU).
- **Records.** One JSON object per expression or query, in item order:
  the manifest ``id``, the question, the raw ``answer``, the parsed ``prediction`` (``null`` when the
  answer does not parse) and the ``expected`` answer from the manifest (``null`` where the split's
  labels are held by a server), plus what scoring needs (``type_id``, ``frame_indices``,
  ``duration``, ``expected_windows``; with a SAM2 segmenter, for images ``ann_id``, ``mask`` and
  ``expected_mask``, for clips ``masks`` and ``expected_masks`` over every frame: `evaluation.masks`;
  on a server's split, ``frame_names`` and ``size`` for its archive: `evaluation.submission`).
- **Resume.** Records are appended to ``<out>.partial`` and flushed batch by batch; a restarted shard
  keeps the complete lines already there (a torn last line is dropped) and asks only the rest. The
  finished file is renamed to ``<out>`` in one step.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from ..errors import EvaluationError
from ..formats.common import ParseFailure
from .masks import ReferenceMasks, ReferenceVideoMasks, encode_mask

log = logging.getLogger(__name__)


def shard_indices(n_items: int, shard: int, num_shards: int) -> range:
    """Indices of the items of one shard (every ``num_shards``-th, from ``shard``)."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in 0..{num_shards - 1}")
    return range(shard, n_items, num_shards)


def _frame_boxes(boxes: Any, present: Any) -> list[list[list[float]]]:
    """(n, K, 4) boxes + (n, K) presence → per frame the boxes of the objects present there."""
    boxes, present = np.asarray(boxes, dtype=float), np.asarray(present, dtype=bool)
    return [
        [[round(float(v), 6) for v in boxes[t, k]] for k in range(boxes.shape[1]) if present[t, k]]
        for t in range(boxes.shape[0])
    ]


def _box_prediction(parsed: Any) -> list[list[list[float]]] | None:
    if isinstance(parsed, ParseFailure):
        return None
    return [[[float(v) for v in box] for box in frame] for frame in parsed]


def requests_of(item: Mapping[str, Any]) -> Iterator[tuple[tuple, dict[str, Any]]]:
    """The (inference request, record without the answer) of each question of one item."""
    task = item["task"]
    base = {"dataset": item["dataset"], "split": item["split"], "task": task}
    if task == TEMPORAL_GROUNDING:
        window = item.get("window_s")
        truths = item.get("truths_s")
        yield (
            (np.asarray(item["features"]), float(item["duration"]), item["sentence"]),
            base
            | {
                "id": str(item["id"]),
                "sentence": item["sentence"],
                "duration": float(item["duration"]),
                "expected": None if window is None else [float(window[0]), float(window[1])],
                "expected_windows": None if truths is None else [[float(a), float(b)] for a, b in truths],
            },
        )
        return
    for turn, sentence in enumerate(item["sentences"]):
        record = base | {"id": str(item["ids"][turn]), "sentence": sentence}
        if task == IMAGE_GROUNDING:
            box = np.asarray(item["boxes"][turn], dtype=float)
            record["expected"] = [[[round(float(v), 6) for v in box]]]
            record["ann_id"] = int(item["ann_ids"][turn])
            yield (item["image"], sentence), record
        else:
            has_answer = item["answers"][turn] is not None
            record |= {
                "video": item["video"],
                "exp_id": item["exp_ids"][turn],
                "type_id": item["type_ids"][turn],
                "anno_ids": item["anno_ids"][turn] if "anno_ids" in item else None,
                "frame_indices": [int(i) for i in item["frame_indices"]],
                "expected": _frame_boxes(item["boxes"][turn], item["present"][turn]) if has_answer else None,
            }
            yield (item["frames"], sentence), record


def _masks(segmenter: Any, reference: ReferenceMasks | None, image: Any, record: Mapping[str, Any]) -> dict:
    """``mask`` (SAM2 prompted by the answered boxes) and ``expected_mask`` of one image record."""
    if reference is None:
        raise ValueError("masks need the dataset's reference masks as well as a segmenter")
    prediction = record["prediction"]
    mask = None if prediction is None else encode_mask(segmenter.expression_mask(image, prediction[0]).numpy())
    return {"mask": mask, "expected_mask": reference.rle(record["ann_id"])}


def _video_masks(
    segmenter: Any,
    reference: ReferenceVideoMasks | None,
    frames: torch.Tensor,
    frame_names: Sequence[str],
    record: Mapping[str, Any],
) -> dict:
    """``masks`` (SAM2 propagated from the answered key frames) and ``expected_masks`` of one clip record.

    A split whose labels a server holds (``expected`` is None) needs no reference: its records carry
    ``frame_names`` and ``size`` (H, W) instead, what its submission archive is written from.
    """
    num_frames, _, height, width = (int(v) for v in frames.shape)
    if record["expected"] is None:
        fields = {"expected_masks": None, "frame_names": list(frame_names), "size": [height, width]}
    elif reference is None or record.get("anno_ids") is None:
        raise ValueError("video masks need the split's mask dict and the manifest's anno_ids")
    else:
        fields = {"expected_masks": reference.masks(record["anno_ids"], num_frames, height, width)}
    prediction = record["prediction"]
    if prediction is None:
        return {"masks": None} | fields
    key_frames = {int(t): boxes for t, boxes in zip(record["frame_indices"], prediction)}
    masks = segmenter.segment_video(frames, key_frames).numpy()  # (F, H, W)
    return {"masks": [encode_mask(m) for m in masks]} | fields


def _done_ids(partial: Path) -> set[str]:
    """Ids of the complete records already in a partial file; a torn last line is cut off."""
    if not partial.exists():
        return set()
    data = partial.read_bytes()
    keep = data[: data.rfind(b"\n") + 1]
    if len(keep) != len(data):
        with partial.open("r+b") as handle:
            handle.truncate(len(keep))
    return {json.loads(line)["id"] for line in keep.splitlines() if line.strip()}


def predict_split(
    model: Any,
    dataset: Sequence[Mapping[str, Any]],
    out: str | os.PathLike,
    *,
    shard: int = 0,
    num_shards: int = 1,
    batch_size: int = 8,
    max_objects: int | None = None,
    segmenter: Any = None,
    reference_masks: ReferenceMasks | ReferenceVideoMasks | None = None,
) -> Path:
    """Ask ``model`` every question of the shard's items and write the records to ``out`` (JSONL).

    With ``segmenter`` (a `Sam2Segmenter`) and ``reference_masks`` (`ReferenceMasks` for images,
    `ReferenceVideoMasks` for clips), records also carry SAM2's masks of the answer and the true masks
    (`evaluation.masks`).
    """
    from ..model.inference import DEFAULT_MAX_OBJECTS, ground_boxes_batch, ground_window_batch

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _done_ids(partial)
    if done:
        log.info("resuming %s: %d answers already saved", out, len(done))
    indices = shard_indices(len(dataset), shard, num_shards)
    pending: list[tuple[tuple, dict[str, Any], int]] = []  # (request, record, item position)
    asked = 0

    def flush(handle: Any) -> None:
        nonlocal asked
        if not pending:
            return
        requests = [request for request, _, _ in pending]
        if pending[0][1]["task"] == TEMPORAL_GROUNDING:
            parsed, texts = ground_window_batch(model, requests, batch_size=batch_size, return_text=True)
            predictions = [None if isinstance(p, ParseFailure) else [float(p[0]), float(p[1])] for p in parsed]
        else:
            objects = max_objects or DEFAULT_MAX_OBJECTS
            parsed, texts = ground_boxes_batch(
                model, requests, batch_size=batch_size, max_objects=objects, return_text=True
            )
            predictions = [_box_prediction(p) for p in parsed]
        clips: dict[int, torch.Tensor] = {}  # item position -> its whole clip, decoded once for its expressions
        for (request, record, item_position), text, prediction in zip(pending, texts, predictions):
            record = record | {"answer": text, "prediction": prediction}
            if segmenter is not None and record["task"] == IMAGE_GROUNDING:
                record |= _masks(segmenter, reference_masks, request[0], record)
            elif segmenter is not None and record["task"] == VIDEO_GROUNDING:
                if item_position not in clips:
                    clips[item_position] = dataset.clip_frames(item_position)
                names = dataset.clip_frame_names(item_position)
                record |= _video_masks(segmenter, reference_masks, clips[item_position], names, record)
            handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        asked += len(pending)
        log.info("%s: %d answers saved (%d of %d items)", out.name, len(done) + asked, position + 1, len(dataset))
        pending.clear()

    with partial.open("a", encoding="utf-8") as handle:
        position = 0
        for position in indices:
            for request, record in requests_of(dataset[position]):
                if record["id"] not in done:
                    pending.append((request, record, position))
            if len(pending) >= batch_size:
                flush(handle)
        flush(handle)
    os.replace(partial, out)
    return out


def read_predictions(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The records of one split's shard files, in shard order."""
    records: list[dict[str, Any]] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise EvaluationError(
                        f"line {number} is not a JSON record ({error})",
                        file=str(path),
                        key=f"line {number}",
                        fix="the file was changed by hand or damaged: delete it and run evaluate_shard again",
                    ) from None
    return records


__all__ = ["predict_split", "read_predictions", "requests_of", "shard_indices"]
