#!/usr/bin/env python
"""Temporal-grounding sample loading: `TemporalGroundingDataset` against the upstream pattern.

Both paths read the same synthetic CLIP features (one file per video, float16 ``(T, D)``;
by default 300 videos, T uniform in [240, 360], D = 1024), the same manifest rows (the
same queries, ``--queries-per-video`` per video) and produce one sample per row, in one
process with ``--torch-threads`` (default 1, what a DataLoader worker gets), after a warm-up
pass over every file (warm page cache for both):

(a) ours      `sa2va_st.datasets.TemporalGroundingDataset` (training mode): per sample the
              ``.npy`` is opened once and memory-mapped (`sa2va_st.datasets.npy.read_rows`:
              ``np.load(mmap_mode="r")`` semantics with one open, header cached), the 100 rows of
              `sample_positions(T, 100, rng)` are copied out as a float32 (100, D) tensor, and
              the answer tokens are built. The full item dict, as training gets it.
(b) upstream  the upstream dataset's pattern, re-implemented: per sample ``k`` frame indices
              are chosen and, **for every frame**, the whole per-video ``.pt`` is
              ``torch.load``-ed and the one row kept; the rows are stacked and cast to float32.
              ``k`` = ``--upstream-frames`` (default 30, the middle of upstream's 20-40 frames;
              fewer loads than our 100 rows, so this favours upstream). ``torch.load`` runs with
              ``weights_only=False`` (upstream's torch < 2.6 default, and faster than the safe
              unpickler; ``--weights-only`` for True). The table also shows
              (b100): the same pattern with our 100 positions (the same output as (a)).

Same data in both formats (``np.save`` / ``torch.save`` of the same float16 array), same
positions rule, same number of samples. Each path runs ``--rounds`` times over all samples;
the best round counts. (b100) is checked to give exactly (a)'s features.

The last printed line is ``RESULT speedup=<(a) samples/s / (b) samples/s>`` (target >= 20).

Usage (from the repository root)::

    .venv/bin/python benchmarks/temporal_loading.py              # 300 videos, T ~ 300, D = 1024
    .venv/bin/python benchmarks/temporal_loading.py --quick      # smoke run (40 videos)

Writes the table + RESULT to results/benchmarks/temporal_loading.txt; features are cached in
results/benchmarks/temporal_features/ (rewritten when the sizes or seed change).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from sa2va_st.datasets import TemporalGroundingDataset
from sa2va_st.formats.windows import encode_window_tokens, sample_positions, window_to_indices

DEFAULT_CACHE = Path("results/benchmarks/temporal_features")
DEFAULT_REPORT = Path("results/benchmarks/temporal_loading.txt")
FPS = 10.0


def write_features(cache: Path, *, videos: int, t_min: int, t_max: int, dim: int, queries: int, seed: int) -> Path:
    """Write (or reuse) the synthetic features (.npy + .pt per video) and a manifest; return the manifest."""
    meta = dict(videos=videos, t_min=t_min, t_max=t_max, dim=dim, queries=queries, seed=seed, version=1)
    meta_path = cache / "meta.json"
    manifest = cache / "manifest.parquet"
    if meta_path.is_file() and manifest.is_file():
        try:
            if json.loads(meta_path.read_text()) == meta:
                return manifest
        except ValueError:
            pass
    if cache.exists():
        shutil.rmtree(cache)
    (cache / "npy").mkdir(parents=True)
    (cache / "pt").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(videos):
        t = int(rng.integers(t_min, t_max + 1))
        arr = rng.standard_normal((t, dim), dtype=np.float32)
        arr /= np.linalg.norm(arr, axis=1, keepdims=True)  # L2-normalised, as CLIP features
        arr = arr.astype(np.float16)
        name = f"vid{v:05d}"
        np.save(cache / "npy" / f"{name}.npy", arr)
        torch.save(torch.from_numpy(arr), cache / "pt" / f"{name}.pt")
        duration = t / FPS
        for q in range(queries):
            start = float(rng.uniform(0, 0.8 * duration))
            end = float(min(duration, start + rng.uniform(0.05, 0.4) * duration))
            rows.append(
                dict(
                    id=f"{name}_{q}",
                    dataset="synthetic",
                    split="train",
                    video=name,
                    sentence=f"query {q} of {name}",
                    video_path=f"videos/{name}.mp4",
                    features_path=str(cache / "npy" / f"{name}.npy"),
                    fps=FPS,
                    num_features=t,
                    duration=duration,
                    start_s=start,
                    end_s=end,
                    start_idx=int(start * FPS),
                    end_idx=min(t - 1, int(end * FPS)),
                )
            )
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    meta_path.write_text(json.dumps(meta))
    return manifest


class UpstreamPattern:
    """The upstream loading pattern: the whole per-video ``.pt`` is loaded once per sampled frame."""

    def __init__(
        self, manifest: Path, *, frames: int, num_positions: int = 100, seed: int = 0, weights_only: bool = False
    ) -> None:
        table = pq.read_table(manifest).to_pydict()
        self.weights_only = weights_only
        self.rows = table
        self.frames = frames
        self.num_positions = num_positions
        self.seed = seed
        self.pt = [str(Path(p).parent.parent / "pt" / (Path(p).stem + ".pt")) for p in table["features_path"]]

    def __len__(self) -> int:
        return len(self.pt)

    def positions(self, index: int, k: int) -> np.ndarray:
        # same rule and the same per-item RNG as ours (salt 3 = temporal, epoch 0)
        rng = np.random.default_rng([self.seed, 0, index, 3])
        return sample_positions(int(self.rows["num_features"][index]), k, rng)

    def __getitem__(self, index: int) -> dict:
        r = self.rows
        rows = self.positions(index, self.frames)
        per_frame = []
        for j in rows.tolist():
            feats = torch.load(
                self.pt[index], map_location="cpu", weights_only=self.weights_only
            )  # whole file, one row
            per_frame.append(feats[j])
        features = torch.stack(per_frame).float()  # (k, D)
        a, b = window_to_indices(r["start_s"][index], r["end_s"][index], r["duration"][index], self.num_positions)
        return {
            "id": r["id"][index],
            "sentence": r["sentence"][index],
            "features": features,
            "duration": r["duration"][index],
            "answer": encode_window_tokens(a, b, self.num_positions),
        }


def time_rounds(ds, rounds: int) -> list[float]:
    times = []
    n = len(ds)
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            ds[i]
        times.append(time.perf_counter() - t0)
    return times


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=300, help="number of videos (default 300)")
    p.add_argument("--t-min", type=int, default=240, help="fewest features per video (default 240)")
    p.add_argument("--t-max", type=int, default=360, help="most features per video (default 360)")
    p.add_argument("--dim", type=int, default=1024, help="feature width D (default 1024)")
    p.add_argument("--queries-per-video", type=int, default=2, help="samples per video (default 2)")
    p.add_argument(
        "--upstream-frames",
        type=int,
        default=30,
        help="frames (= whole-file loads) per upstream sample (default 30: upstream picks 20-40)",
    )
    p.add_argument("--rounds", type=int, default=3, help="timed passes per path; the best counts (default 3)")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads for both paths (default 1, as in a DataLoader worker)",
    )
    p.add_argument(
        "--weights-only",
        action="store_true",
        help="torch.load(weights_only=True) for upstream (default False: upstream's torch < 2.6 "
        "default, and the faster one)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="40 videos, 1 round (smoke run)")
    p.add_argument("--no-b100", dest="b100", action="store_false", help="skip the (b100) row")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    args = p.parse_args(argv)
    if args.quick:
        args.videos, args.rounds = min(args.videos, 40), 1
    if not (1 <= args.t_min <= args.t_max) or args.videos < 1 or args.dim < 1 or args.upstream_frames < 1:
        p.error("sizes must be >= 1 and t-min <= t-max")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.torch_threads))
    t0 = time.perf_counter()
    manifest = write_features(
        args.cache_dir,
        videos=args.videos,
        t_min=args.t_min,
        t_max=args.t_max,
        dim=args.dim,
        queries=args.queries_per_video,
        seed=args.seed,
    )
    prep_s = time.perf_counter() - t0

    ours = TemporalGroundingDataset(manifest, num_positions=100, train=True, seed=args.seed)
    upstream = UpstreamPattern(manifest, frames=args.upstream_frames, seed=args.seed, weights_only=args.weights_only)
    upstream100 = UpstreamPattern(manifest, frames=100, seed=args.seed, weights_only=args.weights_only)
    n = len(ours)
    assert len(upstream) == n

    # equivalence: the upstream pattern with our 100 positions gives exactly our features
    for i in range(min(n, 20)):
        a, b = ours[i], upstream100[i]
        if not torch.equal(a["features"], b["features"]) or a["answer"] != b["answer"]:
            print(f"MISMATCH at sample {i}: the two paths disagree", file=sys.stderr)
            return 1

    # warm the page cache of both formats (one full read of every file)
    for i in range(n):
        np.asarray(np.load(ours._cols["features_path"][i]))  # noqa: SLF001 - benchmark only
        torch.load(upstream.pt[i], map_location="cpu")

    results = [("(a) ours: mmap .npy once, 100 rows", 1, time_rounds(ours, args.rounds))]
    results.append(
        (
            f"(b) upstream: torch.load .pt per frame, {args.upstream_frames} frames",
            args.upstream_frames,
            time_rounds(upstream, args.rounds),
        )
    )
    if args.b100:
        results.append(("(b100) upstream pattern, our 100 positions", 100, time_rounds(upstream100, args.rounds)))

    total_t = int(sum(ours._num_features))  # noqa: SLF001
    mb = sum(Path(p).stat().st_size for p in set(ours._cols["features_path"])) / 2**20  # noqa: SLF001
    lines = [
        f"Temporal sample loading (one process, warm page cache, best of {args.rounds} round(s) over all samples)",
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"numpy {np.__version__}, torch threads {torch.get_num_threads()}, "
        f"upstream torch.load weights_only={args.weights_only}",
        f"data: {args.videos} videos, T in [{args.t_min}, {args.t_max}] (mean {total_t / n:.0f} over samples), "
        f"D={args.dim}, float16, {mb:.0f} MiB of .npy (same again as .pt); {n} samples "
        f"({args.queries_per_video} per video); cache {args.cache_dir} (prepared in {prep_s:.1f} s)",
        "",
        f"{'path':<52} {'file opens/sample':>17} {'best s':>9} {'samples/s':>11} {'ms/sample':>10}",
    ]
    rate = {}
    for name, opens, times in results:
        best = min(times)
        rate[name] = n / best
        lines.append(f"{name:<52} {opens:>17} {best:>9.3f} {n / best:>11.1f} {1000 * best / n:>10.3f}")
    r_ours, r_up = rate[results[0][0]], rate[results[1][0]]
    lines.append("")
    lines.append(f"speedup (a)/(b) = {r_ours / r_up:.1f}x (upstream at {args.upstream_frames} frames/sample)")
    if args.b100:
        lines.append(f"speedup (a)/(b100) = {r_ours / rate[results[2][0]]:.1f}x (same 100 rows, same output)")
    lines.append("check: (b100) features == (a) features on the first samples: ok")
    lines.append(f"RESULT speedup={r_ours / r_up:.1f}")
    text = "\n".join(lines)
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
