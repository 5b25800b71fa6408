#!/usr/bin/env python
"""CLIP feature extraction: our overlapped pipeline against the upstream two-step method.

One run, on the same synthetic videos (>= 20 videos, >= 5 minutes by default), measures
four paths in each of two regimes:

(a) ours      `sa2va_st.features.pipeline.extract_shard`: decode + uint8 resize/crop in
              DataLoader worker processes, encoding batched across video boundaries in
              the main process, one float16 .npy per video (fresh out_dir each time).
(b) baseline  upstream's method, re-implemented: step 1 decodes every video (PyAV, FFmpeg's
              automatic decoder threads, as the ffmpeg CLI uses) and writes the frame nearest
              to each i/fps as a JPEG (PIL, quality 95); step 2 opens each video's JPEGs with
              PIL, applies open_clip's own preprocess transform, encodes in batches of 32,
              L2-normalises and saves one file per video (np.save of float32; upstream used
              torch.save of a .pt, which costs the same). Both steps are timed together.
(bP) baseline, equal processes: the same two-step method in as many processes as ours uses
              (its decode workers + its main process), the videos split between them (balanced
              by frames), one torch thread each; timed from the first process start to the last
              one's end. Ours must beat this one too: its gain is not just "more processes".
(c) decode    the same DataLoader/worker decode path as (a) (the pipeline's own dataset and
              worker code), plus normalisation; no encoder.
(d) encode    the encoder alone on pre-decoded, pre-normalised tensors of the same frames,
              same batch size, `torch.inference_mode`.

Regimes: ``encode`` = ViT-B-32 (random init, fixed seed; encode-bound, as a CPU is) and
``decode`` = a tiny open_clip ViT (32x32 input) standing in for a GPU-fast encoder
(decode-bound, as a GPU node is). Within a regime every path uses the same model object.

It also checks that (a) and an unbatched reference (PyAV decode of the chosen frames, open_clip's
PIL preprocess, one image per forward) give the same features: min cosine >= 0.999, else exit 1.
The check runs on its own short videos whose every frame is a different random picture, so that
the check has teeth: the same reference one source frame off (the bug a wrong frame rule makes)
must score far below the threshold, else the check itself fails. Cosines are taken after removing
each video's mean embedding (`centred_cosines`: a random-init encoder puts every picture near one
direction, where raw cosines of unrelated frames are ~0.99): min >= 0.999 for the same frames, max
<= 0.9 for frames one apart (a margin 100x the tolerance).

Frames = features (sum of T over the videos; at 10 fps from 24-30 fps sources every feature
is a distinct source frame). The last printed line is::

    RESULT decode_bound_speedup=<a/b> decode_bound_speedup_equal_procs=<a/bP> encode_bound_speedup=<a/b>
           encode_bound_speedup_equal_procs=<a/bP> overhead_decode_bound=<t_a/max(t_c,t_d)> overhead_encode_bound=<same>

Usage (from the repository root)::

    .venv/bin/python benchmarks/clip_features.py            # the spec size: 20 videos, 5 minutes
    .venv/bin/python benchmarks/clip_features.py --quick    # smoke run (does NOT meet the spec)

Writes the tables + RESULT to results/benchmarks/clip_features.txt and a log to
results/logs/benchmark_clip_features.log. Videos are cached in results/benchmarks/clip_videos/.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from _report import Report, log_to_file
from sa2va_st.atomic import staging_dir

ROOT = Path(__file__).resolve().parents[1]  # repository root: default paths are relative to it
DEFAULT_VIDEO_DIR = Path("results/benchmarks/clip_videos")
DEFAULT_REPORT = Path("results/benchmarks/clip_features.txt")
DEFAULT_LOG = Path("results/logs/benchmark_clip_features.log")

SPEC_VIDEOS, SPEC_MINUTES = 20, 5.0
QUICK_VIDEOS, QUICK_MINUTES = 4, 0.5
COSINE_MIN = 0.999
TARGET_DECODE_SPEEDUP, TARGET_ENCODE_SPEEDUP, TARGET_OVERHEAD = 2.0, 1.0, 1.1
# A one-frame shift must score at most this (centred): 1 - 0.9 is 100x the tolerance of the check itself.
SHIFT_COSINE_MAX = 0.9
CHECK_FORMAT_VERSION = 2
BASELINE_BATCH = 32  # upstream's batch size
JPEG_QUALITY = 95
VIDEO_FORMAT_VERSION = 1  # bump when the generator changes: cached videos are then rebuilt

log = logging.getLogger("benchmark.clip_features")


# --------------------------------------------------------------------------------------------
# Synthetic Charades-like videos (cached)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoPlan:
    vid: str
    width: int
    height: int
    fps: int
    frames: int
    seed: int


def plan_videos(count: int, minutes: float, seed: int) -> list[VideoPlan]:
    """`count` videos whose durations vary (0.4x..1.6x the mean) and sum to at least `minutes`.

    480p like Charades_v1_480 (640x480 or 854x480), frame rates 24/25/30 mixed.
    """
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.4, 1.6, size=count)
    seconds = weights / weights.sum() * minutes * 60.0
    rates = [(24, 25, 30)[i % 3] for i in range(count)]
    rng.shuffle(rates)
    sizes = [((640, 480), (854, 480))[i % 2] for i in range(count)]
    plans = []
    for i in range(count):
        fps = int(rates[i])
        frames = max(1, math.ceil(seconds[i] * fps))
        plans.append(VideoPlan(f"bench{i:03d}", *sizes[i], fps, frames, seed * 1000 + i))
    return plans


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth, coloured 'room' with fine grain: (height, width, 3) uint8."""
    coarse = rng.integers(20, 235, size=(max(2, height // 24), max(2, width // 24), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
    medium = rng.integers(0, 255, size=(max(2, height // 4), max(2, width // 4), 3), dtype=np.uint8)
    detail = np.asarray(Image.fromarray(medium).resize((width, height), Image.BILINEAR), dtype=np.int16) - 127
    return np.clip(smooth + detail // 6, 0, 255).astype(np.uint8)


def render_frames(plan: VideoPlan):
    """Frames of a hand-held home video: a panning textured scene, moving objects, sensor noise."""
    rng = np.random.default_rng(plan.seed)
    margin_y, margin_x = plan.height // 3, plan.width // 3
    scene = _texture(rng, plan.height + 2 * margin_y, plan.width + 2 * margin_x)
    noise = [rng.integers(-6, 7, size=(plan.height, plan.width, 3), dtype=np.int16) for _ in range(7)]
    pan = rng.uniform(3.0, 9.0, size=4)  # periods of the camera's drift (s)
    objects = []
    for _ in range(int(rng.integers(2, 5))):
        size = int(rng.integers(plan.height // 8, plan.height // 3))
        objects.append(
            (
                size,
                rng.integers(30, 255, size=3).astype(np.int16),
                rng.uniform(2.0, 8.0, size=2),  # periods (s) of the x / y motion
                rng.uniform(0, 2 * np.pi, size=2),
            )
        )
    for k in range(plan.frames):
        t = k / plan.fps
        oy = int(margin_y + margin_y * 0.9 * math.sin(2 * math.pi * t / pan[0]) * math.cos(t / pan[1]))
        ox = int(margin_x + margin_x * 0.9 * math.sin(2 * math.pi * t / pan[2] + 1.0) * math.cos(t / pan[3]))
        image = scene[oy : oy + plan.height, ox : ox + plan.width].astype(np.int16)
        for size, colour, periods, phases in objects:
            x = int((plan.width - size) * (0.5 + 0.5 * math.sin(2 * math.pi * t / periods[0] + phases[0])))
            y = int((plan.height - size) * (0.5 + 0.5 * math.sin(2 * math.pi * t / periods[1] + phases[1])))
            image[y : y + size, x : x + size] = colour
            image[y + size // 4 : y + size // 2, x : x + size] //= 2  # some structure inside the object
        image += noise[k % len(noise)]
        image += int(6 * math.sin(2 * math.pi * t / 4.0))  # slow auto-exposure flicker
        yield np.clip(image, 0, 255).astype(np.uint8)


def encode_video(plan: VideoPlan, path: Path) -> dict:
    """H.264 (libx264 'medium', crf 23: what ffmpeg does by default), yuv420p, MP4, B-frames on."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=plan.fps, options={"preset": "medium", "crf": "23", "threads": "1"}
        )
        stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, "yuv420p"
        for image in render_frames(plan):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return {
        "vid": plan.vid,
        "file": path.name,
        "width": plan.width,
        "height": plan.height,
        "fps": plan.fps,
        "frames": plan.frames,
        "seconds": plan.frames / plan.fps,
        "bytes": path.stat().st_size,
    }


def _encode_job(args: tuple[VideoPlan, str]) -> dict:
    plan, folder = args
    return encode_video(plan, Path(folder) / f"{plan.vid}.mp4")


def ensure_videos(base: Path, count: int, minutes: float, seed: int, report: Report) -> tuple[Path, list[dict]]:
    """The cached videos for these parameters; built (in 2 processes, atomically) when missing or incomplete."""
    params = {"count": count, "minutes": minutes, "seed": seed, "format": VIDEO_FORMAT_VERSION}
    folder = base / f"n{count}_min{minutes:g}_seed{seed}"
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest["params"] == params and all(
                (folder / v["file"]).is_file() and (folder / v["file"]).stat().st_size == v["bytes"]
                for v in manifest["videos"]
            ):
                return folder, manifest["videos"]
        except (ValueError, KeyError, OSError):
            pass
        report(f"cached videos in {folder} are incomplete or stale: rebuilding")
    plans = plan_videos(count, minutes, seed)
    total = sum(p.frames / p.fps for p in plans)
    report(
        f"generating {count} videos ({total / 60:.2f} min, {sum(p.frames for p in plans)} frames) into {folder.name} ..."
    )
    started = time.monotonic()
    with staging_dir(base, folder.name) as stage:  # removed on the way out, whatever happens
        # fork: the generator uses numpy/PIL/PyAV only, no torch threads exist yet
        with mp.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
            order = sorted(plans, key=lambda p: -p.frames)  # longest first balances the two processes
            done = {v["vid"]: v for v in pool.imap_unordered(_encode_job, [(p, str(stage)) for p in order])}
        videos = [done[p.vid] for p in plans]
        (stage / "manifest.json").write_text(json.dumps({"params": params, "videos": videos}, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(stage, folder)
    report(f"generated in {time.monotonic() - started:.0f} s")
    return folder, videos


# --------------------------------------------------------------------------------------------
# Models (one object per regime, shared by every path)
# --------------------------------------------------------------------------------------------


@dataclass
class Regime:
    key: str  # "decode" or "encode"
    title: str
    model: object
    cfg: object  # sa2va_st PreprocessConfig
    pil_transform: object  # open_clip's own preprocess (PIL image -> normalised tensor)
    results: dict = field(default_factory=dict)


def build_regime(key: str, workdir: Path, seed: int) -> Regime:
    import open_clip
    import torch
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from sa2va_st.features.clip_model import load_clip
    from sa2va_st.features.preprocess import PreprocessConfig
    from sa2va_st.testing.tiny import save_tiny_preset

    if key == "encode":
        torch.manual_seed(seed)
        logging.disable(logging.WARNING)  # "No pretrained weights loaded": random init is the point
        try:
            model, _, transform = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
        finally:
            logging.disable(logging.NOTSET)
        model.eval()
        cfg = PreprocessConfig.from_open_clip(model.visual.preprocess_cfg)
        title = "encode-bound: ViT-B-32 (random init, 224x224 input, 512-d)"
    elif key == "decode":
        folder = save_tiny_preset(workdir / "tiny_clip", seed, ["clip"])["clip"]
        model, cfg = load_clip("tiny", str(folder))
        transform = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
        title = "decode-bound: tiny open_clip ViT (random init, 32x32 input, 32-d) standing in for a GPU-fast encoder"
    else:
        raise ValueError(f"unknown regime {key!r}")
    return Regime(key, title, model, cfg, transform)


# --------------------------------------------------------------------------------------------
# The four paths
# --------------------------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: float
    frames: int
    parts: dict = field(default_factory=dict)  # path-specific numbers that add up over rounds
    note: str = ""

    def describe(self) -> str:
        p = self.parts
        if "step1_s" in p:
            text = (
                f"step 1 (decode + JPEG) {p['step1_s']:.1f} s, step 2 (PIL + preprocess + encode) "
                f"{p['step2_s']:.1f} s; {p['jpeg_mb']:.0f} MB of JPEG"
            )
        elif "processes" in p:
            text = f"{p['processes']:.0f} processes, the busiest {p['busiest_s']:.1f} s"
        elif "timed_frames" in p:
            text = f"{p['timed_frames']:.0f} of {self.frames} frames timed, scaled up"
        else:
            text = ""
        return "; ".join(x for x in (self.note, text) if x)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def sources(folder: Path, videos: list[dict]):
    from sa2va_st.features.sharding import VideoSource

    return [VideoSource(v["vid"], folder / v["file"]) for v in videos]


def run_ours(regime: Regime, srcs, fps: float, batch: int, workers: int, out_dir: Path, threads=None) -> Timing:
    from sa2va_st.features.pipeline import extract_shard

    started = time.perf_counter()
    rows = extract_shard(
        srcs,
        out_dir,
        fps,
        (regime.model, regime.cfg),
        batch_size=batch,
        num_workers=workers,
        max_failed_fraction=0.0,
        progress=False,
        encoder_threads=threads,
    )
    seconds = time.perf_counter() - started
    failed = [r.vid for r in rows if r.status != "ok"]
    if failed:
        raise RuntimeError(f"ours failed on {failed}")
    return Timing(seconds, sum(int(r.T) for r in rows))


def _baseline_frames_to_jpeg(path: Path, fps: float, out: Path) -> int:
    """Upstream step 1 for one video: decode everything, write the frame nearest to each i/fps as JPEG.

    The choice is made online as frames come out of the decoder (presentation order), with the
    same rule as ours (nearest; ties to the earlier frame; samples up to the stream's end).
    """
    from sa2va_st.features.timing import TIME_TOLERANCE_S

    out.mkdir(parents=True, exist_ok=True)
    written = 0

    def save(frame) -> None:
        nonlocal written
        frame.to_image().save(out / f"{written:06d}.jpg", quality=JPEG_QUALITY)
        written += 1

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg's automatic threading, as the ffmpeg CLI does
        time_base = stream.time_base
        first = previous = None
        previous_t = 0.0
        t = duration = 0.0
        for frame in container.decode(stream):
            if first is None:
                first = frame.pts
            t = float((frame.pts - first) * time_base)
            while written / fps <= t:  # sample i lies at or before this frame (so between previous and this one)
                s = written / fps
                if previous is None or (t - s) < (s - previous_t) - TIME_TOLERANCE_S:
                    save(frame)
                else:
                    save(previous)
            previous, previous_t = frame, t
            duration = float(frame.duration * time_base) if frame.duration else 0.0
        end = t + duration
        while previous is not None and written / fps < end - TIME_TOLERANCE_S:
            save(previous)  # sample times past the last frame take the last frame
    return written


def run_baseline(regime: Regime, srcs, fps: float, work: Path) -> Timing:
    import torch
    import torch.nn.functional as F

    jpeg_root, out_dir = work / "jpeg", work / "features"
    out_dir.mkdir(parents=True)
    started = time.perf_counter()
    frames = 0
    for src in srcs:  # step 1: videos -> JPEG files
        frames += _baseline_frames_to_jpeg(src.path, fps, jpeg_root / src.vid)
    step1 = time.perf_counter() - started
    jpeg_bytes = sum(f.stat().st_size for f in jpeg_root.rglob("*.jpg"))
    with torch.inference_mode():  # step 2: JPEG files -> features, video by video
        for src in srcs:
            files = sorted((jpeg_root / src.vid).glob("*.jpg"))
            features = []
            for start in range(0, len(files), BASELINE_BATCH):
                images = [
                    regime.pil_transform(Image.open(f).convert("RGB")) for f in files[start : start + BASELINE_BATCH]
                ]
                embeddings = regime.model.encode_image(torch.stack(images))
                features.append(F.normalize(embeddings.float(), dim=-1))
            np.save(out_dir / f"{src.vid}.npy", torch.cat(features).numpy())
    seconds = time.perf_counter() - started
    shutil.rmtree(jpeg_root)
    return Timing(seconds, frames, {"step1_s": step1, "step2_s": seconds - step1, "jpeg_mb": jpeg_bytes / 1e6})


_FORKED_REGIME: Regime | None = None  # the model the forked baseline processes share (copy-on-write)


def _baseline_process(group: list, fps: float, work: str) -> Timing:
    import torch

    torch.set_num_threads(1)  # one core per process, as each of ours has
    return run_baseline(_FORKED_REGIME, group, fps, Path(work))


def split_balanced(srcs, videos_by_vid: dict, parts: int) -> list[list]:
    """`srcs` in `parts` groups of nearly equal frame counts (longest first, each to the lightest group)."""
    groups: list[list] = [[] for _ in range(parts)]
    loads = [0] * parts
    for src in sorted(srcs, key=lambda s: -videos_by_vid[s.vid]["frames"]):
        k = loads.index(min(loads))
        groups[k].append(src)
        loads[k] += videos_by_vid[src.vid]["frames"]
    return [g for g in groups if g]


def run_baseline_parallel(regime: Regime, srcs, fps: float, work: Path, processes: int, videos_by_vid) -> Timing:
    """(bP): the baseline in `processes` forked processes (fork, as the DataLoader starts ours), videos split."""
    global _FORKED_REGIME
    _FORKED_REGIME = regime
    groups = split_balanced(srcs, videos_by_vid, processes)
    jobs = [(group, fps, str(work / f"p{k}")) for k, group in enumerate(groups)]
    started = time.perf_counter()
    try:
        with mp.get_context("fork").Pool(len(groups)) as pool:
            parts = pool.starmap(_baseline_process, jobs)
    finally:
        _FORKED_REGIME = None
    seconds = time.perf_counter() - started
    busiest = max(t.seconds for t in parts)
    return Timing(seconds, sum(t.frames for t in parts), {"processes": len(groups), "busiest_s": busiest})


def run_decode_only(regime: Regime, srcs, fps: float, workers: int, empty_dir: Path, keep: bool):
    """(c): the pipeline's own DataLoader + worker code (probe, frame choice, decode, uint8 resize/crop),
    then normalisation in the main process, as ours does before encoding. Returns the timing and the crops."""
    from torch.utils.data import DataLoader

    from sa2va_st.features import pipeline
    from sa2va_st.features.clip_model import embedding_dim
    from sa2va_st.features.preprocess import normalize

    dim = embedding_dim(regime.model, regime.cfg)
    settings = pipeline.DecodeSettings(empty_dir, float(fps), regime.cfg, dim, "auto", threads=1 if workers else 0)
    loader = DataLoader(
        pipeline.ShardVideos(srcs, settings),
        batch_size=None,
        num_workers=workers,
        collate_fn=getattr(pipeline, "_keep_items", None),
        worker_init_fn=getattr(pipeline, "_worker_init", None) if workers else None,
    )
    crops, frames = [], 0
    started = time.perf_counter()
    for item in loader:
        if item.crops is None:
            raise RuntimeError(f"decode-only failed on {item.row.vid}: {item.row.error}")
        normalize(item.crops, regime.cfg)
        frames += int(item.row.T)
        if keep:
            crops.append(item.crops[item.index] if item.crops.shape[0] != item.index.shape[0] else item.crops)
    return Timing(time.perf_counter() - started, frames), crops


def run_encode_only(regime: Regime, crops: list, batch: int, fraction: float) -> Timing:
    """(d): the encoder on pre-decoded, pre-normalised batches (built before the clock starts).

    With `fraction` < 1 only that share of the batches (spread evenly over the frames) is timed and
    the time is scaled up to all frames: a saving for the slow encoder, whose speed per batch is flat.
    """
    import torch

    from sa2va_st.features.clip_model import encode_images, input_dtype
    from sa2va_st.features.preprocess import normalize

    every = torch.cat(crops)  # (N, 3, h, w) uint8
    total = every.shape[0]
    starts = list(range(0, total, batch))
    if fraction < 1.0:
        keep = max(1, round(len(starts) * fraction))
        starts = [starts[int(i)] for i in np.linspace(0, len(starts) - 1, num=keep).round()]
    dtype = input_dtype(regime.model)
    batches = [normalize(every[s : s + batch], regime.cfg, dtype=dtype) for s in starts]
    used = sum(b.shape[0] for b in batches)
    del every
    with torch.inference_mode():
        encode_images(regime.model, batches[0][:2])  # warm-up outside the clock
        started = time.perf_counter()
        for pixels in batches:
            encode_images(regime.model, pixels).cpu().numpy()
        seconds = time.perf_counter() - started
    if used < total:
        return Timing(seconds * total / used, total, {"timed_frames": used})
    return Timing(seconds, total)


# --------------------------------------------------------------------------------------------
# Equivalence: (a) against an unbatched reference
# --------------------------------------------------------------------------------------------


CHECK_RATES = (24, 25, 30)


def check_frame(seed: int, k: int, width: int, height: int) -> np.ndarray:
    """Frame k of a check video: a fresh coarse random picture (so any two frames differ, even after the
    encoder's resize to 32 px): (height, width, 3) uint8."""
    rng = np.random.default_rng([seed, k])
    coarse = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))


def ensure_check_videos(base: Path, seed: int) -> tuple[Path, list[dict]]:
    """Three 3-second videos (24, 25, 30 fps; 320x240) of all-different frames, cached like the others."""
    folder = base / f"check_v{CHECK_FORMAT_VERSION}_seed{seed}"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return folder, json.loads(manifest.read_text())
    with staging_dir(base, folder.name) as stage:
        videos = []
        for k, fps in enumerate(CHECK_RATES):
            vid, frames = f"check{k}", 3 * fps
            with av.open(str(stage / f"{vid}.mp4"), "w") as container:
                stream = container.add_stream("libx264", rate=fps, options={"preset": "medium", "crf": "18"})
                stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
                for i in range(frames):
                    picture = av.VideoFrame.from_ndarray(check_frame(seed * 100 + k, i, 320, 240), format="rgb24")
                    for packet in stream.encode(picture):
                        container.mux(packet)
                for packet in stream.encode(None):
                    container.mux(packet)
            videos.append({"vid": vid, "file": f"{vid}.mp4", "fps": fps, "frames": frames})
        (stage / "manifest.json").write_text(json.dumps(videos))
        os.replace(stage, folder)
    return folder, videos


def reference_features(regime: Regime, path: Path, fps: float):
    """Independent of our decode path: PyAV decodes every frame, the timing rule chooses, open_clip's PIL
    transform preprocesses, one image per forward. Returns (T, D) unit rows of the chosen frames, and of the
    frames one source frame later (the last frame stays itself)."""
    import torch
    import torch.nn.functional as F

    from sa2va_st.features import timing

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [(frame.pts, frame.duration, frame.to_image()) for frame in container.decode(stream)]
        time_base = Fraction(stream.time_base)
    decoded.sort(key=lambda d: d[0])
    times = timing.frame_times_from_pts([d[0] for d in decoded], time_base)
    duration = timing.stream_duration(times, float((decoded[-1][1] or 0) * time_base))
    chosen = timing.choose_frames(times, duration, fps)  # (T,)
    cache: dict[int, np.ndarray] = {}

    def embed(k: int) -> np.ndarray:
        if k not in cache:
            pixels = regime.pil_transform(decoded[k][2]).unsqueeze(0)
            cache[k] = F.normalize(regime.model.encode_image(pixels).float(), dim=-1)[0].numpy()
        return cache[k]

    with torch.inference_mode():
        same = np.stack([embed(int(k)) for k in chosen])
        shifted = np.stack([embed(min(int(k) + 1, len(decoded) - 1)) for k in chosen])
    return same, shifted


def centred_cosines(ours: np.ndarray, reference: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Row-wise cosine after removing the video's mean reference embedding from both sides.

    A random-init encoder maps every picture near one common direction (raw cosines of unrelated frames
    are ~0.99 here), so the raw cosine cannot tell a frame from its neighbour; what is left after
    removing that direction is the frame's own part, and two different frames' own parts are unrelated.
    """
    a, b = ours - mean, reference - mean
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def check_equivalence(regime: Regime, args, work: Path) -> dict:
    """Ours (a) on the check videos against the unbatched reference: the min (centred) cosine over every
    feature; as the control, the max (centred) cosine of ours against the reference one source frame later."""
    folder, videos = ensure_check_videos(args.video_dir, args.seed)
    srcs = sources(folder, videos)
    out = fresh_dir(work, regime.key, "check")
    run_ours(regime, srcs, args.fps, args.batch_size, args.num_workers, out)
    raw, same, shifted = [], [], []
    for src in srcs:
        reference, off_by_one = reference_features(regime, src.path, args.fps)
        ours = np.load(out / f"{src.vid}.npy").astype(np.float32)  # (T, D) float16 on disk
        if ours.shape != reference.shape:
            raise RuntimeError(f"{src.vid}: ours has shape {ours.shape}, the reference rule {reference.shape}")
        ours /= np.linalg.norm(ours, axis=1, keepdims=True)
        raw.extend((ours * reference).sum(axis=1).tolist())
        mean = reference.mean(axis=0)
        same.extend(centred_cosines(ours, reference, mean).tolist())
        shifted.extend(centred_cosines(ours, off_by_one, mean)[:-1].tolist())  # the last row has no later frame
    shutil.rmtree(out)
    return {
        "videos": len(srcs),
        "frames": len(same),
        "min_cos": float(min(same)),
        "min_raw_cos": float(min(raw)),
        "shift_max": float(max(shifted)),
        "shift_median": float(np.median(shifted)),
    }


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def schedule(regime_key: str, srcs, args) -> tuple[list[list], str]:
    """The groups of videos each path runs on, and how their timings combine.

    The machine's speed drifts by up to 2x over minutes (a shared VM: ViT-B-32 batches measured
    between 10 and 19 frames/s back to back), so no path may own a quiet or a busy minute:
    - decode-bound (each pass is short): every path runs `repeats` times over all videos, in a
      rotated order, and the median pass counts;
    - encode-bound (each pass takes minutes): the videos are split into `rounds` groups (spread by
      length), every path runs once per group in a rotated order, and the times add up.
    """
    if regime_key == "decode":
        return [list(srcs)] * max(1, args.repeats), "median"
    rounds = max(1, min(args.rounds, len(srcs)))
    return [list(srcs[r::rounds]) for r in range(rounds)], "sum"


def combine(timings: list[Timing], how: str) -> Timing:
    if how == "sum":
        parts = {key: sum(t.parts[key] for t in timings) for key in timings[0].parts}
        rounds = f"rounds {' + '.join(f'{t.seconds:.1f}' for t in timings)} s"
        return Timing(sum(t.seconds for t in timings), sum(t.frames for t in timings), parts, rounds)
    ordered = sorted(timings, key=lambda t: t.seconds)
    middle = ordered[len(ordered) // 2]
    spread = f"median of passes {', '.join(f'{t.seconds:.1f}' for t in timings)} s"
    return Timing(middle.seconds, middle.frames, middle.parts, spread)


def run_regime(regime: Regime, srcs, videos, args, report: Report, work: Path) -> None:
    import torch

    report()
    report(f"== regime {regime.key}: {regime.title}")
    t0 = time.monotonic()
    groups, how = schedule(regime.key, srcs, args)
    default_threads = torch.get_num_threads()
    # (c) and (d) run back to back: (d) encodes the crops (c) decoded. a1 (a diagnostic, not in
    # RESULT): ours with the main process's torch threads fixed at torch's default (the cores), to show
    # what EncoderThreads saves when encoder and decoders share the CPU.
    units = ["b", "bP", "a", "a1", "cd"] if regime.key == "decode" and args.diagnose else ["b", "bP", "a", "cd"]
    fraction = 1.0 if regime.key == "decode" else args.encode_only_fraction
    runs: dict[str, list[Timing]] = {k: [] for k in ("a", "a1", "b", "bP", "c", "d")}
    videos_by_vid = {v["vid"]: v for v in videos}
    processes = args.num_workers + 1  # ours: its decode workers and its main process
    for r, group in enumerate(groups):
        order = units[r % len(units) :] + units[: r % len(units)]
        log.info("pass %d/%d: %d videos, order %s", r + 1, len(groups), len(group), order)
        for unit in order:
            if unit == "b":
                runs["b"].append(run_baseline(regime, group, args.fps, fresh_dir(work, regime.key, "baseline")))
            elif unit == "bP":
                work_p = fresh_dir(work, regime.key, "baseline_procs")
                runs["bP"].append(run_baseline_parallel(regime, group, args.fps, work_p, processes, videos_by_vid))
                shutil.rmtree(work_p)
            elif unit in ("a", "a1"):
                out_dir = fresh_dir(work, regime.key, "ours")
                threads = default_threads if unit == "a1" else None
                runs[unit].append(
                    run_ours(regime, group, args.fps, args.batch_size, args.num_workers, out_dir, threads)
                )
                shutil.rmtree(out_dir)
            else:
                timing_c, crops = run_decode_only(
                    regime, group, args.fps, args.num_workers, fresh_dir(work, regime.key, "decode"), keep=True
                )
                runs["c"].append(timing_c)
                runs["d"].append(run_encode_only(regime, crops, args.batch_size, fraction))
                del crops
            for k in ("c", "d") if unit == "cd" else (unit,):
                log.info(
                    "  (%s) %.1f s, %d frames %s", k, runs[k][-1].seconds, runs[k][-1].frames, runs[k][-1].describe()
                )
    results = regime.results
    for k, timings in runs.items():
        if timings:
            results[k] = combine(timings, how)
    if len({results[k].frames for k in ("a", "b", "bP", "c", "d")}) != 1:
        raise RuntimeError(f"the paths saw different frame counts: { {k: t.frames for k, t in results.items()} }")
    equivalence = check_equivalence(regime, args, work)
    results["equivalence"] = equivalence

    a, b, bp, c, d = (results[k] for k in ("a", "b", "bP", "c", "d"))
    results["speedup"] = a.fps / b.fps
    results["speedup_equal_procs"] = a.fps / bp.fps
    results["overhead"] = a.seconds / max(c.seconds, d.seconds)
    label = {
        "a": f"(a) ours: extract_shard, {args.num_workers} workers",
        "b": f"(b) baseline: JPEG @{args.fps:g} fps + PIL + batch {BASELINE_BATCH}",
        "bP": f"(bP) baseline in {processes} processes (= ours)",
        "c": f"(c) decode + preprocess only ({args.num_workers} workers)",
        "d": "(d) encode only (pre-decoded tensors)",
        "a1": f"[diagnostic] (a), main process at {default_threads} torch threads",
    }
    passes = (
        f"median of {len(groups)} passes over all videos"
        if how == "median"
        else f"sum over {len(groups)} rounds of {len(srcs) // len(groups)}-{-(-len(srcs) // len(groups))} videos"
    )
    report(
        f"ours: main process torch threads chosen by EncoderThreads (decode-bound "
        f"{pipeline_module().EncoderThreads.for_device(torch.device('cpu'), args.num_workers).decode_bound_threads}, "
        f"encode-bound {default_threads}), {args.num_workers} DataLoader workers (1 torch thread each); batch "
        f"{args.batch_size}; fps {args.fps:g}; times: {passes}"
    )
    report(f"{'path':<50} {'seconds':>8} {'frames':>7} {'frames/s':>9} {'t / t_a':>8}")
    for k in ("a", "b", "bP", "c", "d", "a1"):
        if k in results:
            r = results[k]
            report(f"{label[k]:<50} {r.seconds:>8.1f} {r.frames:>7d} {r.fps:>9.1f} {r.seconds / a.seconds:>8.2f}")
    for k in ("a", "b", "bP", "c", "d", "a1"):
        if k in results and results[k].describe():
            report(f"    {k}: {results[k].describe()}")
    target_speedup = TARGET_DECODE_SPEEDUP if regime.key == "decode" else TARGET_ENCODE_SPEEDUP
    slower = "c (decode)" if c.seconds >= d.seconds else "d (encode)"
    report(
        f"speedup a/b (frames/s)       = {results['speedup']:.2f}   target >= {target_speedup:g}: "
        f"{'PASS' if results['speedup'] >= target_speedup else 'MISS'}"
    )
    report(
        f"speedup a/bP (equal procs)   = {results['speedup_equal_procs']:.2f}   target >= {target_speedup:g}: "
        f"{'PASS' if results['speedup_equal_procs'] >= target_speedup else 'MISS'}"
    )
    report(
        f"overhead t_a / max(t_c, t_d) = {results['overhead']:.2f}   (max is {slower}; "
        f"efficiency {1 / results['overhead']:.0%})   target <= {TARGET_OVERHEAD:g}: "
        f"{'PASS' if results['overhead'] <= TARGET_OVERHEAD else 'MISS'}"
    )
    report(
        f"equivalence: (a) vs unbatched PIL reference on {equivalence['frames']} all-different frames of "
        f"{equivalence['videos']} videos: min centred cosine {equivalence['min_cos']:.6f} (raw "
        f"{equivalence['min_raw_cos']:.6f}; 1 - cos = "
        f"{1 - equivalence['min_cos']:.1e}; >= {COSINE_MIN}: {'PASS' if equivalence['min_cos'] >= COSINE_MIN else 'FAIL'}); "
        f"control, one source frame later: median {equivalence['shift_median']:.4f}, max {equivalence['shift_max']:.4f} "
        f"(<= {SHIFT_COSINE_MAX}: {'PASS' if equivalence['shift_max'] <= SHIFT_COSINE_MAX else 'FAIL: the check has no teeth'})"
    )
    report(f"regime wall time {time.monotonic() - t0:.0f} s")


def pipeline_module():
    from sa2va_st.features import pipeline

    return pipeline


def fresh_dir(work: Path, regime_key: str, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{regime_key}_{name}_", dir=work))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=None, help=f"number of videos (default {SPEC_VIDEOS})")
    parser.add_argument(
        "--minutes", type=float, default=None, help=f"total minutes of video (default {SPEC_MINUTES:g})"
    )
    parser.add_argument("--fps", type=float, default=10.0, help="features per second (default 10)")
    parser.add_argument(
        "--batch-size", type=int, default=BASELINE_BATCH, help="encoder batch of ours, (d) (default 32)"
    )
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader decode workers (default 2 = cores)")
    parser.add_argument("--regimes", default="decode,encode", help="comma list of: decode, encode")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_VIDEOS} videos, {QUICK_MINUTES:g} min (does NOT meet the spec)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="decode-bound regime: passes over all videos per path; the median counts (default 3)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="encode-bound regime: groups of videos, each path once per group, times summed (default 4)",
    )
    parser.add_argument(
        "--encode-only-fraction",
        type=float,
        default=0.25,
        help="encode-bound regime: share of the batches (d) times, scaled up (default 0.25; 1 = all)",
    )
    parser.add_argument(
        "--no-diagnose",
        dest="diagnose",
        action="store_false",
        help="skip the diagnostic row (ours with the main process at torch's default threads, decode-bound regime)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--video-dir", type=Path, default=DEFAULT_VIDEO_DIR, help="video cache (relative to the repo)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where temporary JPEGs/features go")
    args = parser.parse_args(argv)
    args.videos = args.videos or (QUICK_VIDEOS if args.quick else SPEC_VIDEOS)
    args.minutes = args.minutes or (QUICK_MINUTES if args.quick else SPEC_MINUTES)
    args.regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    if not set(args.regimes) <= {"decode", "encode"} or not args.regimes:
        parser.error("--regimes takes a comma list of: decode, encode")
    for name in ("video_dir", "report", "log"):
        path = getattr(args, name)
        setattr(args, name, path if path.is_absolute() else ROOT / path)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    log_to_file(args.log)
    report = Report()
    started = time.monotonic()

    meets_spec = args.videos >= SPEC_VIDEOS and args.minutes >= SPEC_MINUTES
    report(
        f"benchmark clip_features: {args.videos} videos, {args.minutes:g} min, fps {args.fps:g}, "
        f"regimes {','.join(args.regimes)}"
        + (
            ""
            if meets_spec
            else f"  ** QUICK/SMALL RUN: does NOT meet the spec (>= {SPEC_VIDEOS} videos, >= {SPEC_MINUTES:g} min) **"
        )
    )
    report(f"machine: {platform.machine()} {os.cpu_count()} CPUs; python {platform.python_version()}")
    folder, videos = ensure_videos(args.video_dir, args.videos, args.minutes, args.seed, report)

    import decord  # noqa: F401  (so the versions line is true; ours falls back to PyAV without it)
    import open_clip
    import torch

    report(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), open_clip {open_clip.__version__}, "
        f"PyAV {av.__version__}, decord {decord.__version__}; baseline step 1 uses PyAV + PIL JPEG q{JPEG_QUALITY} "
        f"(no ffmpeg binary is used)"
    )
    rates = sorted({v["fps"] for v in videos})
    sizes = sorted({f"{v['width']}x{v['height']}" for v in videos})
    seconds = [v["seconds"] for v in videos]
    report(
        f"videos: {len(videos)} in {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}; "
        f"{sum(seconds) / 60:.2f} min ({min(seconds):.1f}-{max(seconds):.1f} s each); {sum(v['frames'] for v in videos)} "
        f"source frames; {'/'.join(sizes)}; {'/'.join(map(str, rates))} fps; H.264 yuv420p (x264 medium crf 23), "
        f"{sum(v['bytes'] for v in videos) / 1e6:.1f} MB"
    )
    for v in videos:  # warm the page cache so no path pays the first read
        (folder / v["file"]).read_bytes()
    srcs = sources(folder, videos)

    work = Path(tempfile.mkdtemp(prefix="bench_clip_features_", dir=args.tmp_dir))
    regimes = []
    try:
        for key in args.regimes:
            regime = build_regime(key, work, args.seed)
            regimes.append(regime)
            run_regime(regime, srcs, videos, args, report, work)
            regime.model = None  # release the weights before the next regime
    finally:
        shutil.rmtree(work, ignore_errors=True)

    by_key = {r.key: r.results for r in regimes}

    def value(key: str, name: str) -> str:
        return f"{by_key[key][name]:.2f}" if key in by_key else "nan"

    ok = all(
        r.results["equivalence"]["min_cos"] >= COSINE_MIN and r.results["equivalence"]["shift_max"] <= SHIFT_COSINE_MAX
        for r in regimes
    )
    report()
    report(
        f"total run time {time.monotonic() - started:.0f} s"
        + ("" if meets_spec else "  (QUICK/SMALL RUN: not the spec size)")
    )
    if not ok:
        report(
            f"FAIL: features of (a) differ from the unbatched reference (cosine < {COSINE_MIN}), or a one-frame "
            f"shift passes the check (cosine > {SHIFT_COSINE_MAX})"
        )
    report(
        f"RESULT decode_bound_speedup={value('decode', 'speedup')} "
        f"decode_bound_speedup_equal_procs={value('decode', 'speedup_equal_procs')} "
        f"encode_bound_speedup={value('encode', 'speedup')} "
        f"encode_bound_speedup_equal_procs={value('encode', 'speedup_equal_procs')} "
        f"overhead_decode_bound={value('decode', 'overhead')} overhead_encode_bound={value('encode', 'overhead')}"
    )
    report.save(args.report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
