"""MeViS, ReVOS and Ref-YouTube-VOS: `meta_expressions` + a mask dict of per-frame COCO RLEs.

meta_expressions: {"videos": {vid: {"frames": [name, ...], "expressions": {exp_id: {"exp": str,
"obj_id": [...], "anno_id": [...]}}}}}; ReVOS adds `type_id` (0 referring, 1 reasoning, 2 no
target) and `height`/`width` per video. The mask dict maps str(anno_id) to one entry per frame:
an RLE, or null where the object is not visible.

Ref-YouTube-VOS has no `anno_id`: its mask dict (`mask_dict.pkl`) is keyed by a running counter
over the videos, then each video's expressions. Two orders are known (RVOS_KEY_ORDERS): Sa2VA's
own loader, which the released pickle serves, walks the videos in file order and the expression
ids sorted as strings ("upstream", the default); the synthetic world documents sorted video ids
and numerically sorted expression ids (world.json `datasets.rvos.mask_dict_keys`). They agree
whenever the file lists videos sorted and no video has 10 or more expressions (true of the
synthetic world). The keys must be exactly 0..n-1 for n expressions; anything else means the
pickle does not belong to this split (fatal).

An expression refers to one or more objects (its ``anno_id`` list; Ref-YouTube-VOS: always one).
Its boxes keep them apart, as upstream's answers do (one box per object, ``decode_bbox``): per
frame, one entry per object in ``anno_id`` order, the tight box of that object's mask normalised by
the video's size, or None where that object is not visible there.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import catalog
from ..errors import AnnotationError
from .common import as_int, id_text, load_json, load_mapping_file, require, type_name
from .masks import Box, PixelBox, check_rle, frame_boxes, normalise_all, rle_box

META_FIX = "the expressions file is not in the MeViS/ReVOS/Ref-YouTube-VOS format; download and unpack it again"
MASK_FIX = "the mask dict does not match its expressions file; unpack both from the same archive"
TYPE_IDS = (0, 1, 2)  # ReVOS: referring, reasoning, no target
RVOS_KEY_ORDERS = {
    "upstream": "videos in file order, then expression ids sorted as strings (Sa2VA's Ref-YouTube-VOS loader)",
    "sorted_numeric": "videos sorted by id, then expression ids sorted numerically (the synthetic world's documented order)",
}


@dataclass(frozen=True)
class VideoExpression:
    exp_id: str
    sentence: str
    obj_ids: tuple[str, ...]
    anno_ids: tuple[str, ...]  # keys into the mask dict (Ref-YouTube-VOS: the running counter)
    type_id: int | None  # ReVOS only


@dataclass(frozen=True)
class VideoMeta:
    video: str
    frames: tuple[str, ...]
    height: int | None  # given by ReVOS; otherwise known from the masks
    width: int | None
    expressions: tuple[VideoExpression, ...]
    position: int = 0  # index of the video in the file (Ref-YouTube-VOS mask keys follow file order)


@dataclass(frozen=True)
class VideoGrounding:
    """One expression of one video with its per-frame normalised boxes."""

    video: str
    exp_id: str
    sentence: str
    obj_ids: tuple[str, ...]
    anno_ids: tuple[str, ...]
    type_id: int | None
    frames: tuple[str, ...]
    width: int | None
    height: int | None
    # boxes[t][k]: object k's box in frame t, None where it is not visible; None for the whole
    # field when the split has no masks. (frames, objects), objects in anno_id order.
    boxes: tuple[tuple[Box | None, ...], ...] | None

    @property
    def visible_frames(self) -> int:
        """Frames in which at least one referred object is visible."""
        return 0 if self.boxes is None else sum(any(b is not None for b in frame) for frame in self.boxes)


@dataclass
class VideoReferSplit:
    dataset: str
    split: str
    meta_file: Path
    mask_file: Path | None
    records: list[VideoGrounding]
    counts: dict[str, int] = field(default_factory=dict)
    used_mask_keys: set[str] = field(default_factory=set)
    mask_keys: set[str] = field(default_factory=set)  # every key of the mask dict (shared by ReVOS splits)


def read_meta_expressions(path: Path, *, anno_ids: str = "required", labelled: bool = True) -> list[VideoMeta]:
    """A meta_expressions file; `anno_ids` is "required" (MeViS, ReVOS) or "absent" (Ref-YouTube-VOS).

    ``labelled`` false (a split released without masks: MeViS valid, Ref-YouTube-VOS valid, whose
    labels an evaluation server holds): an expression may have only its ``exp``; ``obj_id`` and
    ``anno_id`` are read where present and empty otherwise.

    Videos come back sorted by id, expressions by numeric id (string order for non-numeric ids).
    """
    data = load_json(path)
    videos = require(data, "videos", dict, file=path, where="", fix=META_FIX)
    result = []
    position = {vid: k for k, vid in enumerate(videos)}
    for vid in sorted(videos):
        entry = videos[vid]
        where = f"videos.{vid}"
        frames = require(entry, "frames", list, file=path, where=where, fix=META_FIX)
        if not frames or not all(isinstance(f, str) and f for f in frames):
            raise AnnotationError(
                "'frames' must be a non-empty list of frame names", file=str(path), key=f"{where}.frames", fix=META_FIX
            )
        if len(set(frames)) != len(frames):
            raise AnnotationError("'frames' lists a frame twice", file=str(path), key=f"{where}.frames", fix=META_FIX)
        height = width = None
        if "height" in entry or "width" in entry:
            height = as_int(
                require(entry, "height", (int, float), file=path, where=where, fix=META_FIX),
                file=path,
                key=f"{where}.height",
            )
            width = as_int(
                require(entry, "width", (int, float), file=path, where=where, fix=META_FIX),
                file=path,
                key=f"{where}.width",
            )
        expressions = require(entry, "expressions", dict, file=path, where=where, fix=META_FIX)
        parsed = [
            read_expression(expressions[e], e, path, f"{where}.expressions.{e}", anno_ids, labelled)
            for e in sorted(expressions, key=exp_order)
        ]
        result.append(VideoMeta(vid, tuple(frames), height, width, tuple(parsed), position[vid]))
    return result


def exp_order(exp_id: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, then any others in string order."""
    return (0, int(exp_id)) if re.fullmatch(r"\d+", exp_id) else (1, exp_id)


def read_expression(
    entry: Any, exp_id: str, path: Path, where: str, anno_ids: str, labelled: bool = True
) -> VideoExpression:
    sentence = require(entry, "exp", str, file=path, where=where, fix=META_FIX)
    obj_ids: tuple[str, ...] = ()
    if labelled or "obj_id" in entry:
        obj = require(entry, "obj_id", (list, int, str), file=path, where=where, fix=META_FIX)
        obj_ids = tuple(id_text(o, file=path, key=f"{where}.obj_id") for o in (obj if isinstance(obj, list) else [obj]))
    annos: tuple[str, ...] = ()
    if anno_ids == "required" and (labelled or "anno_id" in entry):
        raw = require(entry, "anno_id", (list, int, str), file=path, where=where, fix=META_FIX)
        annos = tuple(id_text(a, file=path, key=f"{where}.anno_id") for a in (raw if isinstance(raw, list) else [raw]))
        if not annos:
            raise AnnotationError("'anno_id' is empty", file=str(path), key=f"{where}.anno_id", fix=META_FIX)
    type_id = None
    if "type_id" in entry:
        type_id = as_int(entry["type_id"], file=path, key=f"{where}.type_id")
        if type_id not in TYPE_IDS:
            raise AnnotationError(
                f"type_id {type_id} is not one of {TYPE_IDS}", file=str(path), key=f"{where}.type_id", fix=META_FIX
            )
    return VideoExpression(exp_id, sentence, obj_ids, annos, type_id)


def read_mask_dict(path: Path) -> dict[str, list]:
    """A mask dict (JSON, or a pickle through the restricted unpickler), keys as strings."""
    data = load_mapping_file(path)
    if not isinstance(data, Mapping):
        raise AnnotationError(
            f"the mask dict holds a {type_name(data)}, expected an object", file=str(path), fix=MASK_FIX
        )
    masks: dict[str, list] = {}
    for key, value in data.items():
        name = id_text(key, file=path, key=repr(key))
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise AnnotationError(
                f"entry {name} is a {type_name(value)}, expected a list of per-frame masks",
                file=str(path),
                key=name,
                fix=MASK_FIX,
            )
        if name in masks:
            raise AnnotationError(f"key {name} appears twice (as int and str)", file=str(path), key=name, fix=MASK_FIX)
        masks[name] = value
    return masks


class MaskBoxes:
    """Per-frame pixel boxes of mask dict entries, each decoded once however many expressions use it
    (and entries with the same masks, as Ref-YouTube-VOS has one per expression, decoded once)."""

    def __init__(self, masks: dict[str, list], path: Path):
        self.masks, self.path = masks, path
        self.cache: dict[str, tuple[tuple[PixelBox | None, ...], tuple[int, int] | None]] = {}
        self.memo: dict = {}  # frame_boxes' answers by content

    def boxes(
        self, key: str, frame_count: int, *, where: str
    ) -> tuple[tuple[PixelBox | None, ...], tuple[int, int] | None]:
        """(per-frame boxes, (height, width) of the masks or None when every frame is null)."""
        if key not in self.cache:
            if key not in self.masks:
                raise AnnotationError(
                    f"mask entry {key} is missing from the mask dict (used by {where})",
                    file=str(self.path),
                    key=key,
                    fix=MASK_FIX,
                )
            self.cache[key] = self.decode(key, self.masks[key])
        boxes, size = self.cache[key]
        if len(boxes) != frame_count:
            raise AnnotationError(
                f"mask entry {key} has {len(boxes)} frames but {where} has {frame_count}",
                file=str(self.path),
                key=key,
                fix=MASK_FIX,
            )
        return boxes, size

    def decode(self, key: str, entries: Any) -> tuple[tuple[PixelBox | None, ...], tuple[int, int] | None]:
        """Every frame at once (masks.frame_boxes); frame by frame when that declines (an unusual form, or a
        broken mask, which check_rle then names)."""
        if isinstance(entries, list):
            fast = frame_boxes(entries, self.memo)
            if fast is not None:
                return tuple(fast[0]), fast[1]
        boxes, size = [], None
        for t, entry in enumerate(entries):
            if entry is None:
                boxes.append(None)
                continue
            rle = check_rle(entry, file=self.path, key=f"{key}[{t}]", size=size)
            size = (rle.height, rle.width)
            boxes.append(rle_box(rle))
        return tuple(boxes), size


def video_size(
    meta: VideoMeta, sizes: list[tuple[int, int] | None], path: Path, mask_path: Path | None
) -> tuple[int | None, int | None]:
    """(width, height) of a video from its meta entry and its masks, which must agree."""
    known = {s for s in sizes if s is not None}
    if meta.height is not None:
        known.add((meta.height, meta.width))
    if len(known) > 1:
        raise AnnotationError(
            f"video {meta.video} has masks (or a meta size) of different sizes: {sorted(known)} (h, w)",
            file=str(mask_path or path),
            key=f"videos.{meta.video}",
            fix=MASK_FIX,
        )
    if not known:
        return None, None
    height, width = known.pop()
    return width, height


def ground_video(meta: VideoMeta, masks: MaskBoxes | None, meta_path: Path) -> list[VideoGrounding]:
    """Every expression of one video with its per-frame boxes (None boxes list when there are no masks)."""
    per_expression = []
    sizes: list[tuple[int, int] | None] = []
    for expression in meta.expressions:
        where = f"{meta_path.name}: videos.{meta.video}.expressions.{expression.exp_id}"
        if masks is None:
            per_expression.append(None)
            continue
        object_boxes = []  # per object: its per-frame pixel boxes
        for key in expression.anno_ids:
            boxes, size = masks.boxes(key, len(meta.frames), where=where)
            object_boxes.append(boxes)
            sizes.append(size)
        per_expression.append(object_boxes)
    width, height = video_size(meta, sizes, meta_path, masks.path if masks else None)
    records = []
    for expression, object_boxes in zip(meta.expressions, per_expression):
        boxes = None
        if object_boxes is not None:
            if width is None or height is None:  # no mask and no meta size: every box is None
                per_object = [tuple(None for _ in pixel_boxes) for pixel_boxes in object_boxes]
            else:
                per_object = [normalise_all(pixel_boxes, width, height) for pixel_boxes in object_boxes]
            boxes = tuple(zip(*per_object)) if per_object else tuple(() for _ in meta.frames)  # (frames, objects)
        records.append(
            VideoGrounding(
                video=meta.video,
                exp_id=expression.exp_id,
                sentence=expression.sentence,
                obj_ids=expression.obj_ids,
                anno_ids=expression.anno_ids,
                type_id=expression.type_id,
                frames=meta.frames,
                width=width,
                height=height,
                boxes=boxes,
            )
        )
    return records


def ground_split(
    dataset: str,
    split: str,
    metas: list[VideoMeta],
    meta_path: Path,
    mask_path: Path | None,
    masks: dict[str, list] | None,
) -> VideoReferSplit:
    """Boxes for every expression of a split, and its counts."""
    boxes = MaskBoxes(masks, mask_path) if masks is not None and mask_path is not None else None
    records: list[VideoGrounding] = []
    for meta in metas:
        records.extend(ground_video(meta, boxes, meta_path))
    counts = Counter({"records": len(records), "videos": len(metas), "frames": sum(len(m.frames) for m in metas)})
    for record in records:
        if record.type_id is not None:
            counts[f"type_id_{record.type_id}"] += 1
        if record.boxes is None:
            continue
        counts["box_frames"] += len(record.boxes)
        empty = len(record.boxes) - record.visible_frames
        counts["empty_boxes"] += empty
        counts["empty_expressions"] += empty == len(record.boxes)
        counts["multi_object_expressions"] += len(record.anno_ids) > 1
    used = {key for record in records for key in record.anno_ids} if masks is not None else set()
    base = {
        "records": 0, "videos": 0, "frames": 0, "box_frames": 0, "empty_boxes": 0, "empty_expressions": 0,
        "multi_object_expressions": 0,
    }  # fmt: skip
    if any(r.type_id is not None for r in records):
        base.update({f"type_id_{t}": 0 for t in TYPE_IDS})
    base.update(counts)
    return VideoReferSplit(
        dataset, split, meta_path, mask_path, records, dict(sorted(base.items())), used, set(masks or ())
    )


def find_mask_dict(folder: Path) -> Path | None:
    """mask_dict.json, else a pickled mask_dict.pkl / .p, else None (an unannotated split)."""
    return next(
        (folder / n for n in ("mask_dict.json", "mask_dict.pkl", "mask_dict.p") if (folder / n).is_file()), None
    )


def reader_dataset(reader: str) -> str:
    """The name of the dataset a single-dataset reader serves (the default `dataset` of the readers below)."""
    return catalog.of_reader(reader)[0].name


def read_mevis_split(split_dir: Path, dataset: str | None = None) -> VideoReferSplit:
    """One MeViS split folder: meta_expressions.json and, for annotated splits, its mask dict."""
    dataset = dataset or reader_dataset(catalog.META_EXPRESSIONS)
    meta_path = split_dir / "meta_expressions.json"
    mask_path = find_mask_dict(split_dir)
    metas = read_meta_expressions(meta_path, labelled=mask_path is not None)
    masks = read_mask_dict(mask_path) if mask_path is not None else None
    return ground_split(dataset, split_dir.name, metas, meta_path, mask_path, masks)


def revos_meta_file(root: Path, split: str) -> Path:
    """`meta_expressions_{split}_.json` (the released name, trailing underscore) or without the underscore."""
    for name in (f"meta_expressions_{split}_.json", f"meta_expressions_{split}.json"):
        if (root / name).is_file():
            return root / name
    return root / f"meta_expressions_{split}_.json"


def revos_splits(root: Path) -> list[str]:
    found = {
        m.group(1)
        for p in root.glob("meta_expressions_*.json")
        if (m := re.fullmatch(r"meta_expressions_(\w+?)_?\.json", p.name))
    }
    return sorted(found)


def read_revos_split(
    root: Path, split: str, masks: dict[str, list] | None = None, dataset: str | None = None
) -> VideoReferSplit:
    """One ReVOS split: its meta file and the mask_dict.json all splits share (pass it to read it once)."""
    meta_path = revos_meta_file(root, split)
    mask_path = find_mask_dict(root)
    metas = read_meta_expressions(meta_path)
    if masks is None and mask_path is not None:
        masks = read_mask_dict(mask_path)
    dataset = dataset or reader_dataset(catalog.META_EXPRESSIONS_SHARED)
    return ground_split(dataset, split, metas, meta_path, mask_path if masks is not None else None, masks)


def rvos_meta_file(root: Path, split: str) -> Path:
    return root / "meta_expressions" / split / "meta_expressions.json"


def rvos_splits(root: Path) -> list[str]:
    folder = root / "meta_expressions"
    return (
        sorted(p.name for p in folder.iterdir() if (p / "meta_expressions.json").is_file()) if folder.is_dir() else []
    )


def assign_rvos_keys(metas: list[VideoMeta], order: str = "upstream") -> list[VideoMeta]:
    """Give each expression its mask dict key, a running counter in the given order (RVOS_KEY_ORDERS).

    The returned metas keep their own order (sorted by video id); only the keys follow `order`.
    """
    if order not in RVOS_KEY_ORDERS:
        raise ValueError(f"unknown Ref-YouTube-VOS key order {order!r}; known: {', '.join(RVOS_KEY_ORDERS)}")
    upstream = order == "upstream"
    walk = sorted(metas, key=lambda m: m.position) if upstream else sorted(metas, key=lambda m: m.video)
    keys: dict[tuple[str, str], str] = {}
    for meta in walk:
        for expression in sorted(meta.expressions, key=lambda e: e.exp_id if upstream else exp_order(e.exp_id)):
            keys[(meta.video, expression.exp_id)] = str(len(keys))
    return [
        VideoMeta(
            meta.video,
            meta.frames,
            meta.height,
            meta.width,
            tuple(
                VideoExpression(e.exp_id, e.sentence, e.obj_ids, (keys[(meta.video, e.exp_id)],), None)
                for e in meta.expressions
            ),
            meta.position,
        )
        for meta in metas
    ]


def read_rvos_split(
    root: Path, split: str, mask_path: Path | None = None, key_order: str = "upstream", dataset: str | None = None
) -> VideoReferSplit:
    """One Ref-YouTube-VOS split; `mask_path` is the split's mask_dict.pkl (the released one is train's).

    `key_order` says how the pickle's running-counter keys map to expressions (RVOS_KEY_ORDERS).
    """
    dataset = dataset or reader_dataset(catalog.META_EXPRESSIONS_COUNTER)
    meta_path = rvos_meta_file(root, split)
    metas = read_meta_expressions(meta_path, anno_ids="absent", labelled=mask_path is not None)
    if mask_path is None:
        return ground_split(dataset, split, metas, meta_path, None, None)
    metas = assign_rvos_keys(metas, key_order)
    masks = read_mask_dict(mask_path)
    expected = sum(len(m.expressions) for m in metas)
    keys = set(masks)
    if keys != {str(k) for k in range(expected)}:
        extra = sorted(keys - {str(k) for k in range(expected)}, key=exp_order)[:5]
        raise AnnotationError(
            f"{mask_path.name} has {len(keys)} entries keyed {', '.join(extra) or '...'}; {meta_path.name} of split {split} has "
            f"{expected} expressions, which need keys 0..{expected - 1} (a running counter: {RVOS_KEY_ORDERS[key_order]})",
            file=str(mask_path),
            key=extra[0] if extra else None,
            fix=f"use the mask_dict.pkl released with this split's expressions ({meta_path})",
        )
    return ground_split(dataset, split, metas, meta_path, mask_path, masks)
