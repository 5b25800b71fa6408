#!/usr/bin/env python
"""How long Snakemake takes to plan the whole pipeline at the real datasets' size, and how many jobs it plans.

The run folder holds the repository's `config.yaml` (the real run's defaults: eight datasets, CLIP
features in 8 shards per dataset) set for one 8-GPU node (`training.processes: 8`,
`evaluation.shards: 8`), and a data root holding an inventory at real size without pixel data
(empty files where the datasets have images, frames, videos and feature files):

    refer_seg/coco2014/train2014/       25,799 images (RefCOCO, RefCOCO+, RefCOCOg: ~140,000 expressions)
    video_datas/mevis/<split>/JPEGImages/   1,852 videos x 30-80 frames (train, valid_u, valid)
    video_datas/rvos/<split>/JPEGImages/    3,978 videos x 15-36 frames (every 5th)
    video_datas/ReVOS/JPEGImages/           1,042 videos x 30-100 frames
    temporal/Charades/videos/               9,848 videos;  temporal/didemo/videos/  10,464 videos
    clip_features/<dataset>/<label>/fps10/  one (empty) .npy per video

Timed, each as a `snakemake` subprocess (what a user types; parse, DAG, and every file check included):

1. **plan**: `snakemake -n all` in the fresh folder: every job from download to report. Its count is
   the `jobs` of the RESULT line.
2. **re-check**: after `snakemake --touch all` marks every output done (not timed), `snakemake -n all`
   again: nothing to run, every output's age compared with its inputs'.

Baseline, side by side: the same two commands on the same config with the demo's base-size inventory
(1/1000 of the files); `vs_small` is real-size time over small-size time (1.0: the plan does not
depend on the data's size; it should not, because stages are a fixed number of shard jobs per
dataset, never one job per video). Targets: <= 10 s and <= 500 jobs.

    RESULT seconds=<max of plan, re-check> jobs=<n> plan_seconds=<s> recheck_seconds=<s> files=<n> vs_small=<ratio>

Usage: .venv/bin/python benchmarks/dag.py [--quick]   (--quick: 1/20 of the files; does NOT meet the spec)
Writes the table + RESULT to results/benchmarks/dag.txt, a log to results/logs/benchmark_dag.log; the
run folders stay in results/benchmarks/dag/ (an inventory is reused while its inventory_div<n>.json is there).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import Report, log_to_file  # noqa: E402
from sa2va_st import paths  # noqa: E402
from sa2va_st.features.identity import features_label  # noqa: E402

# (folder under data_root, videos, frames per video low-high); frames None = a video file
VIDEO_TREES = (
    ("video_datas/mevis/train/JPEGImages", 1662, (30, 80)),
    ("video_datas/mevis/valid_u/JPEGImages", 50, (30, 80)),
    ("video_datas/mevis/valid/JPEGImages", 140, (30, 80)),
    ("video_datas/rvos/train/JPEGImages", 3471, (15, 36)),
    ("video_datas/rvos/valid/JPEGImages", 507, (15, 36)),
    ("video_datas/ReVOS/JPEGImages", 1042, (30, 100)),
)
COCO_IMAGES = 25_799
TEMPORAL_VIDEOS = {"charades": ("temporal/Charades/videos", 9848), "didemo": ("temporal/didemo/videos", 10464)}
NODE = {"training": {"processes": 8}, "evaluation": {"shards": 8}}


def write_inventory(root: Path, divisor: int, clip: dict, fps: float) -> int:
    """The empty-file tree of the module docstring, ``1/divisor`` of it; returns the file count."""
    rng = np.random.default_rng(0)
    files = 0
    for folder, videos, (low, high) in VIDEO_TREES:
        for k in range(max(1, videos // divisor)):
            video = root / folder / f"{k:08x}"
            video.mkdir(parents=True)
            for f in range(int(rng.integers(low, high + 1))):
                (video / f"{5 * f:05d}.jpg").touch()
                files += 1
    images = root / "refer_seg/coco2014/train2014"
    images.mkdir(parents=True)
    for k in range(max(1, COCO_IMAGES // divisor)):
        (images / f"COCO_train2014_{k:012d}.jpg").touch()
        files += 1
    label = features_label(clip["model"], clip["pretrained"])
    for dataset, (folder, videos) in TEMPORAL_VIDEOS.items():
        (root / folder).mkdir(parents=True)
        features = Path(paths.features_dir(root, dataset, label, fps))
        features.mkdir(parents=True)
        for k in range(max(1, videos // divisor)):
            (root / folder / f"v{k:06d}.mp4").touch()
            (features / f"v{k:06d}.npy").touch()
            files += 2
    return files


def snakemake(run: Path, *args: str) -> tuple[float, str]:
    """Seconds and output of one snakemake command in ``run``; fails loudly if snakemake does."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(run)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *args], cwd=REPO, capture_output=True, text=True, env=os.environ | {"CUDA_VISIBLE_DEVICES": ""}
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed in {run}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def job_count(output: str) -> int:
    found = re.search(r"^total\s+(\d+)\s*$", output, re.MULTILINE)
    if not found:
        raise SystemExit(f"no job count in snakemake's output:\n{output[-2000:]}")
    return int(found.group(1))


def prepare(base: Path, divisor: int, report: Report) -> tuple[Path, int]:
    """A fresh run folder (config + inventory), reusing a complete inventory of the same size."""
    run = base / f"run_div{divisor}"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["data_root"], config["download_dir"] = "data", "downloads"
    for section, values in NODE.items():
        config[section] = config.get(section, {}) | values
    marker = base / f"inventory_div{divisor}.json"
    inventory = base / f"inventory_div{divisor}"
    if not marker.is_file():
        shutil.rmtree(inventory, ignore_errors=True)
        started = time.perf_counter()
        files = write_inventory(inventory, divisor, config["clip"], config["fps"])
        marker.write_text(json.dumps({"files": files}))
        report(f"inventory 1/{divisor}: {files} empty files in {time.perf_counter() - started:.1f} s (not timed)")
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # the run's own tree (hard links: instant, no data copied), so the outputs it gets stay out of the inventory
    subprocess.run(["cp", "-al", str(inventory), str(run / "data")], check=True)
    return run, json.loads(marker.read_text())["files"]


def measure(base: Path, divisor: int, report: Report) -> dict:
    run, files = prepare(base, divisor, report)
    plan_seconds, plan = snakemake(run, "-n", "all")
    jobs = job_count(plan)
    config = yaml.safe_load((run / "config.yaml").read_text())
    # every planned output made (empty), then --touch dates them in the DAG's order, as after a real run
    directories = {
        paths.trained_model(paths.run_name(config["work_dir"])),
        paths.untrained_model(paths.run_name(config["work_dir"])),
    }
    for listed in re.findall(r"^\s+output: (.+)$", plan, re.MULTILINE):
        for output in (o.strip() for o in listed.split(", ")):
            target = run / output
            if output in directories:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
    # the markers the param functions read (made empty above): where each source put its files
    sources = run / "data" / ".sources"
    for marker in sources.glob("*.json"):
        spec = config["sources"][marker.stem]
        marker.write_text(json.dumps({"dest": spec["dest"]}))
    snakemake(run, "--touch", "--cores", "1", "all")
    recheck_seconds, recheck = snakemake(run, "-n", "all")
    if "Nothing to be done" not in recheck:
        raise SystemExit(f"after --touch the re-check still plans jobs:\n{recheck[-2000:]}")
    return {"files": files, "jobs": jobs, "plan": plan_seconds, "recheck": recheck_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1/20 of the real size (does NOT meet the spec)")
    args = parser.parse_args(argv)
    base = REPO / paths.BENCHMARKS / "dag"
    base.mkdir(parents=True, exist_ok=True)
    log_to_file(REPO / paths.LOGS / "benchmark_dag.log")
    report = Report()
    real_divisor = 20 if args.quick else 1
    small = measure(base, 1000, report)
    real = measure(base, real_divisor, report)
    report(f"{'inventory':<12s} {'files':>8s} {'jobs':>5s} {'plan s':>7s} {'re-check s':>10s}")
    for name, m in (("1/1000", small), (f"1/{real_divisor}", real)):
        report(f"{name:<12s} {m['files']:>8d} {m['jobs']:>5d} {m['plan']:>7.2f} {m['recheck']:>10.2f}")
    seconds = max(real["plan"], real["recheck"])
    vs_small = seconds / max(small["plan"], small["recheck"])
    verdict = "PASS" if seconds <= 10 and real["jobs"] <= 500 else "FAIL"
    report(f"targets: <= 10 s and <= 500 jobs: {verdict}")
    report(
        f"RESULT seconds={seconds:.2f} jobs={real['jobs']} plan_seconds={real['plan']:.2f} "
        f"recheck_seconds={real['recheck']:.2f} files={real['files']} vs_small={vs_small:.2f}"
    )
    report.save(REPO / paths.BENCHMARKS / "dag.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
