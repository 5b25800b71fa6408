"""The benchmark splits a run is scored on, and the evaluation-mode dataset of each.

A benchmark is one ``(dataset, split)`` of `catalog` (its ``eval_splits``), named ``dataset/split``
in the config (``evaluation.benchmarks``; ``null`` = every split of every dataset in the training
mix). Splits whose labels a server holds (MeViS valid, Ref-YouTube-VOS valid) are listed with
``scored_here`` false: their answers are predicted, not scored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import catalog, paths
from ..catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from ..errors import EvaluationError


@dataclass(frozen=True)
class Benchmark:
    dataset: str
    split: str
    task: str
    scored_here: bool
    subsets: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.split}"


def all_benchmarks(datasets: Iterable[str] = catalog.NAMES) -> list[Benchmark]:
    """Every evaluation split of ``datasets``, in catalog order."""
    wanted = set(datasets)
    return [
        Benchmark(d.name, s.name, d.task, s.ground_truth == "local", s.subsets)
        for d in catalog.DATASETS
        if d.name in wanted
        for s in d.eval_splits
    ]


def select_benchmarks(selected: Sequence[str] | None, datasets: Iterable[str]) -> list[Benchmark]:
    """The config's ``evaluation.benchmarks`` (``dataset/split`` names) or, for ``None``, every split of
    ``datasets``; an unknown name fails naming the known ones."""
    if selected is None:
        return all_benchmarks(datasets)
    known = {b.name: b for b in all_benchmarks()}
    unknown = [name for name in selected if name not in known]
    if unknown:
        raise EvaluationError(
            f"unknown benchmark split(s) {unknown}",
            key="evaluation.benchmarks",
            fix=f"use dataset/split names among {sorted(known)}",
        )
    return [known[name] for name in selected]


def open_benchmark(
    benchmark: Benchmark,
    *,
    spatial: str | os.PathLike,
    temporal: str | os.PathLike,
    video_frames: int,
    num_positions: int,
    root: str | os.PathLike | None = None,
) -> Any:
    """The split's manifest read in evaluation mode, every expression of an image or clip kept."""
    from ..datasets import ImageGroundingDataset, TemporalGroundingDataset, VideoGroundingDataset

    folder = temporal if benchmark.task == TEMPORAL_GROUNDING else spatial
    path = paths.manifest(os.fspath(folder), benchmark.dataset, benchmark.split)
    common = {"train": False, "root": root}
    if benchmark.task == IMAGE_GROUNDING:
        return ImageGroundingDataset(path, max_expressions=None, **common)
    if benchmark.task == VIDEO_GROUNDING:
        return VideoGroundingDataset(path, num_frames=video_frames, max_expressions=None, **common)
    return TemporalGroundingDataset(path, num_positions=num_positions, **common)
