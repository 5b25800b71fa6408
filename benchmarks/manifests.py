#!/usr/bin/env python
"""Manifests build time on a synthetic world scaled to real size: raw annotations -> special_jsons -> spatial manifests.

The world (generated once, cached, never timed) holds the three video datasets in their released
on-disk formats, scaled together to >= 20,000 annotated videos and >= 100,000 expressions whose
objects have per-frame compressed COCO RLE masks, plus (by default) one RefCOCO-style image
dataset at RefCOCO's real size:

    mevis   video_datas/mevis/{train,valid_u}/  JPEGImages/<vid>/<frame>.jpg, meta_expressions.json,
                                                mask_dict.json ({anno_id: [RLE | null per frame]})
            video_datas/mevis/valid/            unannotated (no mask_dict.json)
    rvos    video_datas/rvos/{train,valid}/JPEGImages/, meta_expressions/{train,valid}/meta_expressions.json,
            video_datas/rvos/mask_dict.pkl      train only, keyed by the running counter (one mask list
                                                per expression, as released)
    revos   video_datas/ReVOS/JPEGImages/, meta_expressions_{train,valid}_.json (type_id 0/1/2,
            height/width), mask_dict.json shared by both splits (type 2 -> an all-null entry)
    refcoco refer_seg/refcoco/instances.json (COCO polygons; 1% crowd RLE with uncompressed counts),
            refs(unc).p, refer_seg/coco2014/train2014/*.jpg

Sizes (chosen to match the real datasets per video; see docs/upstream.md for the totals):
  * frame size per video: 1280x720 (65%), 854x480 (15%), 960x720 (10%), 1920x1080 (10%);
  * frames per video: MeViS 30-80, Ref-YouTube-VOS 15-36 (every 5th frame, as released), ReVOS 30-100;
  * objects per video: MeViS 2-6, Ref-YouTube-VOS 1-3, ReVOS 2-6, capped by the expression count;
    every object is referred to; MeViS/ReVOS expressions may name 2-3 objects;
  * expressions per video: 1 + Poisson(--expressions-per-video - 1);
  * an object is a blob 24 px .. half the width wide, 24 px .. 70% of the height tall, with a
    bumpy, slightly ragged outline, moving and breathing over the clip; it is absent (null mask)
    before it enters, after it leaves and during an occasional occlusion; 0.3% of objects are
    never visible. Masks are compressed by pycocotools from their run lengths (the same bytes
    pycocotools.mask.encode writes for such a mask), ~300-400 characters each at 1280x720;
  * frame files exist but are empty (the builders only list frame folders), except the first
    frame of unannotated videos, a real JPEG (special_jsons reads its header for the size);
    1 annotated video in 1000 lacks one frame (dropped as missing_frames by the manifests);
  * RefCOCO: --images images of COCO sizes, ~9 annotations each (polygons of 8-48 vertices),
    ~2.5 referred per image, ~2.8 sentences per ref; empty image files.

Timed, in one process, through the library functions the Snakemake rules' scripts call:
  1. `build_special_jsons(data_root, out/special_jsons)` (scripts/build_special_jsons.py): read
     every dataset, masks -> boxes, validate and write;
  2. `build_spatial_manifests(out/special_jsons, data_root, out/manifests)` (scripts/build_manifests.py
     spatial): read and validate special_jsons, list frame folders, write Parquet + report.
Annotation files are read once before timing (warm page cache). Afterwards (not timed) the outputs
are checked against the world: records, kept and dropped counts, and sampled boxes computed from the
generator's geometry (independent of pycocotools).

masks = non-null RLE masks of the video mask dicts + the RefCOCO annotations a ref uses (each
decoded once by the builder); expressions = special_jsons records. The last printed line is::

    RESULT seconds=<build seconds> videos=<n> expressions=<n> masks=<n> masks_per_s=<x> image_expressions=<n> images=<n>

where videos/expressions count the video datasets (every split) and image_* the RefCOCO part; both
parts are in the seconds.

The default world takes ~1.5 min to generate (2 processes) and 1.5 GiB on disk (~956,000 files, nearly
all empty frame files); --quick takes ~1 s.

Usage (from the repository root)::

    .venv/bin/python benchmarks/manifests.py           # 20,000 annotated videos, ~5.5 expressions each, 20,000 images
    .venv/bin/python benchmarks/manifests.py --quick   # smoke run (does NOT meet the spec)

Writes the table + RESULT to results/benchmarks/manifests.txt and a log to
results/logs/benchmark_manifests.log. The world is cached in
results/benchmarks/manifests/world_<params>/ (regenerated when its COMPLETE marker is missing);
the build's outputs go to results/benchmarks/manifests/build/ (removed unless --keep-outputs).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import logging
import math
import multiprocessing as mp
import os
import pickle
import platform
import pstats
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from _report import Report, log_to_file
from sa2va_st.atomic import staging_dir

ROOT = Path(__file__).resolve().parents[1]  # repository root: default paths are relative to it
DEFAULT_OUT = Path("results/benchmarks/manifests")
DEFAULT_REPORT = Path("results/benchmarks/manifests.txt")
DEFAULT_LOG = Path("results/logs/benchmark_manifests.log")

SPEC_VIDEOS, SPEC_EXPRESSIONS, TARGET_SECONDS = 20_000, 100_000, 120.0
DEFAULT_EPV = 5.5  # expressions per video (mean)
DEFAULT_IMAGES = 20_000  # RefCOCO: 19,994 images, 50,000 referred objects, 142,209 expressions
QUICK_VIDEOS, QUICK_IMAGES = 120, 200
WORLD_FORMAT = 1  # bump when the generator changes: cached worlds are then regenerated
COMPLETE = "COMPLETE"
CHUNK_VIDEOS = 100  # videos per generation job
MISSING_FRAME_EVERY = 1000  # one annotated video in this many lacks a frame file
NEVER_VISIBLE = 0.003  # share of objects whose every mask is null

log = logging.getLogger("benchmark.manifests")

# dataset -> per-video ranges; share = fraction of the annotated videos
VIDEO_DATASETS = {
    "mevis": {"share": 0.4, "frames": (30, 80), "objects": (2, 6), "step": 1, "multi": True},
    "rvos": {"share": 0.4, "frames": (15, 36), "objects": (1, 3), "step": 5, "multi": False},
    "revos": {"share": 0.2, "frames": (30, 100), "objects": (2, 6), "step": 1, "multi": True},
}
FRAME_SIZES = ((720, 1280), (480, 854), (720, 960), (1080, 1920))  # (height, width)
FRAME_SIZE_P = (0.65, 0.15, 0.10, 0.10)
COCO_SIZES = ((480, 640), (427, 640), (640, 480), (375, 500), (612, 612), (640, 427), (360, 640), (500, 375))
ANNO_SLOTS = 8  # anno ids per video: objects use 0..6, the ReVOS no-target ghost uses 7

NOUNS = (
    "person",
    "man",
    "woman",
    "child",
    "dog",
    "cat",
    "horse",
    "cow",
    "sheep",
    "bird",
    "car",
    "truck",
    "bus",
    "bicycle",
    "motorcycle",
    "boat",
    "airplane",
    "elephant",
    "giraffe",
    "zebra",
    "bear",
    "monkey",
    "fish",
    "turtle",
    "rabbit",
    "duck",
    "panda",
    "lizard",
    "parrot",
    "tiger",
)
ADJECTIVES = ("white", "black", "brown", "red", "small", "large", "young", "spotted", "grey", "dark", "little", "tall")
VERBS = (
    "walking",
    "running",
    "jumping",
    "turning around",
    "standing still",
    "moving forward",
    "eating",
    "looking around",
    "swimming",
    "flying",
    "climbing",
    "lying down",
    "sitting",
    "crossing the road",
)
PLACES = (
    "to the left",
    "to the right",
    "towards the camera",
    "away from the camera",
    "in the middle",
    "near the fence",
    "on the grass",
    "behind the tree",
    "in the water",
    "next to the others",
)


# --------------------------------------------------------------------------------------------
# The world's plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldParams:
    videos: int  # annotated videos over the three video datasets
    expressions_per_video: float
    images: int  # RefCOCO images (0: no image dataset)
    unannotated_share: float  # extra unannotated videos (mevis valid, rvos valid), as a share
    seed: int
    format: int = WORLD_FORMAT

    @property
    def name(self) -> str:
        return (
            f"world_v{self.videos}_e{self.expressions_per_video:g}_i{self.images}_u{self.unannotated_share:g}"
            f"_s{self.seed}_f{self.format}"
        )


@dataclass(frozen=True)
class SplitSpec:
    dataset: str
    split: str
    videos: int
    annotated: bool
    stream: int  # seeds and anno id ranges of this split


def plan_splits(p: WorldParams) -> list[SplitSpec]:
    """Annotated videos shared out as VIDEO_DATASETS says, then the unannotated splits on top."""
    counts = {}
    left = p.videos
    for name, spec in VIDEO_DATASETS.items():
        counts[name] = left if name == "revos" else round(p.videos * spec["share"])
        left -= counts[name]
    mevis_valid_u = max(1, round(counts["mevis"] * 0.025))
    revos_valid = max(1, round(counts["revos"] * 0.15))
    splits = [
        SplitSpec("mevis", "train", counts["mevis"] - mevis_valid_u, True, 0),
        SplitSpec("mevis", "valid_u", mevis_valid_u, True, 1),
        SplitSpec("mevis", "valid", max(1, round(counts["mevis"] * p.unannotated_share)), False, 2),
        SplitSpec("rvos", "train", counts["rvos"], True, 3),
        SplitSpec("rvos", "valid", max(1, round(counts["rvos"] * p.unannotated_share)), False, 4),
        SplitSpec("revos", "train", counts["revos"] - revos_valid, True, 5),
        SplitSpec("revos", "valid", revos_valid, True, 6),
    ]
    return [s for s in splits if s.videos > 0]


def frames_dir(data_root: Path, s: SplitSpec) -> Path:
    if s.dataset == "mevis":
        return data_root / "video_datas" / "mevis" / s.split / "JPEGImages"
    if s.dataset == "rvos":
        return data_root / "video_datas" / "rvos" / s.split / "JPEGImages"
    return data_root / "video_datas" / "ReVOS" / "JPEGImages"


# --------------------------------------------------------------------------------------------
# Masks: run lengths of a blob, compressed by pycocotools
# --------------------------------------------------------------------------------------------


def loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(max(low + 1e-9, high)))))


def blob_track(rng: np.random.Generator, height: int, width: int, frames: int):
    """(x0 per frame, tops (F, w), bottoms (F, w)): a bumpy blob w columns wide drifting over the clip.

    Column x0[f] + k covers rows tops[f, k] .. bottoms[f, k] - 1; 1 <= top < bottom <= height - 1,
    so a column never touches the image's top and bottom edges together (no zero-length runs:
    the run lengths are those of a real mask, which pycocotools would compress to the same bytes).
    """
    w = max(2, int(loguniform(rng, 24, width * 0.5)))
    h = loguniform(rng, 24, height * 0.7)
    t = np.linspace(-1.0, 1.0, w)
    k = np.arange(1, 4)[:, None]
    bumps = (
        rng.uniform(-0.08, 0.08, size=(3, 1))
        * np.sin(k * np.pi * t[None, :] * rng.uniform(1, 3, size=(3, 1)) + rng.uniform(0, 2 * np.pi, size=(3, 1)))
    ).sum(0)
    half = (h / 2) * np.clip(np.sqrt(np.clip(1 - t * t, 0, 1)) ** rng.uniform(0.3, 1.0) * (1 + bumps), 0.06, None)
    f = np.arange(frames) / max(1, frames - 1)
    xa, xb = rng.uniform(0, width - w, size=2)
    x0 = np.round(xa + (xb - xa) * f).astype(np.int64)
    margin = min(h / 2 + 2, height / 2 - 1)
    ya, yb = rng.uniform(margin, height - margin, size=2)
    cy = ya + (yb - ya) * f
    scale = 1 + 0.1 * np.sin(2 * np.pi * f * rng.uniform(0.5, 2) + rng.uniform(0, 2 * np.pi))
    jitter = rng.integers(-1, 2, size=(2, frames, w))
    tops = np.round(cy[:, None] - half[None, :] * scale[:, None]).astype(np.int64) + jitter[0]
    bottoms = np.round(cy[:, None] + half[None, :] * scale[:, None]).astype(np.int64) + jitter[1]
    tops = np.clip(tops, 1, height - 2)
    bottoms = np.clip(bottoms, tops + 1, height - 1)
    return x0, tops, bottoms, w


def run_lengths(x0: np.ndarray, tops: np.ndarray, bottoms: np.ndarray, height: int, width: int) -> np.ndarray:
    """(F, 2w + 1) COCO run lengths (column-major, starting with a 0-run) of the blob in every frame."""
    frames, w = tops.shape
    counts = np.empty((frames, 2 * w + 1), dtype=np.int64)
    counts[:, 0] = x0 * height + tops[:, 0]
    counts[:, 1::2] = bottoms - tops
    counts[:, 2:-1:2] = (height - bottoms[:, :-1]) + tops[:, 1:]
    counts[:, -1] = (width - x0 - w) * height + (height - bottoms[:, -1])
    return counts


def visible_frames(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Where the object is visible: it may enter late, leave early and be occluded once."""
    visible = np.zeros(frames, dtype=bool)
    if rng.random() < NEVER_VISIBLE:
        return visible
    start = 0 if rng.random() < 0.7 else int(rng.integers(0, max(1, frames // 3)))
    end = frames if rng.random() < 0.7 else int(rng.integers(max(start + 1, 2 * frames // 3), frames + 1))
    visible[start:end] = True
    if rng.random() < 0.15 and end - start > 4:
        gap = int(rng.integers(1, max(2, (end - start) // 5)))
        at = int(rng.integers(start + 1, end - gap))
        visible[at : at + gap] = False
    return visible


@dataclass
class ObjectTrack:
    strings: list  # per frame: compressed RLE counts (str) or None
    boxes: list  # per frame: pixel box (x0, y0, x1, y1) or None, from the geometry


def object_track(rng: np.random.Generator, height: int, width: int, frames: int) -> ObjectTrack:
    x0, tops, bottoms, w = blob_track(rng, height, width, frames)
    visible = visible_frames(rng, frames)
    counts = run_lengths(x0, tops, bottoms, height, width).astype(np.uint32)
    shown = np.flatnonzero(visible)
    rles = (
        mask_utils.frPyObjects([{"size": [height, width], "counts": counts[f]} for f in shown], height, width)
        if len(shown)
        else []
    )
    strings: list = [None] * frames
    boxes: list = [None] * frames
    y0, y1 = tops.min(axis=1), bottoms.max(axis=1)
    for f, rle in zip(shown.tolist(), rles):
        strings[f] = rle["counts"].decode("ascii")
        boxes[f] = (int(x0[f]), int(y0[f]), int(x0[f]) + w, int(y1[f]))
    return ObjectTrack(strings, boxes)


def normalised(box: tuple | None, width: int, height: int) -> list | None:
    from sa2va_st.annotations.common import rounded  # the format's rounding rule

    if box is None:
        return None
    return [rounded(box[0] / width), rounded(box[1] / height), rounded(box[2] / width), rounded(box[3] / height)]


def sentence(rng: np.random.Generator, objects: int) -> str:
    def one() -> str:
        return f"{ADJECTIVES[rng.integers(len(ADJECTIVES))]} {NOUNS[rng.integers(len(NOUNS))]}"

    subject = " and the ".join(one() for _ in range(objects))
    tail = f" {PLACES[rng.integers(len(PLACES))]}" if rng.random() < 0.7 else ""
    more = f" and then {VERBS[rng.integers(len(VERBS))]}" if rng.random() < 0.3 else ""
    return f"the {subject} {VERBS[rng.integers(len(VERBS))]}{tail}{more}"


# --------------------------------------------------------------------------------------------
# Video datasets: one job = a run of consecutive videos of one split
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    split: SplitSpec
    first: int
    count: int
    frames_dir: str
    fragment: str | None  # where this job writes its part of a mask_dict.json (mevis, revos)
    jpeg_dir: str  # real first-frame JPEGs of unannotated videos, one per frame size
    seed: int
    epv: float


def video_id(seed: int, s: SplitSpec, index: int) -> str:
    digest = hashlib.blake2b(f"{seed}/{s.dataset}/{s.split}/{index}".encode(), digest_size=6).hexdigest()
    return digest[:10] if s.dataset == "rvos" else digest  # Ref-YouTube-VOS ids are 10 hex digits


def plan_expressions(rng: np.random.Generator, n_exp: int, n_obj: int, multi: bool, revos: bool) -> list[dict]:
    """[{objects: [object index], type_id}]: every object named alone once, then random ones."""
    plans = []
    for e in range(n_exp):
        if e < n_obj:
            objects = [e]
        elif multi and n_obj >= 2 and rng.random() < 0.3:
            objects = sorted(rng.choice(n_obj, size=int(rng.integers(2, min(3, n_obj) + 1)), replace=False).tolist())
        else:
            objects = [int(rng.integers(n_obj))]
        type_id = None
        if revos:
            type_id = 2 if (e >= n_obj and rng.random() < 0.1) else int(rng.integers(2))
            if type_id == 2:
                objects = []
        plans.append({"objects": objects, "type_id": type_id})
    return plans


def generate_chunk(chunk: Chunk) -> dict:
    """Write the chunk's frame files (and mask-dict fragment); return its meta entries, RVOS masks, counts, samples."""
    s = chunk.split
    spec = VIDEO_DATASETS[s.dataset]
    revos = s.dataset == "revos"
    meta: list = []
    rvos_masks: list = []  # per video: per expression (file order of exp ids sorted as strings) the mask list
    fragments: list[str] = []
    samples: list = []
    c = dict(
        videos=0,
        frames=0,
        expressions=0,
        objects=0,
        masks=0,
        null_masks=0,
        mask_chars=0,
        frame_files=0,
        missing_frame_videos=0,
        empty_expressions=0,
        dropped_missing=0,
        dropped_empty=0,
        no_target=0,
    )
    for index in range(chunk.first, chunk.first + chunk.count):
        rng = np.random.default_rng([chunk.seed, s.stream, index])
        vid = video_id(chunk.seed, s, index)
        height, width = FRAME_SIZES[int(rng.choice(len(FRAME_SIZES), p=FRAME_SIZE_P))]
        n_frames = int(rng.integers(spec["frames"][0], spec["frames"][1] + 1))
        names = [f"{spec['step'] * k:05d}" for k in range(n_frames)]
        n_exp = 1 + int(rng.poisson(max(0.0, chunk.epv - 1)))
        n_obj = min(int(rng.integers(spec["objects"][0], spec["objects"][1] + 1)), n_exp)
        exp_plans = plan_expressions(rng, n_exp, n_obj, spec["multi"], revos)
        texts = [sentence(rng, max(1, len(p["objects"]))) for p in exp_plans]
        tracks = [object_track(rng, height, width, n_frames) for _ in range(n_obj)] if s.annotated else []

        # frame files: empty, but the first frame of an unannotated video is a real JPEG (its size is read)
        folder = os.path.join(chunk.frames_dir, vid)
        os.makedirs(folder, exist_ok=True)
        missing = s.annotated and index % MISSING_FRAME_EVERY == MISSING_FRAME_EVERY // 2
        skip = n_frames // 2 if missing else -1
        for k, name in enumerate(names):
            if k == skip:
                continue
            path = os.path.join(folder, name + ".jpg")
            if k == 0 and not s.annotated:
                os.link(os.path.join(chunk.jpeg_dir, f"{width}x{height}.jpg"), path)
            else:
                os.mknod(path)
        c["frame_files"] += n_frames - (1 if missing else 0)
        c["missing_frame_videos"] += missing

        base = s.stream * 10_000_000 + index * ANNO_SLOTS + 1  # anno ids unique over the splits
        expressions = {}
        for e, (p, text) in enumerate(zip(exp_plans, texts)):
            entry: dict = {"exp": text}
            if s.dataset == "rvos":
                entry["obj_id"] = str(p["objects"][0] + 1)
            else:
                ghost = p["type_id"] == 2
                entry["obj_id"] = [n_obj] if ghost else list(p["objects"])
                entry["anno_id"] = [base + ANNO_SLOTS - 1] if ghost else [base + o for o in p["objects"]]
                if revos:
                    entry["type_id"] = p["type_id"]
            expressions[str(e)] = entry
        video_entry: dict = {"expressions": expressions, "frames": names}
        if revos:
            video_entry = {"height": height, "width": width, **video_entry}
        meta.append((vid, video_entry))

        c["videos"] += 1
        c["frames"] += n_frames
        c["expressions"] += n_exp
        c["objects"] += n_obj
        # masks as the builder decodes them: per mask-dict entry (Ref-YouTube-VOS: one per expression)
        entries = [tracks[p["objects"][0]] for p in exp_plans] if s.dataset == "rvos" and s.annotated else tracks
        for t in entries:
            shown = sum(x is not None for x in t.strings)
            c["masks"] += shown
            c["null_masks"] += n_frames - shown
            c["mask_chars"] += sum(len(x) for x in t.strings if x is not None)

        # what the manifests should keep: boxes per expression from the geometry
        sized = not s.annotated or revos or any(x is not None for t in tracks for x in t.strings)
        size = (width, height) if sized else (None, None)  # special_jsons knows a size from masks, meta or a frame
        for e, p in enumerate(exp_plans):
            if not s.annotated:
                boxes = None
            else:
                # per frame, one box per object (Ref-YouTube-VOS's pickle holds the first object's masks only)
                objects = p["objects"][:1] if s.dataset == "rvos" else p["objects"]
                boxes = [[normalised(tracks[o].boxes[f], width, height) for o in objects] for f in range(n_frames)]
            empty = boxes is not None and all(b is None for frame in boxes for b in frame)
            c["empty_expressions"] += empty
            if missing:
                c["dropped_missing"] += 1
            elif empty and p["type_id"] != 2:
                c["dropped_empty"] += 1
            elif empty:
                c["no_target"] += 1
            if e == 0 or rng.random() < 0.05:
                f = int(rng.integers(n_frames))
                samples.append([s.dataset, s.split, f"{vid}/{e}", f, None if boxes is None else boxes[f], *size])

        if not s.annotated:
            continue
        if s.dataset == "rvos":
            # one mask list per expression, each built anew: the pickle holds every expression's masks in full
            order = sorted(range(n_exp), key=str)
            rvos_masks.append(
                [
                    [
                        None if x is None else {"size": [height, width], "counts": x.encode().decode()}
                        for x in tracks[exp_plans[e]["objects"][0]].strings
                    ]
                    for e in order
                ]
            )
        else:
            for o, t in enumerate(tracks):
                fragments.append(
                    f'"{base + o}": '
                    + json.dumps([None if x is None else {"size": [height, width], "counts": x} for x in t.strings])
                )
            if any(p["type_id"] == 2 for p in exp_plans):
                fragments.append(f'"{base + ANNO_SLOTS - 1}": ' + json.dumps([None] * n_frames))
                c["null_masks"] += n_frames
    if chunk.fragment is not None:
        Path(chunk.fragment).write_text(", ".join(fragments))
    return {
        "split": s,
        "first": chunk.first,
        "meta": meta,
        "rvos_masks": rvos_masks,
        "counts": c,
        "samples": samples,
        "fragment": chunk.fragment if fragments else None,
    }


def write_first_frame_jpegs(folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for height, width in FRAME_SIZES:
        Image.new("RGB", (width, height), (96, 96, 96)).save(folder / f"{width}x{height}.jpg", quality=80)


# --------------------------------------------------------------------------------------------
# RefCOCO-style image dataset
# --------------------------------------------------------------------------------------------


def polygon(rng: np.random.Generator, width: int, height: int) -> list[float]:
    k = int(rng.integers(8, 49))
    radius = loguniform(rng, 6, min(width, height) / 2.5)
    cx, cy = rng.uniform(radius * 0.5, width - radius * 0.5), rng.uniform(radius * 0.5, height - radius * 0.5)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=k))
    radii = radius * (0.55 + 0.45 * rng.random(k))
    xs = np.clip(cx + radii * np.cos(angles), 0, width - 0.01)
    ys = np.clip(cy + radii * np.sin(angles), 0, height - 0.01)
    return np.round(np.stack([xs, ys], axis=1).reshape(-1), 2).tolist()


def generate_refcoco(data_root: str, images: int, seed: int) -> dict:
    """refer_seg/refcoco/{instances.json, refs(unc).p} and the (empty) image files; returns counts and samples."""
    rng = np.random.default_rng([seed, 99])
    folder = Path(data_root) / "refer_seg" / "refcoco"
    image_dir = Path(data_root) / "refer_seg" / "coco2014" / "train2014"
    folder.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    image_ids = np.sort(rng.choice(581_921, size=images, replace=False) + 9).tolist()
    splits = rng.choice(4, size=images, p=(0.84, 0.08, 0.04, 0.04))
    split_names = ("train", "val", "testA", "testB")
    coco_images, annotations, refs, samples = [], [], [], []
    ann_id, sent_id = 1000, 0
    c = dict(images=images, annotations=0, crowd=0, refs=0, expressions=0, masks=0)
    for i, image_id in enumerate(image_ids):
        height, width = COCO_SIZES[int(rng.integers(len(COCO_SIZES)))]
        name = f"COCO_train2014_{image_id:012d}.jpg"
        os.mknod(image_dir / name)
        coco_images.append(
            {
                "license": 1,
                "file_name": name,
                "coco_url": "",
                "height": height,
                "width": width,
                "date_captured": "2013-11-14 11:18:45",
                "flickr_url": "",
                "id": image_id,
            }
        )
        n_ann = int(rng.integers(3, 16))
        anns = []
        for _ in range(n_ann):
            ann_id += int(rng.integers(1, 40))
            category = int(rng.integers(1, 91))
            if rng.random() < 0.01:  # crowd region: uncompressed RLE, as COCO stores them
                x0, tops, bottoms, w = blob_track(rng, height, width, 1)
                counts = run_lengths(x0, tops, bottoms, height, width)[0].tolist()
                seg: dict | list = {"counts": counts, "size": [height, width]}
                area = float(sum(counts[1::2]))
                bbox = [float(x0[0]), float(tops.min()), float(w), float(bottoms.max() - tops.min())]
                crowd = 1
                c["crowd"] += 1
            else:
                parts = [polygon(rng, width, height) for _ in range(1 if rng.random() < 0.9 else 2)]
                xs = np.concatenate([np.asarray(p[0::2]) for p in parts])
                ys = np.concatenate([np.asarray(p[1::2]) for p in parts])
                area = 0.0
                for part in parts:  # shoelace
                    px, py = np.asarray(part[0::2]), np.asarray(part[1::2])
                    area += 0.5 * abs(float(px @ py[np.r_[1 : len(py), 0]] - py @ px[np.r_[1 : len(px), 0]]))
                bbox = [
                    round(float(xs.min()), 2),
                    round(float(ys.min()), 2),
                    round(float(xs.max() - xs.min()), 2),
                    round(float(ys.max() - ys.min()), 2),
                ]
                seg, crowd = parts, 0
            anns.append(
                {
                    "segmentation": seg,
                    "area": round(area, 2),
                    "iscrowd": crowd,
                    "image_id": image_id,
                    "bbox": bbox,
                    "category_id": category,
                    "id": ann_id,
                }
            )
        annotations.extend(anns)
        c["annotations"] += n_ann
        referred = rng.choice(n_ann, size=min(n_ann, int(rng.integers(1, 5))), replace=False)
        for k in sorted(referred.tolist()):
            a = anns[k]
            n_sent = 1 + int(rng.poisson(1.84))
            sentences = []
            for _ in range(n_sent):
                raw = sentence(rng, 1).replace("the ", "", 1).capitalize()
                sent = raw.lower()
                sentences.append({"tokens": sent.split(), "raw": raw, "sent_id": sent_id, "sent": sent})
                sent_id += 1
            refs.append(
                {
                    "sent_ids": [x["sent_id"] for x in sentences],
                    "file_name": f"{name[:-4]}_{a['id']}.jpg",
                    "ann_id": a["id"],
                    "ref_id": len(refs),
                    "image_id": image_id,
                    "split": split_names[int(splits[i])],
                    "sentences": sentences,
                    "category_id": a["category_id"],
                }
            )
            c["refs"] += 1
            c["expressions"] += n_sent
            c["masks"] += 1
            if rng.random() < 0.01:  # ground truth from the decoded mask (not from toBbox)
                seg = a["segmentation"]
                rle = (
                    mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
                    if isinstance(seg, list)
                    else mask_utils.frPyObjects(seg, height, width)
                )
                ys_, xs_ = np.nonzero(mask_utils.decode(rle))
                box = (
                    None if len(xs_) == 0 else (int(xs_.min()), int(ys_.min()), int(xs_.max()) + 1, int(ys_.max()) + 1)
                )
                samples.append(
                    [
                        "refcoco",
                        split_names[int(splits[i])],
                        f"{len(refs) - 1}/{sentences[0]['sent_id']}",
                        0,
                        normalised(box, width, height),
                        width,
                        height,
                    ]
                )
    instances = {
        "info": {"description": "benchmark RefCOCO-like world", "version": "1.0", "year": 2014},
        "images": coco_images,
        "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
        "annotations": annotations,
        "categories": [{"supercategory": "thing", "id": k, "name": f"category{k}"} for k in range(1, 91)],
    }
    (folder / "instances.json").write_text(json.dumps(instances))  # dumps: the C encoder (dump is pure Python)
    with open(folder / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle)
    c["split_expressions"] = {
        name: sum(len(r["sentences"]) for r in refs if r["split"] == name) for name in split_names
    }
    return {"counts": c, "samples": samples}


# --------------------------------------------------------------------------------------------
# The whole world, cached
# --------------------------------------------------------------------------------------------


def _job(job):
    kind, arg = job
    return generate_chunk(arg) if kind == "video" else ("refcoco", generate_refcoco(*arg))


def write_meta(path: Path, entries: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"videos": dict(entries)}))


def concatenate_fragments(path: Path, fragments: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        out.write("{")
        first = True
        for fragment in fragments:
            with open(fragment) as handle:
                text = handle.read()
            if not text:
                continue
            out.write(("" if first else ", ") + text)
            first = False
            os.unlink(fragment)
        out.write("}")


def disk_usage(folder: Path) -> tuple[int, int]:
    """(bytes allocated on disk, files) under folder."""
    total, files = 0, 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        total += os.lstat(dirpath).st_blocks * 512
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            files += 1
    return total, files


def generate_world(folder: Path, params: WorldParams, workers: int, report: Report) -> dict:
    base = folder.parent
    started = time.monotonic()
    with staging_dir(base, folder.name) as stage:  # removed on the way out, whatever happens
        data_root = stage / "data"
        jpeg_dir = stage / "first_frames"
        write_first_frame_jpegs(jpeg_dir)
        (stage / "fragments").mkdir()
        splits = plan_splits(params)
        jobs = []
        if params.images:
            jobs.append(("refcoco", (str(data_root), params.images, params.seed)))
        for s in splits:
            target = frames_dir(data_root, s)
            target.mkdir(parents=True, exist_ok=True)
            for first in range(0, s.videos, CHUNK_VIDEOS):
                fragment = None
                if s.annotated and s.dataset != "rvos":
                    fragment = str(stage / "fragments" / f"{s.dataset}_{s.split}_{first:07d}.json")
                jobs.append(
                    (
                        "video",
                        Chunk(
                            s,
                            first,
                            min(CHUNK_VIDEOS, s.videos - first),
                            str(target),
                            fragment,
                            str(jpeg_dir),
                            params.seed,
                            params.expressions_per_video,
                        ),
                    )
                )
        report(
            f"generating {params.name}: {sum(s.videos for s in splits)} videos in {len(jobs)} jobs, {workers} processes ..."
        )
        results = []
        with mp.get_context("fork").Pool(workers) as pool:
            for k, result in enumerate(pool.imap(_job, jobs, chunksize=1)):
                results.append(result)
                if (k + 1) % 50 == 0:
                    log.info("generated %d of %d jobs (%.0f s)", k + 1, len(jobs), time.monotonic() - started)
        world = assemble(data_root, params, splits, results)
        shutil.rmtree(jpeg_dir)
        shutil.rmtree(stage / "fragments")
        world["generation_seconds"] = round(time.monotonic() - started, 1)
        world["disk_bytes"], world["files"] = disk_usage(stage)
        (stage / "world.json").write_text(json.dumps(world, indent=1))
        (stage / COMPLETE).write_text(json.dumps(asdict(params)) + "\n")  # last: marks the world as whole
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(stage, folder)
    report(
        f"generated in {world['generation_seconds']:.0f} s: {world['disk_bytes'] / 2**30:.2f} GiB, {world['files']} files"
    )
    return world


def assemble(data_root: Path, params: WorldParams, splits: list[SplitSpec], results: list) -> dict:
    """Meta files, mask dicts (fragments concatenated; the RVOS pickle), and world.json's description."""
    by_split: dict[tuple[str, str], list] = {}
    world: dict = {"params": asdict(params), "datasets": {}, "samples": []}
    for result in results:
        if isinstance(result, tuple):
            world["datasets"]["refcoco"] = result[1]["counts"]
            world["samples"].extend(result[1]["samples"])
            continue
        by_split.setdefault((result["split"].dataset, result["split"].split), []).append(result)
        world["samples"].extend(result["samples"])
    revos_fragments = []
    video_root = data_root / "video_datas"
    for s in splits:
        parts = sorted(by_split[(s.dataset, s.split)], key=lambda r: r["first"])
        meta = [m for r in parts for m in r["meta"]]
        counts: dict = {}
        for r in parts:
            for key, value in r["counts"].items():
                counts[key] = counts.get(key, 0) + value
        counts["annotated"] = s.annotated
        world["datasets"].setdefault(s.dataset, {})[s.split] = counts
        fragments = [r["fragment"] for r in parts if r["fragment"]]
        if s.dataset == "mevis":
            write_meta(video_root / "mevis" / s.split / "meta_expressions.json", meta)
            if s.annotated:
                concatenate_fragments(video_root / "mevis" / s.split / "mask_dict.json", fragments)
        elif s.dataset == "rvos":
            write_meta(video_root / "rvos" / "meta_expressions" / s.split / "meta_expressions.json", meta)
            if s.annotated:  # keys: a running counter, videos in file order, expression ids sorted as strings
                masks = {}
                for r in parts:
                    for per_video in r["rvos_masks"]:
                        for per_expression in per_video:
                            masks[len(masks)] = per_expression
                with open(video_root / "rvos" / "mask_dict.pkl", "wb") as handle:
                    pickle.dump(masks, handle, protocol=pickle.HIGHEST_PROTOCOL)
                del masks
        else:
            write_meta(video_root / "ReVOS" / f"meta_expressions_{s.split}_.json", meta)
            revos_fragments.extend(fragments)
    if revos_fragments:
        concatenate_fragments(video_root / "ReVOS" / "mask_dict.json", revos_fragments)
    videos = [c for d in VIDEO_DATASETS for c in world["datasets"].get(d, {}).values()]
    world["totals"] = {
        "videos": sum(c["videos"] for c in videos),
        "annotated_videos": sum(c["videos"] for c in videos if c["annotated"]),
        "expressions": sum(c["expressions"] for c in videos),
        "annotated_expressions": sum(c["expressions"] for c in videos if c["annotated"]),
        "video_masks": sum(c["masks"] for c in videos),
        "null_masks": sum(c["null_masks"] for c in videos),
        "frames": sum(c["frames"] for c in videos),
        "frame_files": sum(c["frame_files"] for c in videos),
        "images": world["datasets"].get("refcoco", {}).get("images", 0),
        "image_expressions": world["datasets"].get("refcoco", {}).get("expressions", 0),
        "image_masks": world["datasets"].get("refcoco", {}).get("masks", 0),
    }
    world["totals"]["masks"] = world["totals"]["video_masks"] + world["totals"]["image_masks"]
    return world


def ensure_world(base: Path, params: WorldParams, workers: int, report: Report) -> tuple[Path, dict]:
    """The cached world for these parameters; (re)generated when its COMPLETE marker is missing or stale."""
    folder = base / params.name
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.glob(f".{params.name}.*.staging"):  # a generation that was killed
        shutil.rmtree(stale, ignore_errors=True)
    marker = folder / COMPLETE
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == asdict(params):
                return folder, json.loads((folder / "world.json").read_text())
        except (ValueError, OSError):
            pass
    if folder.exists():
        report(f"{folder.name} is incomplete or stale: regenerating")
    return folder, generate_world(folder, params, workers, report)


# --------------------------------------------------------------------------------------------
# The timed build
# --------------------------------------------------------------------------------------------


class SplitTimes(logging.Handler):
    """When special_jsons logs each written split file: per-dataset times from the log's clock."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.args, tuple) and len(record.args) == 2 and str(record.msg).endswith(": %d records"):
            self.events.append((time.perf_counter(), str(record.args[0]).split("/")[0]))


def warm(data_root: Path) -> int:
    """Read every annotation file once (not the frames), so the timed build starts from a warm page cache."""
    total = 0
    for path in data_root.rglob("*"):
        if path.suffix in (".json", ".pkl", ".p") and path.is_file():
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 24):
                    total += len(chunk)
    return total


def run_build(data_root: Path, out: Path, profile: Path | None) -> dict:
    from sa2va_st.annotations import build_special_jsons
    from sa2va_st.manifests import build_spatial_manifests

    special, manifests = out / "special_jsons", out / "manifests"
    handler = SplitTimes()
    logger = logging.getLogger("sa2va_st.annotations.special_jsons")
    logger.addHandler(handler)
    profiler = cProfile.Profile() if profile else None
    try:
        if profiler:
            profiler.enable()
        t0 = time.perf_counter()
        special_report = build_special_jsons(data_root, special)
        t1 = time.perf_counter()
        spatial_report = build_spatial_manifests(special, data_root, manifests)
        t2 = time.perf_counter()
        if profiler:
            profiler.disable()
    finally:
        logger.removeHandler(handler)
    if profiler:
        profiler.dump_stats(str(profile))
        text = io.StringIO()
        pstats.Stats(str(profile), stream=text).sort_stats("cumulative").print_stats(45)
        pstats.Stats(str(profile), stream=text).sort_stats("tottime").print_stats(30)
        profile.with_suffix(".txt").write_text(text.getvalue())
    per_dataset: dict[str, float] = {}
    last = t0
    for stamp, dataset in handler.events:
        per_dataset[dataset] = per_dataset.get(dataset, 0.0) + stamp - last
        last = stamp
    return {
        "special_s": t1 - t0,
        "spatial_s": t2 - t1,
        "per_dataset": per_dataset,
        "special_report": special_report,
        "spatial_report": spatial_report,
        "special": special,
        "manifests": manifests,
    }


# --------------------------------------------------------------------------------------------
# Checks (not timed)
# --------------------------------------------------------------------------------------------


def check_outputs(world: dict, build: dict) -> list[str]:
    """Problems found comparing the outputs with the world (empty when all agree)."""
    problems = []
    special, spatial = build["special_report"]["datasets"], build["spatial_report"]["datasets"]
    for dataset, splits in world["datasets"].items():
        if dataset == "refcoco":
            records = sum(e["counts"]["records"] for e in special[dataset]["splits"].values())
            if records != splits["expressions"]:
                problems.append(f"refcoco: {records} records, the world has {splits['expressions']} expressions")
            kept = sum(e["kept"] for e in spatial[dataset]["splits"].values())
            if kept != splits["expressions"]:
                problems.append(f"refcoco: manifests kept {kept} of {splits['expressions']}")
            continue
        for split, c in splits.items():
            got = special[dataset]["splits"].get(split)
            if got is None:
                problems.append(f"{dataset}/{split}: no special_jsons split")
                continue
            counts = got["counts"]
            expected = {"records": c["expressions"], "videos": c["videos"], "frames": c["frames"]}
            if c["annotated"]:
                expected["empty_expressions"] = c["empty_expressions"]
            for key, value in expected.items():
                if counts.get(key) != value:
                    problems.append(f"{dataset}/{split}: special_jsons {key} = {counts.get(key)}, expected {value}")
            entry = spatial[dataset]["splits"][split]
            dropped = entry["dropped"]["by_reason"]
            want = {"missing_frames": c["dropped_missing"], "empty_mask": c["dropped_empty"]}
            if entry["kept"] != c["expressions"] - c["dropped_missing"] - c["dropped_empty"] or dropped != want:
                problems.append(
                    f"{dataset}/{split}: manifests kept {entry['kept']}, dropped {dropped}; expected "
                    f"{c['expressions'] - c['dropped_missing'] - c['dropped_empty']}, {want}"
                )
    # sampled boxes, from the generator's geometry (video) or the decoded mask (RefCOCO)
    wanted: dict[tuple[str, str], dict[str, tuple]] = {}
    for dataset, split, rid, frame, box, width, height in world["samples"]:
        wanted.setdefault((dataset, split), {})[rid] = (frame, box, width, height)
    checked = 0
    for (dataset, split), ids in wanted.items():
        doc = json.loads((build["special"] / dataset / f"{split}.json").read_text())
        for r in doc["records"]:
            if dataset == "refcoco":
                rid = f"{r['ref_id']}/{r['sent_id']}"
            else:
                rid = r["id"]
            if rid not in ids:
                continue
            frame, box, width, height = ids.pop(rid)
            got = None if r["boxes"] is None else r["boxes"][frame]
            checked += 1
            if got != box or (r["width"], r["height"]) != (width, height):
                problems.append(
                    f"{dataset}/{split} {rid} frame {frame}: box {got} ({r['width']}x{r['height']}), "
                    f"expected {box} ({width}x{height})"
                )
        if ids:
            problems.append(f"{dataset}/{split}: {len(ids)} sampled records not found")
    world["_checked_boxes"] = checked
    return problems[:20]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--videos",
        type=int,
        default=None,
        help=f"annotated videos over MeViS/Ref-YouTube-VOS/ReVOS (default {SPEC_VIDEOS}; --quick {QUICK_VIDEOS})",
    )
    p.add_argument(
        "--expressions-per-video",
        type=float,
        default=DEFAULT_EPV,
        help=f"mean expressions per video (default {DEFAULT_EPV:g})",
    )
    p.add_argument(
        "--images",
        type=int,
        default=None,
        help=f"RefCOCO-style images, 0 for none (default {DEFAULT_IMAGES}; --quick {QUICK_IMAGES})",
    )
    p.add_argument(
        "--unannotated-share",
        type=float,
        default=0.05,
        help="unannotated videos (mevis valid, rvos valid) on top, as a share of the dataset (default 0.05)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_VIDEOS} videos, {QUICK_IMAGES} images (does NOT meet the spec)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="generation processes (default 2)")
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="world cache and build outputs (default results/benchmarks/manifests)",
    )
    p.add_argument("--keep-outputs", action="store_true", help="keep {out}/build (special_jsons + manifests)")
    p.add_argument("--profile", action="store_true", help="run the build under cProfile: {out}/build.prof and .txt")
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    p.add_argument("--log", type=Path, default=DEFAULT_LOG)
    args = p.parse_args(argv)
    args.videos = args.videos if args.videos is not None else (QUICK_VIDEOS if args.quick else SPEC_VIDEOS)
    args.images = args.images if args.images is not None else (QUICK_IMAGES if args.quick else DEFAULT_IMAGES)
    if args.videos < 10 or args.expressions_per_video < 1 or args.images < 0 or not 0 <= args.unannotated_share <= 1:
        p.error("--videos >= 10, --expressions-per-video >= 1, --images >= 0, 0 <= --unannotated-share <= 1")
    for name in ("out", "report", "log"):
        path = getattr(args, name)
        setattr(args, name, path if path.is_absolute() else ROOT / path)
    return args


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "-"


def main(argv=None) -> int:
    args = parse_args(argv)
    log_to_file(args.log)
    report = Report()
    started = time.monotonic()

    params = WorldParams(args.videos, args.expressions_per_video, args.images, args.unannotated_share, args.seed)
    report(
        f"benchmark manifests: {args.videos} annotated videos, {args.expressions_per_video:g} expressions/video, "
        f"{args.images} RefCOCO images"
    )
    report(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs; python {platform.python_version()}; numpy {np.__version__}"
    )
    folder, world = ensure_world(args.out, params, args.workers, report)
    data_root = folder / "data"
    t = world["totals"]
    meets = t["annotated_videos"] >= SPEC_VIDEOS and t["annotated_expressions"] >= SPEC_EXPRESSIONS
    shown = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    report(
        f"world: {shown} (generated in {world['generation_seconds']:.0f} s; {world['disk_bytes'] / 2**30:.2f} GiB, "
        f"{world['files']:,} files)"
    )
    for dataset in VIDEO_DATASETS:
        for split, c in world["datasets"].get(dataset, {}).items():
            report(
                f"  {dataset + '/' + split:<14} {c['videos']:>6} videos {c['expressions']:>7} expressions "
                f"{c['frames']:>8} frames {c['masks']:>9} masks ({c['null_masks']} null, "
                f"{c['mask_chars'] / max(1, c['masks']):.0f} chars each)" + ("" if c["annotated"] else "  unannotated")
            )
    if "refcoco" in world["datasets"]:
        c = world["datasets"]["refcoco"]
        report(
            f"  {'refcoco':<14} {c['images']:>6} images {c['expressions']:>7} expressions {c['annotations']:>8} "
            f"annotations ({c['crowd']} crowd RLE) {c['refs']} refs"
        )
    report(
        f"totals: {t['videos']} videos ({t['annotated_videos']} annotated), {t['expressions']} video expressions "
        f"({t['annotated_expressions']} with masks), {t['frames']:,} frames, {t['video_masks']:,} video masks; "
        f"{t['images']} images, {t['image_expressions']} image expressions"
        + (
            ""
            if meets
            else f"  ** QUICK/SMALL RUN: does NOT meet the spec (>= {SPEC_VIDEOS} videos, "
            f">= {SPEC_EXPRESSIONS} expressions with masks) **"
        )
    )

    warmed = warm(data_root)
    report(f"page cache warmed: {warmed / 2**30:.2f} GiB of annotation files read")
    out = args.out / "build"
    if out.exists():
        shutil.rmtree(out)
    build = run_build(data_root, out, args.out / "build.prof" if args.profile else None)
    problems = check_outputs(world, build)

    special_s, spatial_s = build["special_s"], build["spatial_s"]
    total_s = special_s + spatial_s
    expressions = t["expressions"] + t["image_expressions"]
    masks = t["masks"]
    report()
    report(
        "build (one process; masks/s and expressions/s = the world's counts over the stage's seconds)"
        + (" under cProfile" if args.profile else "")
    )
    report(f"{'stage':<42} {'seconds':>8} {'masks':>10} {'masks/s':>10} {'expressions':>12} {'expr/s':>9}")
    report(
        f"{'special_jsons (raw -> boxes, write)':<42} {special_s:>8.1f} {masks:>10,} {rate(masks, special_s):>10} "
        f"{expressions:>12,} {rate(expressions, special_s):>9}"
    )
    for dataset, seconds in build["per_dataset"].items():
        if dataset == "refcoco":
            m, e = t["image_masks"], t["image_expressions"]
        else:
            m = sum(c["masks"] for c in world["datasets"][dataset].values())
            e = sum(c["expressions"] for c in world["datasets"][dataset].values())
        report(
            f"{'  of which ' + dataset:<42} {seconds:>8.1f} {m:>10,} {rate(m, seconds):>10} {e:>12,} {rate(e, seconds):>9}"
        )
    report(
        f"{'spatial manifests (validate, list, write)':<42} {spatial_s:>8.1f} {masks:>10,} {rate(masks, spatial_s):>10} "
        f"{expressions:>12,} {rate(expressions, spatial_s):>9}"
    )
    report(
        f"{'total':<42} {total_s:>8.1f} {masks:>10,} {rate(masks, total_s):>10} {expressions:>12,} {rate(expressions, total_s):>9}"
    )
    report(
        f"target: build <= {TARGET_SECONDS:g} s: {'PASS' if total_s <= TARGET_SECONDS else 'MISS'}"
        + ("" if meets else " (small run)")
    )
    kept = build["spatial_report"]["totals"]
    report(
        f"manifests: {kept['rows_in']:,} rows in, {kept['kept']:,} kept, {kept['dropped']:,} dropped; "
        f"{world['_checked_boxes']} sampled boxes checked against the generator's geometry"
    )
    if problems:
        for problem in problems:
            report(f"CHECK FAILED: {problem}")
    if args.profile:
        report(f"profile: {args.out / 'build.prof'} (top functions in {args.out / 'build.txt'})")
    if not args.keep_outputs:
        shutil.rmtree(out, ignore_errors=True)
    report(f"total run time {time.monotonic() - started:.0f} s")
    report(
        f"RESULT seconds={total_s:.1f} videos={t['videos']} expressions={t['expressions']} masks={masks} "
        f"masks_per_s={masks / total_s:.0f} image_expressions={t['image_expressions']} images={t['images']}"
    )
    report.save(args.report)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
