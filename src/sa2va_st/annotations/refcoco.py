"""RefCOCO, RefCOCO+ and RefCOCOg: the REFER refs pickle plus the COCO `instances.json`.

The refs pickle (`refs(unc).p`, `refs(umd).p`, ...) is a list of refs, each naming one COCO
annotation (`ann_id`) of one image and carrying 1..n sentences. Boxes are derived from the
annotation's MASK (polygon or RLE, rasterised by pycocotools), not from COCO's `bbox` field,
which for polygons is the polygon's float extent and can disagree with the pixels by one.
Every sentence of a ref becomes one expression; its split is the ref's split.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import catalog
from ..errors import AnnotationError
from .common import as_int, load_json, load_pickle, require, type_name
from .masks import Box, PixelBox, Rle, check_rle, normalise, polygons_rle, rle_box

REFS_PATTERN = re.compile(r"refs\(\w+\)\.p")
REFS_FIX = "the refs pickle is not in the REFER format; download and unpack the dataset again"


@dataclass(frozen=True)
class Sentence:
    sent_id: int
    sent: str  # REFER's normalised text (lower case, no punctuation): what the benchmark evaluates
    raw: str  # as the annotator wrote it: upstream trains on it lower-cased, without its final period


@dataclass(frozen=True)
class Ref:
    """One entry of the refs pickle: one referred object and its sentences."""

    ref_id: int
    ann_id: int
    image_id: int
    category_id: int | None
    split: str
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True)
class CocoImage:
    image_id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class CocoAnnotation:
    ann_id: int
    image_id: int
    category_id: int | None
    segmentation: Any  # raw: decoded only for the annotations a ref uses


@dataclass(frozen=True)
class CocoInstances:
    images: dict[int, CocoImage]
    annotations: dict[int, CocoAnnotation]


@dataclass(frozen=True)
class MaskBox:
    """The box of one annotation's mask and how the mask was stored."""

    box: PixelBox | None  # None: the mask has no pixel
    kind: str  # polygon | rle
    degenerate_parts: int  # polygon parts with < 3 points (no area), skipped


@dataclass(frozen=True)
class ImageExpression:
    """One sentence of one ref, with its target box (one frame: the image)."""

    ref_id: int
    sent_id: int
    ann_id: int
    image_id: int
    category_id: int | None
    split: str
    sentence: str
    raw: str
    file_name: str
    width: int
    height: int
    box: Box | None  # normalised [x1, y1, x2, y2]; None when the mask is empty


@dataclass
class RefcocoData:
    """Everything read from one RefCOCO-family folder."""

    dataset: str
    refs_file: Path
    instances_file: Path
    expressions: list[ImageExpression]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # per split


def find_refs_file(folder: Path, dataset: str) -> Path:
    """The refs pickle of a folder: the one upstream uses for `dataset` (the catalog's ``refs_file``; the
    real folders also hold refs(google).p), else the only one there."""
    entry = catalog.BY_NAME.get(dataset)
    preferred = folder / (entry.refs_file if entry is not None and entry.refs_file else "refs(unc).p")
    if preferred.is_file():
        return preferred
    found = sorted(p for p in folder.iterdir() if REFS_PATTERN.fullmatch(p.name)) if folder.is_dir() else []
    if len(found) == 1:
        return found[0]
    raise AnnotationError(
        f"{dataset}: expected {preferred.name} in {folder.name}/, found {', '.join(p.name for p in found) or 'no refs(*).p'}",
        file=str(preferred),
        fix="unpack the dataset's archive again (its folder holds instances.json and refs(unc).p, refcocog refs(umd).p)",
    )


def read_refs(path: Path) -> list[Ref]:
    """The refs pickle, through the restricted unpickler, checked entry by entry."""
    data = load_pickle(path)
    if not isinstance(data, list):
        raise AnnotationError(
            f"the refs pickle holds a {type_name(data)}, expected a list of refs", file=str(path), fix=REFS_FIX
        )
    refs = []
    for index, entry in enumerate(data):
        where = f"[{index}]"
        sentences = require(entry, "sentences", list, file=path, where=where, fix=REFS_FIX)
        category = entry.get("category_id")
        refs.append(
            Ref(
                ref_id=as_int(
                    require(entry, "ref_id", (int,), file=path, where=where, fix=REFS_FIX),
                    file=path,
                    key=f"{where}.ref_id",
                ),
                ann_id=as_int(
                    require(entry, "ann_id", (int,), file=path, where=where, fix=REFS_FIX),
                    file=path,
                    key=f"{where}.ann_id",
                ),
                image_id=as_int(
                    require(entry, "image_id", (int,), file=path, where=where, fix=REFS_FIX),
                    file=path,
                    key=f"{where}.image_id",
                ),
                category_id=None if category is None else as_int(category, file=path, key=f"{where}.category_id"),
                split=require(entry, "split", str, file=path, where=where, fix=REFS_FIX),
                sentences=tuple(read_sentence(s, path, f"{where}.sentences[{k}]") for k, s in enumerate(sentences)),
            )
        )
    return refs


def read_sentence(entry: Any, path: Path, where: str) -> Sentence:
    sent_id = as_int(
        require(entry, "sent_id", (int,), file=path, where=where, fix=REFS_FIX), file=path, key=f"{where}.sent_id"
    )
    if "sent" not in entry and "raw" not in entry:
        raise AnnotationError("a sentence has neither 'sent' nor 'raw'", file=str(path), key=where, fix=REFS_FIX)
    sent = require(entry, "sent", str, file=path, where=where, fix=REFS_FIX) if "sent" in entry else None
    raw = require(entry, "raw", str, file=path, where=where, fix=REFS_FIX) if "raw" in entry else None
    sent = sent if sent is not None else raw
    raw = raw if raw is not None else sent
    if not sent.strip():
        raise AnnotationError("a sentence is empty", file=str(path), key=f"{where}.sent", fix=REFS_FIX)
    return Sentence(sent_id, sent, raw)


def read_instances(path: Path) -> CocoInstances:
    """COCO `instances.json`: images (id, file name, size) and annotations (id, image, segmentation)."""
    data = load_json(path)
    fix = "instances.json is not a COCO instances file; download and unpack the dataset again"
    images: dict[int, CocoImage] = {}
    for index, entry in enumerate(require(data, "images", list, file=path, where="", fix=fix)):
        where = f"images[{index}]"
        image = CocoImage(
            image_id=as_int(require(entry, "id", int, file=path, where=where, fix=fix), file=path, key=f"{where}.id"),
            file_name=require(entry, "file_name", str, file=path, where=where, fix=fix),
            width=require(entry, "width", int, file=path, where=where, fix=fix),
            height=require(entry, "height", int, file=path, where=where, fix=fix),
        )
        if image.width <= 0 or image.height <= 0:
            raise AnnotationError(
                f"image {image.image_id} has size {image.width}x{image.height}", file=str(path), key=where, fix=fix
            )
        images[image.image_id] = image
    annotations: dict[int, CocoAnnotation] = {}
    for index, entry in enumerate(require(data, "annotations", list, file=path, where="", fix=fix)):
        where = f"annotations[{index}]"
        category = entry.get("category_id") if isinstance(entry, dict) else None
        annotation = CocoAnnotation(
            ann_id=as_int(require(entry, "id", int, file=path, where=where, fix=fix), file=path, key=f"{where}.id"),
            image_id=as_int(
                require(entry, "image_id", int, file=path, where=where, fix=fix), file=path, key=f"{where}.image_id"
            ),
            category_id=None if category is None else as_int(category, file=path, key=f"{where}.category_id"),
            segmentation=require(entry, "segmentation", (list, dict), file=path, where=where, fix=fix),
        )
        annotations[annotation.ann_id] = annotation
    return CocoInstances(images, annotations)


def annotation_rle(annotation: CocoAnnotation, image: CocoImage, *, file: Path) -> tuple[Rle | None, str, int]:
    """An annotation's mask as a checked RLE (None: polygons without area), its source kind
    (``"rle"`` or ``"polygon"``) and the number of degenerate polygon parts skipped."""
    key = f"annotations[id={annotation.ann_id}].segmentation"
    segmentation = annotation.segmentation
    if isinstance(segmentation, dict):
        return check_rle(segmentation, file=file, key=key, size=(image.height, image.width)), "rle", 0
    rle, degenerate = polygons_rle(segmentation, image.height, image.width, file=file, key=key)
    return rle, "polygon", degenerate


def annotation_box(annotation: CocoAnnotation, image: CocoImage, *, file: Path) -> MaskBox:
    """The tight pixel box of an annotation's mask (polygons or RLE, decoded by pycocotools)."""
    rle, kind, degenerate = annotation_rle(annotation, image, file=file)
    return MaskBox(None if rle is None else rle_box(rle), kind, degenerate)


def ref_target(ref: Ref, instances: CocoInstances, refs_file: Path) -> tuple[CocoImage, CocoAnnotation]:
    """The image and annotation a ref points at; AnnotationError when either is not in instances.json."""
    where = f"ref_id={ref.ref_id}"
    fix = f"{refs_file.name} and instances.json come from different releases; unpack them from the same archive"
    image = instances.images.get(ref.image_id)
    if image is None:
        raise AnnotationError(
            f"ref {ref.ref_id} refers to image {ref.image_id}, which instances.json does not list",
            file=str(refs_file),
            key=f"{where}.image_id",
            fix=fix,
        )
    annotation = instances.annotations.get(ref.ann_id)
    if annotation is None or annotation.image_id != ref.image_id:
        problem = (
            "which instances.json does not list"
            if annotation is None
            else f"which belongs to image {annotation.image_id}"
        )
        raise AnnotationError(
            f"ref {ref.ref_id} refers to annotation {ref.ann_id}, {problem}",
            file=str(refs_file),
            key=f"{where}.ann_id",
            fix=fix,
        )
    return image, annotation


SPLIT_COUNTS = (
    "records",
    "refs",
    "images",
    "empty_boxes",
    "empty_masks",
    "polygon_masks",
    "rle_masks",
    "degenerate_polygon_parts",
    "refs_without_sentences",
)


def read_refcoco(folder: Path, dataset: str) -> RefcocoData:
    """Every expression of one RefCOCO-family folder with its normalised box, and counts per split.

    Fatal (AnnotationError): a ref naming an image or annotation absent from instances.json, an
    annotation of another image, a duplicate (ref_id, sent_id), an undecodable mask. Counted: empty
    masks (box None), degenerate polygon parts, polygon vs RLE masks, refs without sentences.
    Expressions come sorted by (ref_id, sent_id); each annotation's mask is decoded once.
    """
    refs_file = find_refs_file(folder, dataset)
    instances_file = folder / "instances.json"
    refs = read_refs(refs_file)
    instances = read_instances(instances_file)
    masks: dict[int, MaskBox] = {}
    expressions: list[ImageExpression] = []
    counts: dict[str, Counter] = {}
    images: dict[str, set[int]] = {}
    seen: set[tuple[int, int]] = set()
    for ref in sorted(refs, key=lambda r: r.ref_id):
        image, annotation = ref_target(ref, instances, refs_file)
        if ref.ann_id not in masks:
            masks[ref.ann_id] = annotation_box(annotation, image, file=instances_file)
        mask = masks[ref.ann_id]
        box = normalise(mask.box, image.width, image.height)
        split = counts.setdefault(ref.split, Counter({name: 0 for name in SPLIT_COUNTS}))
        images.setdefault(ref.split, set()).add(ref.image_id)
        split.update(
            {
                "refs": 1,
                f"{mask.kind}_masks": 1,
                "degenerate_polygon_parts": mask.degenerate_parts,
                "empty_masks": box is None,
                "refs_without_sentences": not ref.sentences,
            }
        )
        for sentence in sorted(ref.sentences, key=lambda s: s.sent_id):
            if (ref.ref_id, sentence.sent_id) in seen:
                raise AnnotationError(
                    f"ref {ref.ref_id} lists sentence {sentence.sent_id} twice",
                    file=str(refs_file),
                    key=f"ref_id={ref.ref_id}.sentences",
                    fix=REFS_FIX,
                )
            seen.add((ref.ref_id, sentence.sent_id))
            split.update({"records": 1, "empty_boxes": box is None})
            expressions.append(
                ImageExpression(
                    ref_id=ref.ref_id,
                    sent_id=sentence.sent_id,
                    ann_id=ref.ann_id,
                    image_id=ref.image_id,
                    category_id=ref.category_id if ref.category_id is not None else annotation.category_id,
                    split=ref.split,
                    sentence=sentence.sent,
                    raw=sentence.raw,
                    file_name=image.file_name,
                    width=image.width,
                    height=image.height,
                    box=box,
                )
            )
    for split, ids in images.items():
        counts[split]["images"] = len(ids)
    result = {split: {name: int(counts[split][name]) for name in sorted(SPLIT_COUNTS)} for split in sorted(counts)}
    return RefcocoData(dataset, refs_file, instances_file, expressions, result)
