#!/usr/bin/env python
"""Temporal manifests build time at real size: raw Charades-STA / DiDeMo annotations -> special_jsons -> manifests.

The inventory (generated once, cached, never timed) is what the temporal stages read, at the real
datasets' size and without pixel data:

    temporal/Charades/annotations/charades_sta_{train,test}.txt   12,408 + 3,720 queries (`VID START END##sentence`)
    temporal/Charades/videos/<vid>.mp4                            9,848 empty files (the folder is listed, never opened)
    temporal/didemo/annotations/{train,val,test}_data.json        33,005 + 4,180 + 4,021 queries, 4 annotators each
    temporal/didemo/videos/<name>.mp4                             10,464 empty files
    clip_features/<dataset>/<label>/fps<fps>/index.parquet        one row per video (features.pipeline.INDEX_SCHEMA)
    clip_features/<dataset>/<label>/fps<fps>/<vid>.npy            empty files (the manifests list them, never load them)

Durations: Charades 8-60 s (mean ~30 s, as released), DiDeMo 25-30 s (its 5-second chunks). Windows
as the datasets draw them (Charades: 2-20 s inside the video, 2% ending after it, as the release
has; DiDeMo: chunk pairs of 1-3 chunks). Flaws a real copy has, so that every drop path runs:
0.5% of the videos have no features (`missing_features`), 0.2% of the queries name a video that is
absent (`missing_video`).

Timed, in one process, through the library functions the rules' scripts call:
  1. `build_special_jsons(data_root, out/special_jsons, datasets=[charades, didemo])`;
  2. `build_temporal_manifests(out/special_jsons, data_root, label, fps, out/manifests)`.

Baseline, same work at 1/20 of the size (`--scale`), same process: the per-query cost at real size
over the per-query cost at the small size (`scaling`; 1.0 = linear, above 1 = the build slows down
as the data grows). Afterwards (not timed) the kept and dropped counts are checked against the
inventory's own.

    RESULT seconds=<manifests build s> special_jsons_seconds=<s> queries=<n> videos=<n> rows_per_s=<x> scaling=<ratio>

Usage: .venv/bin/python benchmarks/temporal_manifests.py [--fps 1] [--quick]
Writes the table + RESULT to results/benchmarks/temporal_manifests.txt, a log to
results/logs/benchmark_temporal_manifests.log.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import Report, log_to_file  # noqa: E402
from sa2va_st import paths  # noqa: E402
from sa2va_st.annotations.special_jsons import build_special_jsons  # noqa: E402
from sa2va_st.features.identity import features_label  # noqa: E402
from sa2va_st.features.pipeline import INDEX_SCHEMA  # noqa: E402
from sa2va_st.manifests.temporal import build_temporal_manifests  # noqa: E402

LABEL = features_label("ViT-H-14", "laion2b_s32b_b79k")  # config.yaml's CLIP
WORDS = "person opens closes door walks takes puts holds cup phone laptop book sits stands smiles dog runs".split()


@dataclass(frozen=True)
class Size:
    """The real datasets' counts (Charades-STA over Charades; DiDeMo), divided by ``divisor``."""

    divisor: int = 1

    def __call__(self, n: int) -> int:
        return max(1, n // self.divisor)


def sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(4, 10))))


def write_index(folder: Path, durations: dict[str, float], fps: float, missing: set[str]) -> None:
    """The features index and empty feature files of every video but the ``missing`` ones."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for vid, duration in durations.items():
        if vid in missing:
            continue
        (folder / f"{vid}.npy").touch()
        frames = int(round(duration * 24))
        rows.append(
            {"vid": vid, "T": max(1, math.ceil(duration * fps - 1e-4)), "fps": fps, "duration": duration,
             "source_fps": 24.0, "source_frames": frames, "status": "ok", "error": None}
        )  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=INDEX_SCHEMA), folder / "index.parquet")


def generate(root: Path, size: Size, fps: float, seed: int = 0) -> dict:
    """The inventory described in the module docstring; returns its own counts."""
    rng = np.random.default_rng(seed)
    counts = {"queries": 0, "videos": 0, "missing_features": 0, "missing_video": 0}

    # Charades-STA
    base = root / "temporal" / "Charades"
    (base / "annotations").mkdir(parents=True)
    (base / "videos").mkdir(parents=True)
    vids = [f"{''.join(rng.choice(list('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'), 5))}{k}" for k in range(size(9848))]
    durations = {v: round(float(rng.uniform(8, 60)), 2) for v in vids}
    for v in vids:
        (base / "videos" / f"{v}.mp4").touch()
    for split, n in (("train", size(12408)), ("test", size(3720))):
        lines = []
        for _ in range(n):
            v = vids[int(rng.integers(len(vids)))]
            if rng.random() < 0.002:
                v, counts["missing_video"] = f"GONE{int(rng.integers(10**6))}", counts["missing_video"] + 1
                duration = 30.0
            else:
                duration = durations[v]
            start = round(float(rng.uniform(0, max(0.1, duration - 2))), 1)
            end = round(start + float(rng.uniform(2, 20)), 1)
            end = end if rng.random() < 0.02 else min(end, duration)
            if end <= start:
                end = round(start + 0.5, 1)
            lines.append(f"{v} {start} {end}##{sentence(rng)}")
        (base / "annotations" / f"charades_sta_{split}.txt").write_text("\n".join(lines) + "\n")
        counts["queries"] += n
    missing = set(rng.choice(vids, size=max(1, len(vids) // 200), replace=False).tolist())
    counts["missing_features"] += len(missing)
    write_index(Path(paths.features_dir(root, "charades", LABEL, fps)), durations, fps, missing)
    counts["videos"] += len(vids)

    # DiDeMo
    base = root / "temporal" / "didemo"
    (base / "annotations").mkdir(parents=True)
    (base / "videos").mkdir(parents=True)
    names = [f"{int(rng.integers(10**9, 10**10))}_{k}.mp4" for k in range(size(10464))]
    durations = {Path(n).stem: float(rng.choice([25.0, 27.5, 30.0])) for n in names}
    for n in names:
        (base / "videos" / n).touch()
    annotation_id = 0
    for split, n in (("train", size(33005)), ("val", size(4180)), ("test", size(4021))):
        entries = []
        for _ in range(n):
            name = names[int(rng.integers(len(names)))]
            if rng.random() < 0.002:
                name, counts["missing_video"] = f"gone_{int(rng.integers(10**9))}.mp4", counts["missing_video"] + 1
            times = []
            for _ in range(4):
                s = int(rng.integers(0, 6))
                times.append([s, min(5, s + int(rng.integers(0, 3)))])
            entries.append(
                {"annotation_id": annotation_id, "description": sentence(rng), "video": name, "times": times,
                 "num_segments": 6, "dl_link": "", "context": [0, 5], "train_times": times}
            )  # fmt: skip
            annotation_id += 1
        (base / "annotations" / f"{split}_data.json").write_text(json.dumps(entries))
        counts["queries"] += n
    missing = set(rng.choice(sorted(durations), size=max(1, len(durations) // 200), replace=False).tolist())
    counts["missing_features"] += len(missing)
    write_index(Path(paths.features_dir(root, "didemo", LABEL, fps)), durations, fps, missing)
    counts["videos"] += len(names)
    return counts


def build(root: Path, out: Path, fps: float) -> tuple[float, float, dict]:
    """(special_jsons seconds, manifests seconds, manifests report) of one inventory."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    build_special_jsons(root, out / "special_jsons", datasets=["charades", "didemo"])
    special = time.perf_counter() - started
    started = time.perf_counter()
    report = build_temporal_manifests(out / "special_jsons", root, LABEL, fps, out / "manifests")
    return special, time.perf_counter() - started, report


def report_totals(report: dict) -> dict[str, int]:
    """kept rows and dropped rows by reason, over every split of both datasets."""
    totals = {"kept": 0}
    for dataset in report["datasets"].values():
        for split in dataset.get("splits", {}).values():
            totals["kept"] += split["kept"]
            for reason, n in split["dropped"]["by_reason"].items():
                totals[reason] = totals.get(reason, 0) + n
    return totals


def ensure(base: Path, size: Size, fps: float, report: Report) -> tuple[Path, dict]:
    folder = base / f"inventory_div{size.divisor}_fps{fps:g}"
    marker = folder / "COMPLETE.json"
    if marker.is_file():
        return folder / "data", json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    counts = generate(folder / "data", size, fps)
    report(f"generated the 1/{size.divisor} inventory in {time.perf_counter() - started:.1f} s (not timed): {counts}")
    marker.write_text(json.dumps(counts))
    return folder / "data", counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, default=1.0, help="the feature rate the manifests are built at")
    parser.add_argument("--scale", type=int, default=20, help="the baseline's size: 1/scale of the real one")
    parser.add_argument("--quick", action="store_true", help="1/50 of the real size (does NOT meet the spec)")
    args = parser.parse_args(argv)

    base = REPO / paths.BENCHMARKS / "temporal_manifests"
    log_to_file(REPO / paths.LOGS / "benchmark_temporal_manifests.log")
    report = Report()
    real = Size(50 if args.quick else 1)
    small = Size(real.divisor * args.scale)
    results = {}
    for size in (small, real):
        root, counts = ensure(base, size, args.fps, report)
        build(root, base / "build", args.fps)  # warm the page cache and the imports; not counted
        special, seconds, built = build(root, base / "build", args.fps)
        totals = report_totals(built)
        problems = []
        if sum(totals.values()) != counts["queries"]:
            problems.append(f"kept + dropped = {sum(totals.values())}, the inventory has {counts['queries']} queries")
        if totals.get("missing_video", 0) != counts["missing_video"]:
            problems.append(f"missing_video {totals.get('missing_video', 0)} != {counts['missing_video']}")
        if totals.get("missing_features", 0) == 0:
            problems.append("no query was dropped for missing features")
        for problem in problems:
            report(f"CHECK FAILED (1/{size.divisor}): {problem}")
        if problems:
            return 1
        results[size.divisor] = (special, seconds, counts, totals)
        report(
            f"1/{size.divisor:<3d} videos {counts['videos']:>6d}  queries {counts['queries']:>6d}  "
            f"special_jsons {special:6.2f} s  manifests {seconds:6.2f} s  kept {totals['kept']}  dropped "
            + ", ".join(f"{k} {v}" for k, v in sorted(totals.items()) if k != "kept")
        )
    special, seconds, counts, _ = results[real.divisor]
    small_special, small_seconds, small_counts, _ = results[small.divisor]
    scaling = (seconds / counts["queries"]) / (small_seconds / small_counts["queries"])
    report(f"per-query cost at 1/{real.divisor} over 1/{small.divisor} size: {scaling:.2f} (1.0 = linear)")
    report(
        f"RESULT seconds={seconds:.2f} special_jsons_seconds={special:.2f} queries={counts['queries']} "
        f"videos={counts['videos']} rows_per_s={counts['queries'] / seconds:.0f} scaling={scaling:.2f}"
    )
    report.save(REPO / paths.BENCHMARKS / "temporal_manifests.txt")
    shutil.rmtree(base / "build", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
