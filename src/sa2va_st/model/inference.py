"""Inference API: boxes per frame for an expression, a time window for a query; batched greedy decoding.

- `ground_boxes(model, frames, expression)` → per frame, the list of boxes (``(x1, y1, x2, y2)``
  normalised to [0, 1]) of the referred objects visible there, one per object (``[]``: none is,
  ``<no_box>``); or a `ParseFailure` when the model's text is not a valid answer. One frame is asked
  as an image (the image prompt: one entry, its boxes), several frames as a video (one entry per
  frame; the number of entries must match).
- `ground_window(model, features, duration, query)` → ``(start_s, end_s)`` or a `ParseFailure`.
  ``features`` is a video's CLIP feature table ``(T, D)``; when ``T`` is not the model's
  ``num_tokens``, the evaluation rows of `sample_positions` are taken (one per bin, nearest the bin
  centre: the same rule as the temporal dataset in evaluation mode). The answer's bins map back to
  seconds with `indices_to_window`.
- ``*_batch`` versions take lists of requests and decode ``batch_size`` prompts per ``generate``
  call (left-padded; positions count real tokens only, so a padded prompt decodes as it would alone).

Images/frames may be uint8 tensors ``(3, H, W)`` / ``(n, 3, H, W)``, HWC/NHWC uint8 arrays, PIL images
or lists of those. Answers are decoded by `sa2va_st.formats` (the decoders never raise on model text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from ..errors import ModelError
from ..formats.boxes import TOKENS_PER_BOX, Box, decode_boxes, decode_video_box_lists
from ..formats.common import ParseFailure
from ..formats.windows import decode_window_tokens, indices_to_window, sample_positions

DEFAULT_MAX_OBJECTS = 4  # boxes per frame the generation budget allows (answers stop at end of turn anyway)
DEFAULT_BATCH_SIZE = 8


def _chw_uint8(image: Any) -> torch.Tensor:
    """One image → uint8 (3, H, W)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        image = np.asarray(image.convert("RGB"))
    tensor = torch.as_tensor(np.asarray(image)) if not isinstance(image, torch.Tensor) else image
    if tensor.ndim != 3:
        raise ModelError(f"an image must be (3, H, W) or (H, W, 3), got shape {tuple(tensor.shape)}", key="frames")
    if tensor.shape[0] != 3 and tensor.shape[-1] == 3:
        tensor = tensor.permute(2, 0, 1)
    if tensor.shape[0] != 3 or tensor.dtype != torch.uint8:
        raise ModelError(
            f"an image must be uint8 RGB, got {tensor.dtype} of shape {tuple(tensor.shape)}",
            key="frames",
            fix="pass uint8 RGB images (CHW tensors as the datasets give, HWC arrays or PIL)",
        )
    return tensor.contiguous()


def as_frames(frames: Any) -> torch.Tensor:
    """An image, a list of images or an (n, 3, H, W) / (n, H, W, 3) array → uint8 (n, 3, H, W)."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ModelError("no frames given", key="frames")
        chw = [_chw_uint8(f) for f in frames]
        if len({tuple(f.shape) for f in chw}) != 1:
            raise ModelError("the frames of one video must share one size", key="frames")
        return torch.stack(chw)
    if hasattr(frames, "convert") and hasattr(frames, "size"):
        return _chw_uint8(frames).unsqueeze(0)
    tensor = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if tensor.ndim == 3:
        return _chw_uint8(tensor).unsqueeze(0)
    if tensor.ndim == 4:
        return torch.stack([_chw_uint8(f) for f in tensor])
    raise ModelError(f"frames must be 3-d (one image) or 4-d (n frames), got {tuple(tensor.shape)}", key="frames")


def _generate(model: Any, items: list[dict], max_new_tokens: int, batch_size: int) -> list[str]:
    texts: list[str] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch = model.processor.for_generation(chunk)
        texts += model.generate_text(batch, max_new_tokens=max_new_tokens)
    return texts


def ground_boxes_batch(
    model: Any,
    requests: Sequence[tuple[Any, str]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    return_text: bool = False,
) -> list[list[list[Box]] | ParseFailure] | tuple[list, list[str]]:
    """``[(frames, expression), ...]`` → per request the boxes of each frame, or a `ParseFailure`.

    ``max_objects`` sizes the generation budget (boxes per frame); an answer with more is cut and fails to parse.

    Images and videos may be mixed; prompts of one kind (and, for videos, one frame count) are
    generated together. ``return_text=True`` also returns the raw answers.
    """
    prepared = []
    for frames, expression in requests:
        stack = as_frames(frames)
        if stack.shape[0] == 1:
            prepared.append({"task": IMAGE_GROUNDING, "image": stack[0], "sentences": [expression]})
        else:
            prepared.append({"task": VIDEO_GROUNDING, "frames": stack, "sentence": expression})
    results: list[Any] = [None] * len(prepared)
    texts: list[str] = [""] * len(prepared)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, item in enumerate(prepared):
        n = 1 if item["task"] == IMAGE_GROUNDING else int(item["frames"].shape[0])
        groups.setdefault((item["task"], n), []).append(i)
    for (task, n), indices in groups.items():
        max_new = (TOKENS_PER_BOX * max_objects + 8) * n + 8  # boxes, <next>/<no_box>, end of turn
        for i, text in zip(indices, _generate(model, [prepared[i] for i in indices], max_new, batch_size)):
            texts[i] = text
            if task == IMAGE_GROUNDING:
                boxes = decode_boxes(text)
                results[i] = boxes if isinstance(boxes, ParseFailure) else [boxes]
            else:
                results[i] = decode_video_box_lists(text, n_frames=n)
    return (results, texts) if return_text else results


def ground_boxes(model: Any, frames: Any, expression: str, **kwargs: Any) -> list[list[Box]] | ParseFailure:
    """The boxes of ``expression``'s objects in each frame (``[]`` where none is visible), or a
    `ParseFailure`; see the module docstring."""
    return ground_boxes_batch(model, [(frames, expression)], **kwargs)[0]


def ground_window_batch(
    model: Any,
    requests: Sequence[tuple[Any, float, str]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_text: bool = False,
) -> list[tuple[float, float] | ParseFailure] | tuple[list, list[str]]:
    """``[(features (T, D), duration_s, query), ...]`` → ``(start_s, end_s)`` or a `ParseFailure` each."""
    n = model.config.temporal.num_tokens
    items = []
    for features, _duration, query in requests:
        table = np.asarray(features, dtype=np.float32)
        if table.ndim != 2 or table.shape[0] < 1:
            raise ModelError(f"features must be a (T, D) table, got shape {table.shape}", key="features")
        if table.shape[0] != n:
            table = table[sample_positions(table.shape[0], n, rng=None)]  # (n, D): evaluation rows
        items.append({"task": TEMPORAL_GROUNDING, "features": torch.from_numpy(table), "sentence": query})
    texts = _generate(model, items, max_new_tokens=16, batch_size=batch_size)
    results: list[Any] = []
    for (_, duration, _), text in zip(requests, texts):
        bins = decode_window_tokens(text, n=n)
        results.append(bins if isinstance(bins, ParseFailure) else indices_to_window(*bins, float(duration), n))
    return (results, texts) if return_text else results


def ground_window(
    model: Any, features: Any, duration: float, query: str, **kwargs: Any
) -> tuple[float, float] | ParseFailure:
    """The window ``(start_s, end_s)`` the query describes, or a `ParseFailure`; see the module docstring."""
    return ground_window_batch(model, [(features, duration, query)], **kwargs)[0]
