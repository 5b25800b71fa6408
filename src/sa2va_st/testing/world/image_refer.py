"""RefCOCO, RefCOCO+ and RefCOCOg in their upstream formats, over one pool of COCO-style images.

As in the real data, the three datasets refer to the same COCO images and
annotations (same ids): RefCOCO and RefCOCO+ share their images, RefCOCOg uses a
partly overlapping subset, and only `ref_seg_coco.zip` carries image files. The overlap
is between training images only, so that no evaluation image is ever trained on.

Each image shows two shapes (sometimes three) of a fifth to a third of its short side:
big enough that a 64 px tile of the tiny preset still shows them, and few enough that a
tiny model learns to tell the referred one from the others (docs/training.md, "The demo").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .archives import json_bytes, pickle_bytes
from .scale import WorldScale
from .shapes import (
    BACKGROUNDS,
    PALETTE,
    SHAPE_KINDS,
    PlacedShape,
    encode_rle,
    half_extent,
    horizontal_word,
    jpeg_bytes,
    noisy_background,
    paint,
    place_shape,
    rasterize,
    rle_bbox,
    vertical_word,
)

# Per unit of WorldScale: images of RefCOCO/RefCOCO+ (UNC splits) and RefCOCOg (UMD splits); `shared_train`
# images are in both datasets' train splits, like the real subsets' overlap.
UNC_SPLITS = {"train": 14, "val": 4, "testA": 3, "testB": 3}
UMD_SPLITS = {"train": 16, "val": 4, "test": 4}
SHARED_TRAIN = 8
SHAPES_PER_IMAGE = (2, 3)  # three with probability THIRD_SHAPE_CHANCE
THIRD_SHAPE_CHANCE = 0.25
RADIUS_FRACTION = (0.2, 0.33)  # of the image's short side
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((160, 120), (128, 96), (96, 64), (144, 112), (112, 144), (128, 128))
CATEGORIES: list[dict] = [{"supercategory": "shape", "id": k + 1, "name": kind} for k, kind in enumerate(SHAPE_KINDS)]
CATEGORY_ID: dict[str, int] = {c["name"]: c["id"] for c in CATEGORIES}
# Every 3rd annotation is stored as a compressed RLE crowd region, the rest as polygons.
RLE_EVERY = 3
MARGIN = 3  # pixels kept free between shapes and around the border

COCO_ARCHIVE = "ref_seg_coco.zip"
COCO_PLUS_ARCHIVE = "ref_seg_coco_+.zip"
COCO_G_ARCHIVE = "ref_seg_coco_g.zip"
IMAGES_DIR = "ref_seg/coco2014/train2014"


@dataclass(frozen=True)
class CocoObject:
    """One annotated shape of one image."""

    ann_id: int
    shape: PlacedShape
    mask: np.ndarray
    as_rle: bool  # stored as an RLE crowd region (iscrowd 1) rather than a polygon
    referred: bool  # real COCO images hold annotations no expression refers to
    index_in_image: int


@dataclass(frozen=True)
class CocoImage:
    image_id: int
    file_name: str
    width: int
    height: int
    objects: tuple[CocoObject, ...]
    jpeg: bytes


@dataclass(frozen=True)
class ImageReferWorld:
    """What the hub archives hold, the counts to check them by, and per-image ground truth."""

    archives: dict[str, dict[str, bytes]]
    summary: dict[str, dict]
    ground_truth: list[dict]


def coco_file_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def boxes_overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two (x0, y0, x1, y1) boxes, each grown by MARGIN, intersect."""
    return not (a[2] + MARGIN <= b[0] or b[2] + MARGIN <= a[0] or a[3] + MARGIN <= b[1] or b[3] + MARGIN <= a[1])


def place_separate_shapes(rng: np.random.Generator, width: int, height: int, count: int) -> list[PlacedShape]:
    """Up to `count` shapes with distinct (colour, kind) whose boxes do not touch (so masks never overlap)."""
    shapes: list[PlacedShape] = []
    boxes: list[tuple[float, float, float, float]] = []
    used: set[tuple[str, str]] = set()
    colours = list(PALETTE)
    low, high = (fraction * min(width, height) for fraction in RADIUS_FRACTION)
    for _ in range(200):  # rejection sampling; a fixed bound keeps it deterministic and finite
        if len(shapes) == count:
            break
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        colour = colours[int(rng.integers(len(colours)))]
        radius = float(rng.uniform(low, high))
        hx, hy = half_extent(kind, radius)
        if (colour, kind) in used or 2 * hx + 2 * MARGIN >= width or 2 * hy + 2 * MARGIN >= height:
            continue
        cx = float(rng.uniform(hx + MARGIN, width - hx - MARGIN))
        cy = float(rng.uniform(hy + MARGIN, height - hy - MARGIN))
        box = (cx - hx, cy - hy, cx + hx, cy + hy)
        if any(boxes_overlap(box, other) for other in boxes):
            continue
        shapes.append(place_shape(kind, colour, radius, cx, cy))
        boxes.append(box)
        used.add((colour, kind))
    return shapes


def unique_ids(rng: np.random.Generator, count: int, low: int, high: int) -> list[int]:
    """Distinct random ids in [low, high), in drawing order (COCO ids are sparse)."""
    return [low + int(v) for v in rng.choice(high - low, size=count, replace=False)]


def make_coco_images(rng: np.random.Generator, count: int) -> list[CocoImage]:
    """The image pool: each image 2–3 non-overlapping shapes on a noisy background."""
    image_ids = sorted(unique_ids(rng, count, 9, 581_930))
    ann_ids = iter(sorted(unique_ids(rng, count * 4, 1_000, 2_200_000)))
    images = []
    annotation_counter = 0
    for image_id in image_ids:
        width, height = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
        count = SHAPES_PER_IMAGE[1] if rng.random() < THIRD_SHAPE_CHANCE else SHAPES_PER_IMAGE[0]
        shapes = place_separate_shapes(rng, width, height, count)
        pixels = noisy_background(rng, height, width, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], 10)
        referred_flags = [bool(rng.random() < 0.85) for _ in shapes]
        referred_flags[0] = True  # every image is referred to at least once
        objects = []
        for index, (shape, referred) in enumerate(zip(shapes, referred_flags, strict=True)):
            mask = rasterize(shape.polygon, height, width)
            paint(pixels, mask, shape.rgb)
            as_rle = annotation_counter % RLE_EVERY == RLE_EVERY - 1
            annotation_counter += 1
            objects.append(CocoObject(next(ann_ids), shape, mask, as_rle, referred, index))
        images.append(CocoImage(image_id, coco_file_name(image_id), width, height, tuple(objects), jpeg_bytes(pixels)))
    return images


def coco_annotation(obj: CocoObject, image_id: int) -> dict:
    """A COCO annotation; polygon (iscrowd 0) or compressed RLE with str counts (iscrowd 1)."""
    rle = encode_rle(obj.mask)
    segmentation: list | dict = rle if obj.as_rle else [list(obj.shape.polygon)]
    return {
        "segmentation": segmentation,
        "area": float(obj.mask.sum()),
        "iscrowd": 1 if obj.as_rle else 0,
        "image_id": image_id,
        "bbox": rle_bbox(rle),
        "category_id": CATEGORY_ID[obj.shape.kind],
        "id": obj.ann_id,
    }


def instances_json(images: list[CocoImage]) -> dict:
    """COCO instances file restricted to these images."""
    return {
        "info": {"description": "sa2va-st synthetic COCO subset", "version": "1.0", "year": 2024},
        "images": [
            {"license": 1, "file_name": im.file_name, "height": im.height, "width": im.width, "id": im.image_id}
            for im in images
        ],
        "licenses": [{"id": 1, "name": "CC-BY-4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}],
        "annotations": [coco_annotation(obj, im.image_id) for im in images for obj in im.objects],
        "categories": CATEGORIES,
    }


def location_phrase(shape: PlacedShape, width: int, height: int) -> str:
    horizontal = horizontal_word(shape.cx, width)
    return "in the middle" if horizontal == "middle" else f"on the {horizontal}"


def size_word(obj: CocoObject, image: CocoImage) -> str:
    """'big' for the largest object of the image, 'small' for the smallest, else 'medium-sized'."""
    areas = [int(o.mask.sum()) for o in image.objects]
    area = int(obj.mask.sum())
    return "big" if area == max(areas) else ("small" if area == min(areas) else "medium-sized")


def refcoco_phrases(obj: CocoObject, image: CocoImage) -> list[str]:
    """UNC RefCOCO: short, location words allowed."""
    s = obj.shape
    where = location_phrase(s, image.width, image.height)
    return [
        f"The {s.colour} {s.kind} {where}.",
        f"{s.colour} {s.kind}",
        f"{horizontal_word(s.cx, image.width)} {s.colour} {s.kind}",
    ]


def refcoco_plus_phrases(obj: CocoObject, image: CocoImage) -> list[str]:
    """RefCOCO+: appearance only, no location words."""
    s = obj.shape
    return [f"{s.colour} {s.kind}", f"The {s.kind} that is {s.colour}.", f"{s.colour} one shaped like a {s.kind}"]


def refcocog_phrases(obj: CocoObject, image: CocoImage) -> list[str]:
    """RefCOCOg (UMD): longer, complete descriptions."""
    s = obj.shape
    return [
        f"A {size_word(obj, image)} {s.colour} {s.kind} in the {vertical_word(s.cy, image.height)} "
        f"{horizontal_word(s.cx, image.width)} part of the picture.",
        f"The {s.colour} {s.kind} that is {size_word(obj, image)} compared to the other shapes.",
    ]


def sentence_record(sent_id: int, raw: str) -> dict:
    """{tokens, raw, sent_id, sent} as REFER writes them: `sent` lower-cased without punctuation."""
    sent = re.sub(r"[^a-z0-9\- ]", "", raw.lower()).strip()
    return {"tokens": sent.split(), "raw": raw, "sent_id": sent_id, "sent": sent}


def assign_splits(images: list[CocoImage], split_sizes: dict[str, int]) -> dict[int, str]:
    """image_id -> split, in order; all refs of an image share a split, as in the real data."""
    names = [name for name, size in split_sizes.items() for _ in range(size)]
    if len(names) != len(images):
        raise ValueError(f"split sizes {split_sizes} do not add up to {len(images)} images")
    return {im.image_id: name for im, name in zip(images, names, strict=True)}


def scaled_splits(splits: dict[str, int], scale: WorldScale) -> dict[str, int]:
    return {name: size * scale.split_factor(name) for name, size in splits.items()}


def split_pool(pool: list[CocoImage], scale: WorldScale) -> tuple[list[CocoImage], list[CocoImage]]:
    """(RefCOCO images, RefCOCOg images), each in its splits' order, sharing `SHARED_TRAIN` train images per unit.

    Pool order: RefCOCO-only train, shared train, RefCOCO held-out, RefCOCOg-only train, RefCOCOg held-out.
    """
    unc, umd = scaled_splits(UNC_SPLITS, scale), scaled_splits(UMD_SPLITS, scale)
    shared = SHARED_TRAIN * scale.train
    unc_train, unc_rest = unc["train"], sum(unc.values()) - unc["train"]
    umd_only, umd_rest = umd["train"] - shared, sum(umd.values()) - umd["train"]
    cut = np.cumsum([unc_train - shared, shared, unc_rest, umd_only, umd_rest])
    if cut[-1] != len(pool):
        raise ValueError(f"the pool holds {len(pool)} images, the splits need {cut[-1]}")
    unc_only_train, shared_train, unc_held_out, umd_only_train, umd_held_out = np.split(
        np.array(pool, object), cut[:-1]
    )
    return (
        [*unc_only_train, *shared_train, *unc_held_out],
        [*shared_train, *umd_only_train, *umd_held_out],
    )


def pool_size(scale: WorldScale) -> int:
    unc, umd = scaled_splits(UNC_SPLITS, scale), scaled_splits(UMD_SPLITS, scale)
    return sum(unc.values()) + sum(umd.values()) - SHARED_TRAIN * scale.train


def build_refs(
    rng: np.random.Generator,
    images: list[CocoImage],
    split_of_image: dict[int, str],
    phrases: Callable[[CocoObject, CocoImage], list[str]],
) -> list[dict]:
    """The refs list: one ref per referred annotation, 1–3 sentences each; only builtins inside."""
    refs = []
    sent_id = 0
    for image in images:
        for obj in image.objects:
            if not obj.referred:
                continue
            options = phrases(obj, image)
            chosen = sorted(rng.choice(len(options), size=int(rng.integers(1, len(options) + 1)), replace=False))
            sentences = []
            for k in chosen:
                sentences.append(sentence_record(sent_id, options[int(k)]))
                sent_id += 1
            refs.append(
                {
                    "sent_ids": [s["sent_id"] for s in sentences],
                    # The real refs carry this suffixed name; images are found through instances.json.
                    "file_name": f"{image.file_name[:-4]}_{obj.index_in_image}.jpg",
                    "ann_id": obj.ann_id,
                    "ref_id": len(refs),
                    "image_id": image.image_id,
                    "split": split_of_image[image.image_id],
                    "sentences": sentences,
                    "category_id": CATEGORY_ID[obj.shape.kind],
                }
            )
    return refs


def refs_summary(refs: list[dict]) -> dict[str, dict[str, int]]:
    """Per split: refs, sentences and images."""
    splits: dict[str, dict[str, int]] = {}
    images_per_split: dict[str, set[int]] = {}
    for ref in refs:
        counts = splits.setdefault(ref["split"], {"refs": 0, "sentences": 0, "images": 0})
        counts["refs"] += 1
        counts["sentences"] += len(ref["sentences"])
        images_per_split.setdefault(ref["split"], set()).add(ref["image_id"])
    for split, ids in images_per_split.items():
        splits[split]["images"] = len(ids)
    return dict(sorted(splits.items()))


def dataset_summary(archive: str, inner_dir: str, refs_file: str, images: list[CocoImage], refs: list[dict]) -> dict:
    return {
        "archive": archive,
        "inner_dir": inner_dir,
        "instances": f"{inner_dir}/instances.json",
        "refs": f"{inner_dir}/{refs_file}",
        "images_archive": COCO_ARCHIVE,
        "images_dir": IMAGES_DIR,
        "image_count": len(images),
        "annotation_count": sum(len(im.objects) for im in images),
        "rle_annotation_count": sum(o.as_rle for im in images for o in im.objects),
        "ref_count": len(refs),
        "sentence_count": sum(len(r["sentences"]) for r in refs),
        "splits": refs_summary(refs),
    }


def image_ground_truth(image: CocoImage) -> dict:
    """What each image shows, for tests: the polygons that define the masks, and the colours."""
    return {
        "image_id": image.image_id,
        "file_name": image.file_name,
        "width": image.width,
        "height": image.height,
        "objects": [
            {
                "ann_id": o.ann_id,
                "kind": o.shape.kind,
                "colour": o.shape.colour,
                "rgb": list(o.shape.rgb),
                "polygon": list(o.shape.polygon),
                "segmentation": "rle" if o.as_rle else "polygon",
                "referred": o.referred,
            }
            for o in image.objects
        ],
    }


def build_image_refer(rng: np.random.Generator, scale: WorldScale) -> ImageReferWorld:
    """The three ref_seg archives' entries, their counts, and the ground truth."""
    pool = make_coco_images(rng, pool_size(scale))
    refcoco_images, refcocog_images = split_pool(pool, scale)
    unc_splits = assign_splits(refcoco_images, scaled_splits(UNC_SPLITS, scale))
    umd_splits = assign_splits(refcocog_images, scaled_splits(UMD_SPLITS, scale))
    refcoco = build_refs(rng, refcoco_images, unc_splits, refcoco_phrases)
    refcoco_plus = build_refs(rng, refcoco_images, unc_splits, refcoco_plus_phrases)
    refcocog = build_refs(rng, refcocog_images, umd_splits, refcocog_phrases)
    # RefCOCO and RefCOCO+ ship the very same instances file, as upstream.
    refcoco_instances = json_bytes(instances_json(refcoco_images))
    archives = {
        COCO_ARCHIVE: {
            "ref_seg/refcoco/instances.json": refcoco_instances,
            "ref_seg/refcoco/refs(unc).p": pickle_bytes(refcoco),
            **{f"{IMAGES_DIR}/{im.file_name}": im.jpeg for im in pool},
        },
        COCO_PLUS_ARCHIVE: {
            "ref_seg/refcoco+/instances.json": refcoco_instances,
            "ref_seg/refcoco+/refs(unc).p": pickle_bytes(refcoco_plus),
        },
        # No ref_seg/ prefix here: consumers must find folders by their marker files.
        COCO_G_ARCHIVE: {
            "refcocog/instances.json": json_bytes(instances_json(refcocog_images)),
            "refcocog/refs(umd).p": pickle_bytes(refcocog),
        },
    }
    summary = {
        "refcoco": dataset_summary(COCO_ARCHIVE, "ref_seg/refcoco", "refs(unc).p", refcoco_images, refcoco),
        "refcoco+": dataset_summary(COCO_PLUS_ARCHIVE, "ref_seg/refcoco+", "refs(unc).p", refcoco_images, refcoco_plus),
        "refcocog": dataset_summary(COCO_G_ARCHIVE, "refcocog", "refs(umd).p", refcocog_images, refcocog),
    }
    return ImageReferWorld(archives, summary, [image_ground_truth(im) for im in pool])
