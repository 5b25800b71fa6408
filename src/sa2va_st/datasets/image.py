"""RefCOCO / RefCOCO+ / RefCOCOg: one item per image with up to five of its expressions.

Rows of the image manifests (one per expression) are grouped by
``(dataset, split, image_path)``: RefCOCO and RefCOCO+ share COCO images, and their
expressions never end up in one item. Groups are in order of first appearance, the
expressions of a group in manifest order.

Per item, ``max_expressions`` (5, as upstream) expressions are chosen:

- **training**, as upstream: at most one sentence per referred object (ref): a random subset of
  the image's refs in random order, and for each ref one of its sentences at random, all drawn
  from the item RNG (deterministic for ``(seed, epoch, index)``; other epochs show other refs and
  sentences). Two sentences of one ref in one conversation would let the second answer be copied
  from the first. The text is upstream's training text, `training_sentence` of the annotator's
  ``raw`` sentence: lower-cased, without its final period.
- **evaluation**: the first ``max_expressions`` rows (sentences) in manifest order, with the
  benchmark's text (REFER's ``sent``); ``max_expressions=None`` takes all of them (use it to
  score every expression of a split).

Item dict:

=================  ==========================================================================
``task``           ``"image_grounding"``
``dataset``        manifest ``dataset`` (``refcoco``, ``refcoco+``, ``refcocog``)
``split``          manifest ``split``
``index``          the item's index in this dataset
``image_id``       manifest ``image_id`` of the image
``image_path``     the resolved image path (str)
``image``          uint8 tensor **(3, H, W)**, RGB (CHW, as torchvision), decoded with PIL
``width``          ``W`` of the decoded image (int)
``height``         ``H`` of the decoded image (int)
``ids``            list[str]: manifest ``id`` of each chosen expression
``ref_ids``        list: manifest ``ref_id`` of each
``ann_ids``        list: manifest ``ann_id`` of each
``sentences``      list[str]: the expressions (training: `training_sentence` of ``raw``; evaluation: ``sentence``)
``answers``        list[str]: ``encode_boxes([box])`` of each (``x1, y1, x2, y2``, 3 decimals)
``boxes``          float32 tensor (k, 4): the manifest boxes (normalised xyxy, unrounded)
=================  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ..catalog import IMAGE_GROUNDING
from ..errors import DatasetError
from ..formats.boxes import TOKENS_PER_BOX, encode_boxes
from .common import (
    CHARS_PER_TOKEN,
    SALT_IMAGE,
    GroundingDataset,
    PathLike,
    check_int,
    decode_rgb_chw,
    missing_file_error,
    read_manifests,
    resolve,
    single_name,
)

IMAGE_COLUMNS = (
    "id",
    "dataset",
    "split",
    "image_id",
    "image_path",
    "width",
    "height",
    "ref_id",
    "ann_id",
    "sentence",
    "raw",
    "box",
)
DEFAULT_MAX_EXPRESSIONS = 5


def training_sentence(raw: str) -> str:
    """Upstream's RefCOCO training text: the annotator's sentence lower-cased, without its final period
    (``"The man on the left."`` -> ``"the man on the left"``)."""
    text = " ".join(raw.split()).lower()
    return text[:-1].rstrip() if text.endswith(".") else text


class ImageGroundingDataset(GroundingDataset):
    """Referring-expression boxes over images; see the module docstring for the item dict."""

    task = IMAGE_GROUNDING
    _salt = SALT_IMAGE

    def __init__(
        self,
        manifest_paths: PathLike | Sequence[PathLike],
        *,
        max_expressions: int | None = DEFAULT_MAX_EXPRESSIONS,
        train: bool = True,
        seed: int = 0,
        root: PathLike | None = None,
        name: str | None = None,
        check_files: bool = False,
    ) -> None:
        super().__init__(train=train, seed=seed, root=root)
        self.max_expressions = (
            None if max_expressions is None else check_int(max_expressions, "max_expressions", 1, why=" or None")
        )
        cols, origin = read_manifests(manifest_paths, IMAGE_COLUMNS, kind="image")
        self._cols, self._origin = cols, origin
        self.name = single_name(cols["dataset"], name, "image")
        self.num_expressions = len(origin)

        for i, box in enumerate(cols["box"]):
            if box is None or len(box) != 4:
                raise DatasetError(
                    f"row id {cols['id'][i]!r} has box {box!r}; a box is four numbers x1, y1, x2, y2",
                    file=origin[i],
                    key=f"{cols['id'][i]}:box",
                    fix="rebuild the manifest; rows without a box are dropped there",
                )
        self._boxes = np.asarray(cols["box"], dtype=np.float64).reshape(-1, 4)  # (rows, 4)

        groups: dict[tuple[str, str, str], list[int]] = {}
        for i, key in enumerate(zip(cols["dataset"], cols["split"], cols["image_path"])):
            groups.setdefault(key, []).append(i)
        self._groups: list[np.ndarray] = [np.asarray(rows, dtype=np.int64) for rows in groups.values()]

        if check_files:
            for rows in self._groups:
                r = int(rows[0])
                path = resolve(cols["image_path"][r], self.root)
                if not path.is_file():
                    raise missing_file_error("the image", path, origin[r], cols["id"][r], "image_path")

    def __len__(self) -> int:
        return len(self._groups)

    def lengths(self) -> np.ndarray:
        """(items,) a rough token count of each item (for length-grouped batches): its turns (one per ref, at
        most max_expressions) times the mean sentence length (~4 characters a token) plus a box answer."""
        out = np.empty(len(self._groups), dtype=np.float64)
        for i, rows in enumerate(self._groups):
            refs = len({self._cols["ref_id"][r] for r in rows.tolist()})
            turns = refs if self.max_expressions is None else min(self.max_expressions, refs)
            chars = np.mean([len(self._cols["sentence"][r]) for r in rows.tolist()])
            out[i] = turns * (chars / CHARS_PER_TOKEN + TOKENS_PER_BOX)
        return out

    def expression_rows(self, index: int) -> np.ndarray:
        """The manifest rows (global row numbers) item ``index`` uses in the current epoch."""
        index = self._check_index(index)
        rows = self._groups[index]
        rng = self.item_rng(index)
        if rng is None:
            k = len(rows) if self.max_expressions is None else min(self.max_expressions, len(rows))
            return rows[:k]
        refs: dict[object, list[int]] = {}  # ref -> its rows (sentences), in manifest order
        for r in rows.tolist():
            refs.setdefault(self._cols["ref_id"][r], []).append(r)
        sentences = list(refs.values())
        k = len(sentences) if self.max_expressions is None else min(self.max_expressions, len(sentences))
        chosen = rng.permutation(len(sentences))[:k]
        return np.asarray([sentences[j][int(rng.integers(len(sentences[j])))] for j in chosen], dtype=np.int64)

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        rows = self.expression_rows(index)
        c = self._cols
        first = int(rows[0])
        path = resolve(c["image_path"][first], self.root)
        image = decode_rgb_chw(path, manifest=self._origin[first], row_id=c["id"][first], column="image_path")
        boxes = self._boxes[rows]  # (k, 4)
        return {
            "task": self.task,
            "dataset": c["dataset"][first],
            "split": c["split"][first],
            "index": index,
            "image_id": c["image_id"][first],
            "image_path": os.fspath(path),
            "image": image,
            "width": int(image.shape[2]),
            "height": int(image.shape[1]),
            "ids": [c["id"][r] for r in rows],
            "ref_ids": [c["ref_id"][r] for r in rows],
            "ann_ids": [c["ann_id"][r] for r in rows],
            "sentences": [training_sentence(c["raw"][r]) if self.train else c["sentence"][r] for r in rows],
            "answers": [encode_boxes([b]) for b in boxes.tolist()],
            "boxes": torch.from_numpy(boxes.astype(np.float32)),
        }
