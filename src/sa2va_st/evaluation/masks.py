"""Masks of answers and of their targets, saved in the prediction records as compressed RLE.

Each RefCOCO-family prediction record carries two masks, so that cIoU and gIoU re-score from the
saved records alone (no model, no data):

- ``mask``: SAM2's mask of the answer (`Sam2Segmenter.expression_mask` prompted by the boxes answered:
  the union of their masks, one mask per expression as upstream's ``[SEG]``); empty when the answer
  holds no box; ``None`` when it does not parse (scored as an empty mask, counted as unparseable).
- ``expected_mask``: the referred annotation's mask from the dataset folder's ``instances.json``
  (polygons or RLE, checked as the annotations stage checks them, rasterised by pycocotools).

Each video record of a split with masks (MeViS valid_u, ReVOS) carries, per frame of the whole clip,
the same two (``masks``, ``expected_masks``), for J&F:

- ``masks``: SAM2's propagation (`Sam2Segmenter.segment_video`) over every frame of the clip, prompted
  by the boxes answered on the shown frames (each shown frame a key frame; ``<no_box>`` frames prompt
  nothing); ``None`` when the answer does not parse;
- ``expected_masks``: the union of the expression's objects' masks (manifest ``anno_ids``) from the
  split's mask dict (``mask_dict.json``), an empty mask where an object is absent.

A saved mask is ``{"size": [H, W], "counts": str}``: pycocotools' compressed RLE, counts as text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from .. import catalog
from ..annotations.masks import check_rle
from ..annotations.refcoco import annotation_rle, read_instances
from ..annotations.video_refer import find_mask_dict, read_mask_dict
from ..errors import EvaluationError

INSTANCES = "instances.json"


def encode_mask(mask: Any) -> dict[str, Any]:
    """bool (H, W) → ``{"size": [H, W], "counts": str}``."""
    array = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    if array.ndim != 2:
        raise ValueError(f"a mask is 2-D (H, W), got shape {array.shape}")
    rle = mask_utils.encode(array)
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: Mapping[str, Any], *, source: str = "a prediction record") -> np.ndarray:
    """A saved mask → bool (H, W); the RLE is checked first (pycocotools trusts its input)."""
    checked = check_rle(
        {"size": list(rle["size"]), "counts": rle["counts"]}, file=Path(source), key="mask", size=tuple(rle["size"])
    )
    return mask_utils.decode(checked.coco()).astype(bool)


class ReferenceMasks:
    """``ann_id`` → the true mask of one RefCOCO-family dataset, from its folder's ``instances.json`` (read once)."""

    def __init__(self, data_root: str | os.PathLike, dataset: str) -> None:
        self.file = Path(data_root) / catalog.dataset(dataset).annotations_folder / INSTANCES
        if not self.file.is_file():
            raise EvaluationError(
                f"{dataset}: the masks to score against are in {INSTANCES}, which is missing",
                file=str(self.file),
                fix=f"unpack {dataset} again (snakemake unpack), or pass the data root the manifests were built from",
            )
        self._instances = read_instances(self.file)

    def rle(self, ann_id: int) -> dict[str, Any]:
        annotation = self._instances.annotations.get(int(ann_id))
        image = None if annotation is None else self._instances.images.get(annotation.image_id)
        if annotation is None or image is None:
            raise EvaluationError(
                f"annotation {ann_id} (or its image) is not in {INSTANCES}",
                file=str(self.file),
                key=str(ann_id),
                fix="rebuild the manifests from this data root (they and instances.json come from different releases)",
            )
        rle, _, _ = annotation_rle(annotation, image, file=self.file)
        if rle is None:  # polygons without area: an empty target
            return encode_mask(np.zeros((image.height, image.width), dtype=bool))
        return {"size": [image.height, image.width], "counts": rle.counts.decode("ascii")}


class ReferenceVideoMasks:
    """The true per-frame masks of one video split (MeViS: the split folder's mask dict; ReVOS: the
    dataset folder's, shared by its splits), read once."""

    def __init__(self, data_root: str | os.PathLike, dataset: str, split: str) -> None:
        folder = Path(data_root) / catalog.dataset(dataset).folder
        self.file = find_mask_dict(folder / split) or find_mask_dict(folder)
        if self.file is None:
            raise EvaluationError(
                f"{dataset} {split}: no mask dict to score J&F against",
                file=str(folder / split / "mask_dict.json"),
                fix=f"unpack {dataset} again (snakemake unpack), or set evaluation.masks: false",
            )
        self._masks = read_mask_dict(self.file)

    def masks(self, anno_ids: list[str], num_frames: int, height: int, width: int) -> list[dict[str, Any]]:
        """Per frame, the union of these objects' masks (an empty mask where none is present)."""
        union = np.zeros((num_frames, height, width), dtype=bool)
        for anno_id in anno_ids:
            per_frame = self._masks.get(str(anno_id))
            if per_frame is None:
                raise EvaluationError(
                    f"object {anno_id} has no entry in the mask dict",
                    file=str(self.file),
                    key=str(anno_id),
                    fix="rebuild the manifests from this data root (they and the mask dict come from different releases)",
                )
            if len(per_frame) != num_frames:
                raise EvaluationError(
                    f"object {anno_id} has {len(per_frame)} frame masks, its clip {num_frames} frames",
                    file=str(self.file),
                    key=str(anno_id),
                    fix="rebuild the manifests from this data root",
                )
            for t, rle in enumerate(per_frame):
                if rle is not None:
                    checked = check_rle(rle, file=self.file, key=f"{anno_id}[{t}]", size=(height, width))
                    union[t] |= mask_utils.decode(checked.coco()).astype(bool)
        return [encode_mask(frame) for frame in union]


__all__ = ["ReferenceMasks", "ReferenceVideoMasks", "decode_mask", "encode_mask"]
