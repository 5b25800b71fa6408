"""MeViS / Ref-YouTube-VOS / ReVOS: one item per clip, ``num_frames`` (6) frames, up to 5 expressions.

**Items.** Rows of the video manifests (one per expression) are grouped by clip
``(dataset, split, frame_dir, frames)``, in order of first appearance, as upstream builds its video
items: one item per video (times its repeat), not per expression. The item's expressions become the
turns of one conversation over the same sampled frames, so the cost of the frames is shared and an
epoch holds as many video items as upstream's.

**Which expressions.** ``max_expressions`` (5, as upstream) of the clip's expressions: training
takes a random subset in random order, *without* replacement, from the item RNG (deterministic for
``(seed, epoch, index)``; other epochs show other subsets and orders); evaluation the first
``max_expressions`` in manifest order; ``max_expressions=None`` takes all of them. (Upstream draws
with replacement: a clip with two expressions then asks the same question twice in one
conversation, and the second answer can be copied from the first; drawing without replacement
keeps every turn a question the model has not yet answered.)

**Which frames.** The clip's ``F`` frames (manifest ``frames``, in order) are cut into
``num_frames`` equal segments and one frame is taken per segment, with
`sa2va_st.formats.windows.sample_positions` (the same rule as the temporal features):
training takes a random frame inside each segment (segment jitter, from the item RNG),
evaluation the frame nearest each segment's centre. So the frames cover the whole clip, are
distinct when ``F >= num_frames`` and in time order (upstream: 6 random distinct frames,
sorted; ours are random within strata). **Fewer frames than ``num_frames``** (``F < 6``):
segments that own no frame take the frame nearest their centre, so frames repeat
(non-decreasing; ``F = 3`` gives rows ``0, 1, 1, 2, 2, 2``) and every item still has exactly
``num_frames`` frames, each with its own box entry.

**Answers.** Per sampled frame, one box per referred object that is visible there, in the
manifest's object order, joined by ``<box_sep>``; ``<no_box>`` where none is (upstream's
``decode_bbox``); frames joined by ``<next>`` (`encode_video_box_lists`). ReVOS ``type_id == 2`` (no
target) is answered ``<no_box>`` for every frame whatever the boxes say. A split without masks
(``has_masks`` false: MeViS valid, Ref-YouTube-VOS valid) has no answers (``None``) and can only be
used with ``train=False``.

Item dict (per-turn fields are lists, one entry per chosen expression):

=================  ==========================================================================
``task``           ``"video_grounding"``
``dataset``        manifest ``dataset`` (``mevis``, ``rvos``, ``revos``)
``split``          manifest ``split``
``index``          the item's index in this dataset (= its clip)
``video``          manifest ``video``
``has_masks``      manifest ``has_masks`` of the clip (bool)
``frame_indices``  int64 tensor (n,): indices into the manifest ``frames`` list
``frame_paths``    list[str] (n): the decoded files (``frame_dir / frames[i]``)
``frames``         uint8 tensor **(n, 3, H, W)**, RGB (CHW per frame), decoded with PIL
``width``          ``W`` of the decoded frames (int)
``height``         ``H`` of the decoded frames (int)
``ids``            list[str]: manifest ``id`` of each turn's expression
``exp_ids``        list[str]: manifest ``exp_id`` of each
``sentences``      list[str]: the expressions
``type_ids``       list: manifest ``type_id`` of each (ReVOS 0/1/2; else None)
``anno_ids``       list of list[str]: manifest ``anno_ids`` of each (the mask dict's keys; None if absent)
``boxes``          list of float32 tensors **(n, K, 4)**: per frame, per referred object (K of this
                   expression), normalised xyxy, NaN where absent or unknown
``present``        list of bool tensors (n, K): the object is in that frame's answer
``answers``        list[str | None]: each turn's answer, None without masks
=================  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ..catalog import VIDEO_GROUNDING
from ..errors import DatasetError
from ..formats.boxes import TOKENS_PER_BOX, encode_video_box_lists
from ..formats.windows import sample_positions
from .common import (
    CHARS_PER_TOKEN,
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
    "id", "dataset", "split", "video", "exp_id", "sentence", "frame_dir", "frames", "num_frames",
    "width", "height", "boxes", "has_masks", "num_objects",
)  # fmt: skip
VIDEO_OPTIONAL_COLUMNS = ("type_id", "anno_ids")
DEFAULT_NUM_FRAMES = 6
DEFAULT_MAX_EXPRESSIONS = 5
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
        max_expressions: int | None = DEFAULT_MAX_EXPRESSIONS,
        train: bool = True,
        seed: int = 0,
        root: PathLike | None = None,
        name: str | None = None,
        check_files: bool = False,
    ) -> None:
        super().__init__(train=train, seed=seed, root=root)
        self.num_frames = check_int(num_frames, "num_frames", 1)
        self.max_expressions = (
            None if max_expressions is None else check_int(max_expressions, "max_expressions", 1, why=" or None")
        )
        cols, origin = read_manifests(manifest_paths, VIDEO_COLUMNS, VIDEO_OPTIONAL_COLUMNS, kind="video")
        self.name = single_name(cols["dataset"], name, "video")
        self._origin = origin
        keep = (
            "id",
            "dataset",
            "split",
            "video",
            "exp_id",
            "sentence",
            "frame_dir",
            "type_id",
            "has_masks",
            "anno_ids",
        )
        self._cols = {k: cols[k] for k in keep}
        clip_of: dict[tuple[str, str, str, tuple[str, ...]], int] = {}
        self._clips: list[tuple[str, tuple[str, ...]]] = []  # (frame_dir, frames) per clip
        self._rows_of_clip: list[list[int]] = []  # manifest rows (expressions) per clip, in manifest order
        self._boxes: list[np.ndarray | None] = []  # per row (F, K, 4) float64, NaN where absent; None: no masks
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
            key = (cols["dataset"][i], cols["split"][i], cols["frame_dir"][i], tuple(frames))
            if key not in clip_of:
                clip_of[key] = len(self._clips)
                self._clips.append((cols["frame_dir"][i], tuple(frames)))
                self._rows_of_clip.append([])
            self._rows_of_clip[clip_of[key]].append(i)
            boxes = self._row_boxes(
                cols["boxes"][i], bool(cols["has_masks"][i]), len(frames), cols["num_objects"][i], row_id, origin[i]
            )
            self._boxes.append(boxes)
            if self.train and boxes is None and cols["type_id"][i] != NO_TARGET_TYPE_ID:
                raise DatasetError(
                    f"row id {row_id!r} has no masks (has_masks false): it cannot be trained on",
                    file=origin[i],
                    key=f"{row_id}:has_masks",
                    fix="train on splits with masks; use train=False for splits without them",
                )
        self.num_expressions = len(origin)
        if check_files:
            for c, (frame_dir, frames) in enumerate(self._clips):
                for f in frames:
                    path = resolve(os.path.join(frame_dir, f), self.root)
                    if not path.is_file():
                        r = self._rows_of_clip[c][0]
                        raise missing_file_error("the frame", path, origin[r], cols["id"][r], "frames")

    @staticmethod
    def _row_boxes(
        boxes: object, has_masks: bool, n: int, objects: int, row_id: object, manifest: str
    ) -> np.ndarray | None:
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
                f"row id {row_id!r}: {len(boxes)} per-frame box entries for {n} frames",
                file=manifest,
                key=f"{row_id}:boxes",
                fix="rebuild the manifest from the current special_jsons",
            )
        out = np.full((n, objects, 4), np.nan, dtype=np.float64)  # (F, K, 4)
        for j, frame in enumerate(boxes):
            if frame is None or len(frame) != objects:
                raise DatasetError(
                    f"row id {row_id!r}: frame {j} lists {None if frame is None else len(frame)} object entries, "
                    f"the row refers to {objects} objects",
                    file=manifest,
                    key=f"{row_id}:boxes",
                    fix="rebuild the manifest from the current special_jsons",
                )
            for k, box in enumerate(frame):
                if box is None:
                    continue
                if len(box) != 4 or any(v is None for v in box):
                    raise DatasetError(
                        f"row id {row_id!r}: frame {j} object {k} has box {box!r}; a box is four numbers or null",
                        file=manifest,
                        key=f"{row_id}:boxes",
                        fix="rebuild the manifest",
                    )
                out[j, k] = box
        return out

    def __len__(self) -> int:
        return len(self._clips)

    def lengths(self) -> np.ndarray:
        """(items,) a rough token count of each clip item (for length-grouped batches): its turns (at most
        max_expressions) times the mean sentence length (~4 characters a token) plus one box per object and
        sampled frame (the frames themselves cost every clip the same)."""
        out = np.empty(len(self._clips), dtype=np.float64)
        for i, rows in enumerate(self._rows_of_clip):
            turns = len(rows) if self.max_expressions is None else min(self.max_expressions, len(rows))
            chars = np.mean([len(self._cols["sentence"][r]) for r in rows])
            objects = np.mean([1 if self._boxes[r] is None else self._boxes[r].shape[1] for r in rows])
            out[i] = turns * (chars / CHARS_PER_TOKEN + self.num_frames * objects * TOKENS_PER_BOX)
        return out

    def frame_indices(self, index: int) -> np.ndarray:
        """(num_frames,) int64: which frames of its clip item ``index`` shows in the current epoch."""
        index = self._check_index(index)
        _, frames = self._clips[index]
        return sample_positions(len(frames), self.num_frames, self.item_rng(index, stream=0))

    def expression_rows(self, index: int) -> np.ndarray:
        """The manifest rows (expressions) item ``index`` asks about in the current epoch, in turn order."""
        index = self._check_index(index)
        rows = np.asarray(self._rows_of_clip[index], dtype=np.int64)
        k = len(rows) if self.max_expressions is None else min(self.max_expressions, len(rows))
        rng = self.item_rng(index, stream=1)
        if rng is None:
            return rows[:k]
        return rows[rng.permutation(len(rows))[:k]]

    def expression_answer(self, row: int, picks: np.ndarray) -> tuple[np.ndarray, str | None]:
        """The (n, K, 4) boxes of manifest row `row` on the frames `picks`, and its answer text."""
        type_id = self._cols["type_id"][row]
        row_boxes = self._boxes[row]
        n = len(picks)
        if type_id == NO_TARGET_TYPE_ID:
            objects = 1 if row_boxes is None else row_boxes.shape[1]
            return np.full((n, objects, 4), np.nan), encode_video_box_lists([[] for _ in range(n)])
        if row_boxes is None:
            return np.full((n, 1, 4), np.nan), None
        boxes = row_boxes[picks]  # (n, K, 4)
        frames = [[b for b in frame.tolist() if not np.isnan(b).any()] for frame in boxes]
        return boxes, encode_video_box_lists(frames)

    def clip_frame_names(self, index: int) -> list[str]:
        """The manifest ``frames`` of clip ``index``: the names `clip_frames` decodes, in order."""
        return list(self._clips[self._check_index(index)][1])

    def clip_frames(self, index: int) -> torch.Tensor:
        """Every frame of clip ``index``, in order, uint8 **(F, 3, H, W)** (SAM2 propagates masks over them)."""
        index = self._check_index(index)
        frame_dir, frames = self._clips[index]
        first = int(self.expression_rows(index)[0])
        manifest, row_id = self._origin[first], self._cols["id"][first]
        return torch.stack(
            [
                decode_rgb_chw(
                    resolve(os.path.join(frame_dir, f), self.root), manifest=manifest, row_id=row_id, column="frames"
                )
                for f in frames
            ]
        )

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        c = self._cols
        frame_dir, frames = self._clips[index]
        rows = self.expression_rows(index)
        first = int(rows[0])
        manifest = self._origin[first]
        picks = self.frame_indices(index)  # (n,)
        paths = [resolve(os.path.join(frame_dir, frames[j]), self.root) for j in picks.tolist()]
        decoded: dict[int, torch.Tensor] = {}  # repeated frames (short clips) are decoded once
        for j, path in zip(picks.tolist(), paths):
            if j not in decoded:
                decoded[j] = decode_rgb_chw(path, manifest=manifest, row_id=c["id"][first], column="frames")
        shapes = {tuple(t.shape) for t in decoded.values()}
        if len(shapes) > 1:
            raise DatasetError(
                f"the frames of clip {c['video'][first]!r} have different sizes {sorted(shapes)}",
                file=os.fspath(paths[0].parent),
                key=f"{manifest}:{c['id'][first]}:frames",
                fix="the clip's frames must share one size: unpack the archive again",
            )
        stacked = torch.stack([decoded[j] for j in picks.tolist()])  # (n, 3, H, W)
        turns = [self.expression_answer(int(r), picks) for r in rows]
        return {
            "task": self.task,
            "dataset": c["dataset"][first],
            "split": c["split"][first],
            "index": index,
            "video": c["video"][first],
            "has_masks": bool(c["has_masks"][first]),
            "frame_indices": torch.from_numpy(picks),
            "frame_paths": [os.fspath(p) for p in paths],
            "frames": stacked,
            "width": int(stacked.shape[3]),
            "height": int(stacked.shape[2]),
            "ids": [c["id"][r] for r in rows],
            "exp_ids": [c["exp_id"][r] for r in rows],
            "sentences": [c["sentence"][r] for r in rows],
            "type_ids": [c["type_id"][r] for r in rows],
            "anno_ids": [None if c["anno_ids"][r] is None else list(c["anno_ids"][r]) for r in rows],
            "boxes": [torch.from_numpy(boxes.astype(np.float32)) for boxes, _ in turns],
            "present": [torch.from_numpy(~np.isnan(boxes).any(axis=2)) for boxes, _ in turns],
            "answers": [answer for _, answer in turns],
        }
