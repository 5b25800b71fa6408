"""MeViS, Ref-YouTube-VOS and ReVOS in their upstream formats: JPEG frame folders + expressions + RLE masks.

Each clip shows 1–2 shapes, each moving at constant speed along its own
horizontal lane (lanes never overlap, so each mask is exactly its shape's
painted pixels), each as large as its lane allows (up to a sixth of the clip's
width), so that a 64 px frame of the tiny preset still shows it.  Some objects
leave the frame: their masks become null.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
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
    indefinite_article,
    jpeg_bytes,
    noisy_background,
    paint,
    place_shape,
    rasterize,
)

CLIP_SIZES: tuple[tuple[int, int], ...] = ((96, 64), (128, 96), (128, 72), (112, 80))  # (width, height)
STILL_SPEED = 0.3  # px/frame below which an object "stays still"

MEVIS_PARTS_STEM = "video_datas_mevis"
RVOS_ARCHIVE = "video_datas_rvos.zip"
RVOS_MASK_DICT = "rvos/mask_dict.pkl"

# ReVOS reasoning expressions (type_id 1) name a property instead of the shape.
REASONING_BY_KIND: dict[str, str] = {
    "circle": "the object that could roll away like a ball",
    "square": "the shape whose four sides are all equally long",
    "triangle": "the shape with exactly three corners",
    "diamond": "the shape that looks like a square balanced on one corner",
    "rectangle": "the shape that is much wider than it is tall",
}


@dataclass(frozen=True)
class MovingObject:
    """One object of one clip, with its shape and mask in every frame."""

    obj_id: int
    anno_id: int
    kind: str
    colour: str
    radius: float
    speed: float  # px per frame, signed (positive = to the right)
    leaves_frame: bool
    shapes: tuple[PlacedShape, ...]  # per frame
    masks: tuple[np.ndarray, ...]  # per frame, uint8 H×W

    @property
    def motion(self) -> str:
        if abs(self.speed) < STILL_SPEED:
            return "staying still"
        direction = "moving right" if self.speed > 0 else "moving left"
        return f"{direction} and leaving the picture" if self.leaves_frame else direction

    def rles(self) -> list[dict | None]:
        """Per-frame compressed RLE, or None where the object is out of the frame."""
        return [encode_rle(m) if m.any() else None for m in self.masks]


@dataclass(frozen=True)
class VideoClip:
    vid: str
    width: int
    height: int
    frame_names: tuple[str, ...]
    objects: tuple[MovingObject, ...]
    jpegs: tuple[bytes, ...]


@dataclass(frozen=True)
class VideoReferWorld:
    """Archive entries (MeViS, Ref-YTVOS), folder files (ReVOS), counts and ground truth."""

    mevis_entries: dict[str, bytes]
    rvos_entries: dict[str, bytes]
    revos_files: dict[str, bytes]  # relative to the ReVOS folder
    summary: dict[str, dict]
    ground_truth: dict[str, dict[str, dict]]


def hex_id(rng: np.random.Generator, length: int) -> str:
    return "".join("0123456789abcdef"[int(v)] for v in rng.integers(16, size=length))


def unique_hex_ids(rng: np.random.Generator, count: int, length: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        candidate = hex_id(rng, length)
        if candidate not in ids:
            ids.append(candidate)
    return ids


def lane_trajectory(
    rng: np.random.Generator, width: int, height: int, lane: int, lanes: int, kind: str, n_frames: int, leaves: bool
) -> tuple[float, float, list[tuple[float, float]]]:
    """(radius, speed, per-frame centres) for a shape kept vertically inside its lane."""
    lane_height = height / lanes
    lane_centre = (lane + 0.5) * lane_height
    _, hy_per_radius = half_extent(kind, 1.0)
    max_radius = min((lane_height / 2 - 3) / hy_per_radius, width / 6)
    radius = float(rng.uniform(0.6 * max_radius, max_radius))
    hx, hy = half_extent(kind, radius)
    wobble = max(0.0, min(2.0, lane_height / 2 - hy - 1.5))
    phase = float(rng.uniform(0, 2 * math.pi))
    if leaves:
        # Starts inside near one edge and is fully outside by about 60 % of the clip.
        direction = 1.0 if rng.random() < 0.5 else -1.0
        start = width * 0.6 if direction > 0 else width * 0.4
        travel = (width - start + hx + 2) if direction > 0 else (start + hx + 2)
        speed = direction * travel / max(1.0, 0.6 * (n_frames - 1))
        x0 = start
    else:
        still = rng.random() < 0.2
        span = width - 2 * hx - 2
        speed = 0.0
        if not still:
            direction = float(rng.choice([-1.0, 1.0]))
            speed = direction * float(rng.uniform(1.0, max(1.5, span / max(1, n_frames - 1))))
        low, high = hx + 1, width - hx - 1 - abs(speed) * (n_frames - 1)
        if high < low:  # too fast for this width: slow down until the path fits
            speed = math.copysign(max(0.0, span / max(1, n_frames - 1)), speed)
            high = low
        leftmost = float(rng.uniform(low, high))  # the path's left end, whichever way it goes
        x0 = leftmost if speed >= 0 else leftmost + abs(speed) * (n_frames - 1)
    centres = [
        (x0 + speed * t, lane_centre + wobble * math.sin(2 * math.pi * t / max(2, n_frames) + phase))
        for t in range(n_frames)
    ]
    return radius, speed, centres


def make_clip(
    rng: np.random.Generator,
    vid: str,
    frame_names: list[str],
    object_count: int,
    anno_ids: Iterator[int],
    leaving_object: bool,
    distinct_kinds: bool,
) -> VideoClip:
    """A clip with `object_count` moving shapes; if `leaving_object`, the last one exits the frame."""
    width, height = CLIP_SIZES[int(rng.integers(len(CLIP_SIZES)))]
    n_frames = len(frame_names)
    kinds = list(rng.choice(len(SHAPE_KINDS), size=object_count, replace=not distinct_kinds))
    colours = list(rng.choice(len(PALETTE), size=object_count, replace=False))
    objects = []
    for lane in range(object_count):
        kind = SHAPE_KINDS[int(kinds[lane])]
        colour = list(PALETTE)[int(colours[lane])]
        leaves = leaving_object and lane == object_count - 1
        radius, speed, centres = lane_trajectory(rng, width, height, lane, object_count, kind, n_frames, leaves)
        shapes = tuple(place_shape(kind, colour, radius, cx, cy) for cx, cy in centres)
        masks = tuple(rasterize(s.polygon, height, width) for s in shapes)
        objects.append(
            MovingObject(lane, next(anno_ids), kind, colour, round(radius, 2), round(speed, 3), leaves, shapes, masks)
        )
    background = noisy_background(rng, height, width, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], 8)
    jpegs = []
    for t in range(n_frames):
        frame = background.copy()
        covered = np.zeros((height, width), dtype=np.uint8)
        for obj in objects:
            # Lanes are disjoint by construction; fail loudly if a change ever breaks that.
            assert not (covered & obj.masks[t]).any(), f"{vid}: masks overlap in frame {t}"
            covered |= obj.masks[t]
            paint(frame, obj.masks[t], PALETTE[obj.colour])
        jpegs.append(jpeg_bytes(frame))
    return VideoClip(vid, width, height, tuple(frame_names), tuple(objects), tuple(jpegs))


def contiguous_frame_names(count: int) -> list[str]:
    return [f"{k:05d}" for k in range(count)]


def every_fifth_frame_names(count: int) -> list[str]:
    """Ref-YouTube-VOS annotates every 5th frame and names frames by their original index."""
    return [f"{5 * k:05d}" for k in range(count)]


def describe(obj: MovingObject) -> str:
    return f"the {obj.colour} {obj.kind} {obj.motion}"


def mevis_expressions(clip: VideoClip) -> dict[str, dict]:
    """One expression per object, plus one naming two objects (MeViS has multi-object expressions)."""
    expressions = [{"exp": describe(o), "obj_id": [o.obj_id], "anno_id": [o.anno_id]} for o in clip.objects]
    if len(clip.objects) >= 2:
        a, b = clip.objects[0], clip.objects[1]
        expressions.append(
            {
                "exp": f"the {a.colour} {a.kind} and the {b.colour} {b.kind}",
                "obj_id": [a.obj_id, b.obj_id],
                "anno_id": [a.anno_id, b.anno_id],
            }
        )
    return {str(k): e for k, e in enumerate(expressions)}


def frames_dir_entries(prefix: str, clips: list[VideoClip]) -> dict[str, bytes]:
    return {
        f"{prefix}/{c.vid}/{name}.jpg": jpeg for c in clips for name, jpeg in zip(c.frame_names, c.jpegs, strict=True)
    }


def mask_dict(clips: list[VideoClip]) -> dict[str, list[dict | None]]:
    return {str(o.anno_id): o.rles() for c in clips for o in c.objects}


def count_nulls(masks: dict) -> int:
    return sum(m is None for per_frame in masks.values() for m in per_frame)


def make_clips(
    rng: np.random.Generator,
    count: int,
    id_length: int,
    frame_range: tuple[int, int],
    frame_names_for: Callable[[int], list[str]] = contiguous_frame_names,
    anno_ids: Iterator[int] | None = None,
    distinct_kinds: bool = False,
) -> list[VideoClip]:
    """`count` clips sorted by id; every other clip has an object that leaves the frame."""
    ids = sorted(unique_hex_ids(rng, count, id_length))
    anno_ids = anno_ids if anno_ids is not None else iter(range(10**9))
    return [
        make_clip(
            rng,
            vid,
            frame_names_for(int(rng.integers(frame_range[0], frame_range[1] + 1))),
            int(rng.integers(1, 3)) if k % 3 else 2,  # at least every third clip with two objects
            anno_ids,
            leaving_object=k % 2 == 0,
            distinct_kinds=distinct_kinds,
        )
        for k, vid in enumerate(ids)
    ]


def clip_ground_truth(clip: VideoClip) -> dict:
    """Per clip: size, frames and, per object, its shape and per-frame centre (None = outside)."""
    return {
        "width": clip.width,
        "height": clip.height,
        "frames": list(clip.frame_names),
        "objects": [
            {
                "obj_id": o.obj_id,
                "anno_id": o.anno_id,
                "kind": o.kind,
                "colour": o.colour,
                "rgb": list(PALETTE[o.colour]),
                "radius": o.radius,
                "speed_px_per_frame": o.speed,
                "leaves_frame": o.leaves_frame,
                "centres": [[s.cx, s.cy] for s in o.shapes],
                "present": [bool(m.any()) for m in o.masks],
            }
            for o in clip.objects
        ],
    }


def unlabelled(expressions: dict[str, dict]) -> dict[str, dict]:
    """Expressions as a server-scored split releases them: the sentence only (no obj_id, no anno_id)."""
    return {exp_id: {"exp": e["exp"]} for exp_id, e in expressions.items()}


def mevis_split(
    rng: np.random.Generator, split: str, count: int, anno_ids: Iterator[int], labelled: bool = True
) -> tuple[dict[str, bytes], dict, dict]:
    """Entries, counts and ground truth of one MeViS split (train, valid_u; valid without labels, as released)."""
    clips = make_clips(rng, count, 12, (8, 14), anno_ids=anno_ids)
    meta = {"videos": {c.vid: {"frames": list(c.frame_names), "expressions": mevis_expressions(c)} for c in clips}}
    masks = mask_dict(clips) if labelled else {}
    root = f"mevis/{split}"
    if not labelled:
        for video in meta["videos"].values():
            video["expressions"] = unlabelled(video["expressions"])
    entries = {
        **frames_dir_entries(f"{root}/JPEGImages", clips),
        f"{root}/meta_expressions.json": json_bytes(meta),
        **({f"{root}/mask_dict.json": json_bytes(masks)} if labelled else {}),
    }
    summary = {
        "dir": root,
        "video_count": len(clips),
        "frame_count": sum(len(c.frame_names) for c in clips),
        "expression_count": sum(len(v["expressions"]) for v in meta["videos"].values()),
        "object_count": sum(len(c.objects) for c in clips),
        "mask_record_count": len(masks),
        "null_mask_count": count_nulls(masks),
    }
    return entries, summary, {c.vid: clip_ground_truth(c) for c in clips}


def rvos_expressions(rng: np.random.Generator, clip: VideoClip) -> dict[str, dict]:
    """Ref-YTVOS: 1–2 expressions per object, obj_id a string starting at '1', no anno_id."""
    expressions = []
    for o in clip.objects:
        options = [f"{indefinite_article(o.colour)} {o.colour} {o.kind}", f"{o.colour} {o.kind} {o.motion}"]
        for text in options[: int(rng.integers(1, 3))]:
            expressions.append({"exp": text, "obj_id": str(o.obj_id + 1)})
    return {str(k): e for k, e in enumerate(expressions)}


def rvos_mask_dict(clips: list[VideoClip], meta: dict) -> dict[int, list[dict | None]]:
    """Keys are ints: a running counter over sorted video ids, then expression ids in numeric order.

    Each value is the per-frame RLE list (str counts) of the expression's object, None where absent.
    """
    by_vid = {c.vid: c for c in clips}
    result: dict[int, list[dict | None]] = {}
    for vid in sorted(meta["videos"]):
        expressions = meta["videos"][vid]["expressions"]
        for exp_id in sorted(expressions, key=int):
            obj = by_vid[vid].objects[int(expressions[exp_id]["obj_id"]) - 1]
            result[len(result)] = obj.rles()
    return result


def rvos_split_summary(clips: list[VideoClip], meta: dict, frames_dir: str, meta_path: str) -> dict:
    return {
        "frames_dir": frames_dir,
        "meta": meta_path,
        "video_count": len(clips),
        "frame_count": sum(len(c.frame_names) for c in clips),
        "expression_count": sum(len(v["expressions"]) for v in meta["videos"].values()),
        "object_count": sum(len(c.objects) for c in clips),
    }


def rvos_world(rng: np.random.Generator, scale: WorldScale) -> tuple[dict[str, bytes], dict, dict]:
    """video_datas_rvos.zip entries: train frames + masks, valid frames + expressions only (as released)."""
    train = make_clips(rng, 5 * scale.train, 10, (6, 10), every_fifth_frame_names)
    valid = make_clips(rng, 2 * scale.held_out, 10, (6, 10), every_fifth_frame_names)
    train_meta = {
        "videos": {c.vid: {"expressions": rvos_expressions(rng, c), "frames": list(c.frame_names)} for c in train}
    }
    valid_meta = {
        "videos": {
            c.vid: {"expressions": unlabelled(rvos_expressions(rng, c)), "frames": list(c.frame_names)} for c in valid
        }
    }
    masks = rvos_mask_dict(train, train_meta)
    entries = {
        **frames_dir_entries("rvos/train/JPEGImages", train),
        **frames_dir_entries("rvos/valid/JPEGImages", valid),
        "rvos/meta_expressions/train/meta_expressions.json": json_bytes(train_meta),
        "rvos/meta_expressions/valid/meta_expressions.json": json_bytes(valid_meta),
        RVOS_MASK_DICT: pickle_bytes(masks),
    }

    summary = {
        "archive": RVOS_ARCHIVE,
        "mask_dict": RVOS_MASK_DICT,
        "mask_dict_keys": "int: running counter over sorted video ids, then expression ids sorted numerically (train)",
        "mask_record_count": len(masks),
        "null_mask_count": count_nulls(masks),
        "splits": {
            "train": rvos_split_summary(
                train, train_meta, "rvos/train/JPEGImages", "rvos/meta_expressions/train/meta_expressions.json"
            ),
            "valid": rvos_split_summary(
                valid, valid_meta, "rvos/valid/JPEGImages", "rvos/meta_expressions/valid/meta_expressions.json"
            ),
        },
    }
    truth = {
        "train": {c.vid: clip_ground_truth(c) for c in train},
        "valid": {c.vid: clip_ground_truth(c) for c in valid},
    }
    return entries, summary, truth


def absent_description(rng: np.random.Generator, clip: VideoClip) -> tuple[str, str]:
    """A (colour, kind) pair that no object of the clip has."""
    present = {(o.colour, o.kind) for o in clip.objects}
    present_colours = {o.colour for o in clip.objects}
    candidates = [(c, k) for c in PALETTE for k in SHAPE_KINDS if (c, k) not in present and c not in present_colours]
    return candidates[int(rng.integers(len(candidates)))]


def revos_expressions(
    rng: np.random.Generator, clip: VideoClip, with_no_target: bool, ghost_anno_id: int
) -> tuple[dict[str, dict], list[dict | None] | None]:
    """Referring (type 0, per object and, with two or more objects, one naming two), reasoning (type 1) and
    optionally one no-target (type 2) expression.

    A no-target expression points at a ghost object (obj_id one past the real
    ones) whose anno_id has a mask list of nulls only: empty in every frame.
    """
    expressions = []
    for o in clip.objects:
        expressions.append({"exp": describe(o), "obj_id": [o.obj_id], "anno_id": [o.anno_id], "type_id": 0})
        expressions.append(
            {"exp": REASONING_BY_KIND[o.kind], "obj_id": [o.obj_id], "anno_id": [o.anno_id], "type_id": 1}
        )
    if len(clip.objects) >= 2:  # ReVOS expressions may refer to several objects too
        first, second = clip.objects[0], clip.objects[1]
        expressions.append(
            {
                "exp": f"the {first.colour} {first.kind} and the {second.colour} {second.kind}",
                "obj_id": [first.obj_id, second.obj_id],
                "anno_id": [first.anno_id, second.anno_id],
                "type_id": 0,
            }
        )
    ghost_masks = None
    if with_no_target:
        colour, kind = absent_description(rng, clip)
        ghost_obj = len(clip.objects)
        expressions.append(
            {"exp": f"the {colour} {kind}", "obj_id": [ghost_obj], "anno_id": [ghost_anno_id], "type_id": 2}
        )
        ghost_masks = [None] * len(clip.frame_names)
    return {str(k): e for k, e in enumerate(expressions)}, ghost_masks


def foreground(clip: VideoClip, expressions: dict[str, dict]) -> dict:
    """ReVOS foreground: per frame, the union of every mask the clip's expressions use, and its ratio."""
    anno_ids = sorted({a for e in expressions.values() for a in e["anno_id"]})
    masks_rle, ratios = [], []
    for t in range(len(clip.frame_names)):
        union = np.zeros((clip.height, clip.width), dtype=np.uint8)
        for obj in clip.objects:
            if obj.anno_id in anno_ids:
                union |= obj.masks[t]
        masks_rle.append(encode_rle(union))
        ratios.append(float(union.sum()) / (clip.height * clip.width))
    return {"masks_rle": masks_rle, "foreground_ratio": ratios}


def revos_world(
    rng: np.random.Generator, anno_ids: Iterator[int], scale: WorldScale
) -> tuple[dict[str, bytes], dict, dict]:
    """The ReVOS folder (a manual source): shared JPEGImages and masks, train/valid expression files."""
    splits = {"train": make_clips(rng, 5 * scale.train, 12, (8, 12), anno_ids=anno_ids, distinct_kinds=True)}
    splits["valid"] = make_clips(rng, 3 * scale.held_out, 12, (8, 12), anno_ids=anno_ids, distinct_kinds=True)
    masks: dict[str, list[dict | None]] = {}
    foregrounds: dict[str, dict] = {}
    files: dict[str, bytes] = {}
    summary: dict = {"folder": "manual/ReVOS", "splits": {}}
    truth: dict = {}
    for split, clips in splits.items():
        videos = {}
        for k, clip in enumerate(clips):
            masks.update(mask_dict([clip]))
            ghost_anno_id = next(anno_ids) if k % 2 == 0 else -1
            expressions, ghost_masks = revos_expressions(rng, clip, k % 2 == 0, ghost_anno_id)
            if ghost_masks is not None:
                masks[str(ghost_anno_id)] = ghost_masks
            videos[clip.vid] = {
                "height": clip.height,
                "width": clip.width,
                "frames": list(clip.frame_names),
                "expressions": expressions,
            }
            foregrounds[clip.vid] = foreground(clip, expressions)
        meta_name = f"meta_expressions_{split}_.json"
        files[meta_name] = json_bytes({"videos": videos})
        files.update(frames_dir_entries("JPEGImages", clips))
        type_counts = {
            str(t): sum(e["type_id"] == t for v in videos.values() for e in v["expressions"].values())
            for t in (0, 1, 2)
        }
        summary["splits"][split] = {
            "meta": meta_name,
            "video_count": len(clips),
            "frame_count": sum(len(c.frame_names) for c in clips),
            "expression_count": sum(type_counts.values()),
            "expression_count_by_type_id": type_counts,
            "object_count": sum(len(c.objects) for c in clips),
        }
        truth[split] = {c.vid: clip_ground_truth(c) for c in clips}
    files["mask_dict.json"] = json_bytes(masks)
    files["mask_dict_foreground.json"] = json_bytes(foregrounds)
    summary["mask_dict"] = "mask_dict.json"
    summary["mask_dict_foreground"] = (
        "mask_dict_foreground.json (vid -> {masks_rle: [per-frame RLE], foreground_ratio: [float]})"
    )
    summary["mask_record_count"] = len(masks)
    summary["null_mask_count"] = count_nulls(masks)
    summary["no_target"] = "type_id 2 expressions point at a ghost anno_id whose mask list is all null"
    return files, summary, truth


def build_video_refer(rng: np.random.Generator, scale: WorldScale) -> VideoReferWorld:
    """MeViS (train, valid_u, valid), Ref-YTVOS (train + valid) and ReVOS (train + valid); the valid splits
    of MeViS and Ref-YTVOS come without labels (their server holds them)."""
    mevis_anno_ids = iter(range(1, 10**6))
    mevis_train, mevis_train_summary, mevis_train_truth = mevis_split(rng, "train", 6 * scale.train, mevis_anno_ids)
    mevis_valid, mevis_valid_summary, mevis_valid_truth = mevis_split(
        rng, "valid_u", 3 * scale.held_out, mevis_anno_ids
    )
    rvos_entries, rvos_summary, rvos_truth = rvos_world(rng, scale)
    revos_files, revos_summary, revos_truth = revos_world(rng, iter(range(5001, 10**6)), scale)
    # drawn last, so that the splits above are those of generator version 3
    mevis_server, mevis_server_summary, _ = mevis_split(
        rng, "valid", 2 * scale.held_out, mevis_anno_ids, labelled=False
    )
    summary = {
        "mevis": {
            "splits": {"train": mevis_train_summary, "valid_u": mevis_valid_summary, "valid": mevis_server_summary}
        },
        "rvos": rvos_summary,
        "revos": revos_summary,
    }
    truth = {
        "mevis": {"train": mevis_train_truth, "valid_u": mevis_valid_truth},
        "rvos": rvos_truth,
        "revos": revos_truth,
    }
    return VideoReferWorld({**mevis_train, **mevis_valid, **mevis_server}, rvos_entries, revos_files, summary, truth)
