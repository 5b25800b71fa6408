"""MeViS / Ref-YouTube-VOS / ReVOS: one item per expression, ``num_frames`` (6) frames of the clip.

**Which frames.** The clip's ``F`` frames (manifest ``frames``, in order) are cut into
``num_frames`` equal segments and one frame is taken per segment, with
`sa2va_st.formats.windows.sample_positions` (the same rule as the temporal features):
training takes a random frame inside each segment (segment jitter, from the item RNG:
deterministic for ``(seed, epoch, index)``), evaluation the frame nearest each segment's
centre. So the frames cover the whole clip, in order. **Fewer frames than
``num_frames``** (``F < 6``): segments that own no frame take the frame nearest their centre,
so frames repeat (non-decreasing; ``F = 3`` gives rows ``0, 1, 1, 2, 2, 2``) and every item
still has exactly ``num_frames`` frames, each with its own box entry.

**Answer.** Per sampled frame the manifest box, ``<no_box>`` where the object is absent
(a null entry), joined by ``<next>`` (`encode_video_boxes`). ReVOS ``type_id == 2`` (no
target) is answered ``<no_box>`` for every frame whatever the boxes say. A split without
masks (``has_masks`` false, ``boxes`` null: MeViS valid, Ref-YouTube-VOS valid) has no
answer (``None``) and can only be used with ``train=False``.

Item dict:

=================  ==========================================================================
``task``           ``"video_grounding"``
``dataset``        manifest ``dataset`` (``mevis``, ``rvos``, ``revos``)
``split``          manifest ``split``
``index``          the item's index in this dataset (= its manifest row)
``id``             manifest ``id``
``video``          manifest ``video``
``exp_id``         manifest ``exp_id``
``sentence``       the expression
``type_id``        manifest ``type_id`` (ReVOS: 0 referring, 1 reasoning, 2 no target; else None)
``has_masks``      manifest ``has_masks`` (bool)
``frame_indices``  int64 tensor (n,): indices into the manifest ``frames`` list
``frame_paths``    list[str] (n): the decoded files (``frame_dir / frames[i]``)
``frames``         uint8 tensor **(n, 3, H, W)**, RGB (CHW per frame), decoded with PIL
``width``          ``W`` of the decoded frames (int)
``height``         ``H`` of the decoded frames (int)
``boxes``          float32 tensor (n, 4): normalised xyxy per frame, NaN where absent/unknown
``present``        bool tensor (n,): the frame has a box in the answer
``answer``         str (``<next>``-joined, ``<no_box>`` for absent) or None without masks
=================  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ..catalog import VIDEO_GROUNDING
from ..errors import DatasetError
from ..formats.boxes import encode_video_boxes
from ..formats.windows import sample_positions
from .common import (
    SALT_VIDEO,
    GroundingDataset,
    PathLike,
    check_int,
    decode_rgb_chw,
    missing_file_error,
    read_manifests,
    resolve,
    single_name,
)

VIDEO_COLUMNS = (
    "id",
    "dataset",
    "split",
    "video",
    "exp_id",
    "sentence",
    "frame_dir",
    "frames",
    "num_frames",
    "width",
    "height",
    "boxes",
    "has_masks",
)
VIDEO_OPTIONAL_COLUMNS = ("type_id",)
DEFAULT_NUM_FRAMES = 6
NO_TARGET_TYPE_ID = 2  # ReVOS


class VideoGroundingDataset(GroundingDataset):
    """Referring-expression boxes over video clips; see the module docstring for the item dict."""

    task = VIDEO_GROUNDING
    _salt = SALT_VIDEO

    def __init__(
        self,
        manifest_paths: PathLike | Sequence[PathLike],
        *,
        num_frames: int = DEFAULT_NUM_FRAMES,
        train: bool = True,
        seed: int = 0,
        root: PathLike | None = None,
        name: str | None = None,
        check_files: bool = False,
    ) -> None:
        super().__init__(train=train, seed=seed, root=root)
        self.num_frames = check_int(num_frames, "num_frames", 1)
        cols, origin = read_manifests(manifest_paths, VIDEO_COLUMNS, VIDEO_OPTIONAL_COLUMNS, kind="video")
        self.name = single_name(cols["dataset"], name, "video")
        self._origin = origin
        # keep only what items need; one frame list per clip (a clip has many expressions)
        keep = ("id", "dataset", "split", "video", "exp_id", "sentence", "frame_dir", "type_id", "has_masks")
        self._cols = {k: cols[k] for k in keep}
        clip_of: dict[tuple[str, tuple[str, ...]], int] = {}
        self._clips: list[tuple[str, tuple[str, ...]]] = []
        self._clip: list[int] = []
        self._boxes: list[np.ndarray | None] = []  # per row (F, 4) float64, NaN where absent; None: no masks
        for i in range(len(origin)):
            row_id = cols["id"][i]
            frames = cols["frames"][i]
            if not frames or cols["num_frames"][i] != len(frames):
                raise DatasetError(
                    f"row id {row_id!r}: num_frames is {cols['num_frames'][i]!r} but the frames list holds "
                    f"{0 if not frames else len(frames)} name(s)",
                    file=origin[i],
                    key=f"{row_id}:frames",
                    fix="rebuild the manifest; clips without frames are dropped there",
                )
            key = (cols["frame_dir"][i], tuple(frames))
            if key not in clip_of:
                clip_of[key] = len(self._clips)
                self._clips.append(key)
            self._clip.append(clip_of[key])
            self._boxes.append(
                self._row_boxes(cols["boxes"][i], bool(cols["has_masks"][i]), len(frames), row_id, origin[i])
            )
            if self.train and self._boxes[-1] is None and cols["type_id"][i] != NO_TARGET_TYPE_ID:
                raise DatasetError(
                    f"row id {row_id!r} has no masks (has_masks false): it cannot be trained on",
                    file=origin[i],
                    key=f"{row_id}:has_masks",
                    fix="train on splits with masks; use train=False for splits without them",
                )
        if check_files:
            for c, (frame_dir, frames) in enumerate(self._clips):
                for f in frames:
                    path = resolve(os.path.join(frame_dir, f), self.root)
                    if not path.is_file():
                        r = self._clip.index(c)
                        raise missing_file_error("the frame", path, origin[r], cols["id"][r], "frames")

    @staticmethod
    def _row_boxes(boxes: object, has_masks: bool, n: int, row_id: object, manifest: str) -> np.ndarray | None:
        if boxes is None:
            if has_masks:
                raise DatasetError(
                    f"row id {row_id!r}: has_masks is true but boxes is null",
                    file=manifest,
                    key=f"{row_id}:boxes",
                    fix="rebuild the manifest",
                )
            return None
        if len(boxes) != n:
            raise DatasetError(
                f"row id {row_id!r}: {len(boxes)} per-frame boxes for {n} frames",
                file=manifest,
                key=f"{row_id}:boxes",
                fix="rebuild the manifest from the current special_jsons",
            )
        out = np.full((n, 4), np.nan, dtype=np.float64)
        for j, box in enumerate(boxes):
            if box is None:
                continue
            if len(box) != 4 or any(v is None for v in box):
                raise DatasetError(
                    f"row id {row_id!r}: frame {j} has box {box!r}; a box is four numbers or null",
                    file=manifest,
                    key=f"{row_id}:boxes",
                    fix="rebuild the manifest",
                )
            out[j] = box
        return out

    def __len__(self) -> int:
        return len(self._clip)

    def frame_indices(self, index: int) -> np.ndarray:
        """(num_frames,) int64: which frames of its clip item ``index`` shows in the current epoch."""
        index = self._check_index(index)
        _, frames = self._clips[self._clip[index]]
        return sample_positions(len(frames), self.num_frames, self.item_rng(index))

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        c = self._cols
        row_id, manifest = c["id"][index], self._origin[index]
        frame_dir, frames = self._clips[self._clip[index]]
        picks = self.frame_indices(index)  # (n,)
        paths = [resolve(os.path.join(frame_dir, frames[j]), self.root) for j in picks.tolist()]
        decoded: dict[int, torch.Tensor] = {}  # repeated frames (short clips) are decoded once
        for j, path in zip(picks.tolist(), paths):
            if j not in decoded:
                decoded[j] = decode_rgb_chw(path, manifest=manifest, row_id=row_id, column="frames")
        shapes = {tuple(t.shape) for t in decoded.values()}
        if len(shapes) > 1:
            raise DatasetError(
                f"the frames of row id {row_id!r} have different sizes {sorted(shapes)}",
                file=os.fspath(paths[0].parent),
                key=f"{manifest}:{row_id}:frames",
                fix="the clip's frames must share one size: unpack the archive again",
            )
        stacked = torch.stack([decoded[j] for j in picks.tolist()])  # (n, 3, H, W)

        type_id = c["type_id"][index]
        row_boxes = self._boxes[index]
        n = len(picks)
        if type_id == NO_TARGET_TYPE_ID:
            boxes = np.full((n, 4), np.nan)
            answer: str | None = encode_video_boxes([None] * n)
        elif row_boxes is None:
            boxes, answer = np.full((n, 4), np.nan), None
        else:
            boxes = row_boxes[picks]  # (n, 4)
            answer = encode_video_boxes([None if np.isnan(b).any() else b for b in boxes.tolist()])
        present = ~np.isnan(boxes).any(axis=1)
        return {
            "task": self.task,
            "dataset": c["dataset"][index],
            "split": c["split"][index],
            "index": index,
            "id": row_id,
            "video": c["video"][index],
            "exp_id": c["exp_id"][index],
            "sentence": c["sentence"][index],
            "type_id": type_id,
            "has_masks": bool(c["has_masks"][index]),
            "frame_indices": torch.from_numpy(picks),
            "frame_paths": [os.fspath(p) for p in paths],
            "frames": stacked,
            "width": int(stacked.shape[3]),
            "height": int(stacked.shape[2]),
            "boxes": torch.from_numpy(boxes.astype(np.float32)),
            "present": torch.from_numpy(present),
            "answer": answer,
        }
