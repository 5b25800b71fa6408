"""Temporal manifests (Charades-STA, DiDeMo) at one feature rate.

    {out_dir}/temporal/{features_label}/fps{fps:g}/{dataset}/{split}.parquet    TEMPORAL_SCHEMA
    {out_dir}/temporal/{features_label}/fps{fps:g}/report.{json,md}

Inputs per dataset: the special_jsons (ordered, unclipped windows in seconds), the videos folder
(default ``{data_root}/temporal/{Charades,didemo}/videos``) and the feature folder (default
``{data_root}/clip_features/{dataset}/{features_label}/fps{fps:g}``: ``<vid>.npy`` float16
(T, D) and ``index.parquet``). A record's feature id ``vid`` is its ``video`` without a video
suffix (DiDeMo names files ``x.mov`` or ``x.mp4``); its video is the file ``<vid>.<ext>`` in the
videos folder; ``duration`` and ``num_features`` (T) come from the features index (the
duration the extraction measured from the video's own timestamps).

**Index rule.** Feature ``i`` is the frame at time ``i / fps`` and stands for the interval
``[i / fps, (i + 1) / fps)``. A window ``[start_s, end_s]`` (clipped to ``[0, duration]``)
covers the features whose intervals it meets::

    start_idx = min(T - 1, floor(round(start_s * fps, 6)))
    end_idx   = min(T - 1, max(start_idx, ceil(round(end_s * fps, 6)) - 1))

(the products are rounded to 6 decimals first so that float noise cannot move an exact
boundary: 1.1 s at 10 fps is index 11, not 11.000000000000002). Hence, for every kept row
with ``start_idx < T - 1`` and ``end_idx < T - 1`` (the clamps matter only within 1e-4 s of the
end, see features.timing):

    start_idx / fps <= start_s < (start_idx + 1) / fps
    end_idx / fps   <  end_s   <= (end_idx + 1) / fps

up to 1e-6 / fps, and ``0 <= start_idx <= end_idx <= T - 1`` always.

**Dropped** (first reason that applies): missing_video, missing_features, features_short
(T < max(1, ceil((duration - 1e-4) fps)), the extraction rule), zero_length_window (start ==
end as annotated), window_after_end (start >= duration). **Clipped** (kept, ``fix``):
``reordered`` (start > end as written; special_jsons ordered it), ``clipped_end`` (end >
duration; end set to the duration); both give ``reordered+clipped_end``.

**Ground truths.** ``ground_truth_windows`` lists every distinct window a scorer may match, clipped
to ``[0, duration]`` like ``[start_s, end_s]``: for Charades-STA that one window; for DiDeMo each
annotator's chunk window ``[s, e]`` as seconds ``[chunk_seconds * s, chunk_seconds * (e + 1)]``
(ordered, clipped; the training target ``start_s, end_s`` is the most agreed of them), in the
special_json's order with repeats removed. R1 and mIoU take the best match among them
(docs/evaluation.md), as Moment-DETR's ``standalone_eval`` does with several windows per query.
**Fatal** (ManifestError naming the path): a special_json that breaks its schema; the feature
folder or its index.parquet absent, unreadable or of another fps; more than half a split's rows
missing their video or features (e.g. the videos folder is absent).
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import catalog, paths
from ..annotations.special_jsons import CHUNKED_MOMENTS, MOMENTS, kind_of
from ..errors import ManifestError
from ..features.timing import feature_count
from ..paths import join, path_prefix
from .common import (
    Listings,
    Tally,
    load_special,
    special_datasets,
    special_schemas,
    split_files,
    to_table,
    write_built,
)
from .report import add_totals, new_report, write_report
from .schemas import TEMPORAL_SCHEMA

TEMPORAL = "temporal"
INDEX_NAME = paths.FEATURE_INDEX
OK = "ok"  # features.pipeline.OK (that module imports torch, which this stage does not need)
INDEX_COLUMNS = ("vid", "T", "fps", "duration", "status", "error")  # of features.pipeline.INDEX_SCHEMA


class IndexEntry(NamedTuple):
    vid: str
    T: int | None
    fps: float | None
    duration: float | None
    status: str
    error: str | None


# suffixes stripped from an annotation's video name to get the feature id (wider than the files
# the feature stage reads: an annotation may name the original .wmv of a converted .mp4)
NAME_SUFFIXES = tuple(sorted(set(catalog.VIDEO_SUFFIXES) | {".3gp", ".wmv", ".flv", ".mpg", ".mpeg"}))
FPS_TOLERANCE = 1e-9
INDEX_DECIMALS = 6


def temporal_dir(out_dir: str | os.PathLike, features_label: str, fps: float) -> Path:
    return Path(paths.temporal_manifests_dir(out_dir, features_label, fps))


def feature_id(video: str) -> str:
    """The feature/video id of an annotation's video name: the name without a video suffix."""
    stem, suffix = posixpath.splitext(video)
    return stem if suffix.lower() in NAME_SUFFIXES and stem else video


def window_indices(start_s, end_s, fps: float, num_features) -> tuple[np.ndarray, np.ndarray]:
    """The index rule (module docstring), vectorised: (start_idx, end_idx) int64 arrays."""
    start = np.asarray(start_s, dtype=np.float64)
    end = np.asarray(end_s, dtype=np.float64)
    last = np.asarray(num_features, dtype=np.int64) - 1
    a = np.floor(np.round(start * fps, INDEX_DECIMALS)).astype(np.int64)
    b = np.ceil(np.round(end * fps, INDEX_DECIMALS)).astype(np.int64) - 1
    a = np.minimum(np.maximum(a, 0), last)
    b = np.minimum(np.maximum(b, a), last)
    return a, b


def video_files(names: frozenset[str] | None) -> dict[str, str]:
    """id -> file name of the video files in a listing (the feature stage's suffixes; first name wins)."""
    found: dict[str, str] = {}
    for name in sorted(names or ()):
        stem, suffix = posixpath.splitext(name)
        if not name.startswith(".") and suffix.lower() in catalog.VIDEO_SUFFIXES:
            found.setdefault(stem, name)
    return found


def read_index_rows(path: str, fix: str) -> list[IndexEntry]:
    """The columns of a features index (features.pipeline.INDEX_SCHEMA) this stage needs, without importing torch."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise ManifestError(f"cannot read the features index ({error})", file=path, fix=fix) from None
    missing = [c for c in INDEX_COLUMNS if c not in table.column_names]
    if missing:
        raise ManifestError(
            f"not a features index: no column(s) {missing} (it has {table.column_names})",
            file=path,
            key=missing[0],
            fix=fix,
        )
    columns = {c: table.column(c).to_pylist() for c in INDEX_COLUMNS}
    entries = [IndexEntry(*values) for values in zip(*(columns[c] for c in INDEX_COLUMNS))]
    seen: set[str] = set()
    for e in entries:
        if e.vid in seen:
            raise ManifestError(f"video {e.vid!r} appears twice in the features index", file=path, key=e.vid, fix=fix)
        seen.add(e.vid)
    return entries


def load_index(features_dir: str, fps: float, dataset: str) -> dict:
    """vid -> IndexRow of the feature folder's index; ManifestError when it cannot be trusted."""
    fix = (
        f"run extract_clip_features for {dataset} at fps {fps:g} (snakemake extract_clip_features --config fps={fps:g})"
    )
    if not os.path.isdir(features_dir):
        raise ManifestError(f"{dataset}: the feature folder is missing", file=features_dir, fix=fix)
    path = join(features_dir, INDEX_NAME)
    if not os.path.isfile(path):
        raise ManifestError(f"{dataset}: the feature folder has no {INDEX_NAME}", file=path, fix=fix)
    rows = read_index_rows(path, fix)
    wrong = [r for r in rows if not (r.fps is not None and abs(r.fps - fps) <= FPS_TOLERANCE * max(1.0, fps))]
    if wrong:
        raise ManifestError(
            f"{dataset}: the features index says fps {wrong[0].fps} for {wrong[0].vid} ({len(wrong)} rows), expected {fps:g}",
            file=path,
            key="fps",
            fix=f"point the manifests at the fps{fps:g} feature folder, or re-extract it",
        )
    return {r.vid: r for r in rows}


def ground_truth_windows(record: dict, doc: dict, target: tuple[float, float], duration: float) -> list[list[float]]:
    """Every distinct window a prediction may match (module docstring), seconds, clipped to the video."""
    if doc["kind"] != CHUNKED_MOMENTS:
        return [[float(target[0]), float(target[1])]]
    chunk = float(doc["chunk_seconds"])
    windows: list[list[float]] = []
    for first, last in record["annotator_windows"]:
        first, last = min(first, last), max(first, last)
        window = [min(chunk * first, duration), min(chunk * (last + 1), duration)]
        if window not in windows:
            windows.append(window)
    return windows


def temporal_rows(
    doc: dict, video_dir: str, features_dir: str, index: dict, fps: float, listings: Listings, tally: Tally
) -> dict[str, list]:
    rows: dict[str, list] = {f.name: [] for f in TEMPORAL_SCHEMA}
    videos = video_files(listings.names(video_dir))
    feature_files = listings.names(features_dir) or frozenset()
    index_path = join(features_dir, INDEX_NAME)
    kept_videos: set[str] = set()
    pending: list[dict] = []
    for r in doc["records"]:
        tally.rows_in += 1
        vid = feature_id(r["video"])
        video_name = videos.get(vid)
        if video_name is None:
            path = join(video_dir, vid + ".mp4")
            tally.drop("missing_video", r["id"], f"no {vid}.* in {video_dir}", listings.cause(path))
            continue
        entry = index.get(vid)
        npy = f"{vid}.npy"
        if entry is None:
            tally.drop("missing_features", r["id"], f"{vid} is not in {index_path}", (index_path, "lacks these videos"))
            continue
        if entry.status != OK or entry.T is None or entry.duration is None:
            first_line = (entry.error or entry.status).splitlines()[0] if (entry.error or entry.status) else "?"
            tally.drop("missing_features", r["id"], f"extraction of {vid} failed: {first_line[:200]}")
            continue
        if npy not in feature_files:
            tally.drop(
                "missing_features", r["id"], f"{join(features_dir, npy)} is absent", (features_dir, "lacks files")
            )
            continue
        duration, T = float(entry.duration), int(entry.T)
        expected = feature_count(duration, fps)
        if T < expected:
            tally.drop("features_short", r["id"], f"{vid}: T={T} < {expected} for {duration:g} s at fps {fps:g}")
            continue
        start, end = (float(v) for v in r["window"])
        if start == end:
            tally.drop("zero_length_window", r["id"], f"window [{start:g}, {end:g}]")
            continue
        if start >= duration:
            tally.drop(
                "window_after_end", r["id"], f"window [{start:g}, {end:g}] starts at/after the end ({duration:g} s)"
            )
            continue
        # clipped to [0, duration] exactly (annotations.clip_window would round the duration to
        # 6 decimals, which can land just past the end); start >= 0 by the special_jsons schema
        start_s, end_s = start, min(end, duration)
        truths = ground_truth_windows(r, doc, (start_s, end_s), duration)
        fixes = []
        if "window_as_written" in r:
            fixes.append("reordered")
        if end > duration:
            fixes.append("clipped_end")
        written = r.get("window_as_written", r["window"])
        tally.keep(fixes)
        kept_videos.add(vid)
        pending.append(
            {
                "id": r["id"],
                "dataset": doc["dataset"],
                "split": doc["split"],
                "video": r["video"],
                "vid": vid,
                "sentence": r["sentence"],
                "video_path": join(video_dir, video_name),
                "features_path": join(features_dir, npy),
                "fps": float(fps),
                "num_features": T,
                "duration": duration,
                "start_s": start_s,
                "end_s": end_s,
                "window_as_written_start": float(written[0]),
                "window_as_written_end": float(written[1]),
                "ground_truth_windows": truths,
                "fix": "+".join(fixes),
            }
        )
    start_idx, end_idx = window_indices(
        [p["start_s"] for p in pending], [p["end_s"] for p in pending], fps, [p["num_features"] for p in pending]
    )
    for p, a, b in zip(pending, start_idx.tolist(), end_idx.tolist()):
        p["start_idx"], p["end_idx"] = a, b
        for key in rows:
            rows[key].append(p[key])
    tally.notes["videos"] = len(kept_videos)
    return rows


def build_temporal_manifests(
    special_jsons_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    features_label: str,
    fps: float,
    out_dir: str | os.PathLike,
    *,
    datasets: Iterable[str] | None = None,
    video_dirs: Mapping[str, str | os.PathLike] | None = None,
    features_dirs: Mapping[str, str | os.PathLike] | None = None,
    schema_root: str | os.PathLike | None = None,
) -> dict:
    """Write ``{out_dir}/temporal/{features_label}/fps{fps:g}/{dataset}/{split}.parquet`` and the report.

    `features_label`: the feature set's folder name (``{model}_{weights}``, e.g. ``ViT-H-14_laion2b_s32b_b79k``).
    `datasets`: default every temporal dataset with a folder in special_jsons_dir.
    `video_dirs` / `features_dirs`: per-dataset overrides of the default folders (module docstring).
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ManifestError(f"fps must be a positive number, got {fps!r}", key="fps")
    fps = float(fps)
    special_jsons_dir, out = Path(special_jsons_dir), temporal_dir(out_dir, features_label, fps)
    names, skipped = special_datasets(special_jsons_dir, [MOMENTS, CHUNKED_MOMENTS], datasets)
    schemas = special_schemas(schema_root)
    prefix = path_prefix(data_root)
    video_dirs, features_dirs = dict(video_dirs or {}), dict(features_dirs or {})
    listings = Listings()
    report = new_report(
        TEMPORAL,
        ["temporal"],
        special_jsons_dir=str(special_jsons_dir),
        data_root=Path(data_root).as_posix(),
        features_label=features_label,
        fps=fps,
        folders={},
    )
    built: dict[str, tuple[str, list]] = {}
    for name in names:  # everything is read and checked before anything is written
        video_dir = (
            path_prefix(video_dirs[name]) if name in video_dirs else join(prefix, catalog.dataset(name).videos_folder)
        )
        features_dir = (
            path_prefix(features_dirs[name])
            if name in features_dirs
            else paths.features_dir(data_root, name, features_label, fps)
        )
        docs = [
            (path, load_special(path, kind_of(name), name, schemas)) for path in split_files(special_jsons_dir, name)
        ]
        index = load_index(features_dir, fps, name) if any(doc["records"] for _, doc in docs) else {}
        results = []
        for path, doc in docs:
            tally = Tally("temporal", name, doc["split"])
            rows = temporal_rows(doc, video_dir, features_dir, index, fps, listings, tally)
            tally.check_structure(path)
            results.append((tally, to_table(rows, TEMPORAL_SCHEMA)))
        built[name] = ("temporal", results)
        report["folders"][name] = {"videos": video_dir, "features": features_dir}
    write_built(out, built, skipped, report)
    add_totals(report)
    write_report(report, out, f"Manifests: validation report (temporal, {features_label}, fps {fps:g})", schema_root)
    return report
