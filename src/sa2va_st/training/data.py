"""What a run trains on: the training mix from the manifests, the held-out items, the batches.

- **Mix** (`training_mix`): the ``train`` manifest of every dataset with a positive repeat, each read
  by its task's dataset class (`sa2va_st.datasets`), concatenated in catalog order.
- **Held-out items** (`held_out_items`): per task, the first ``n`` items of the first scored split
  (`catalog` ``eval_splits`` with local ground truth) of the mix's datasets that has answers, in
  evaluation mode (fixed frames, first expressions): the same items at every measurement.
- **Batches** (`TrainingCollator`, the DataLoader's ``collate_fn``): each item encoded with the
  truncating processor; an item whose first answer does not fit is left out and counted; the batch
  records its samples' ids (for errors that name them) and its real and padded token counts (the
  padding fraction). A micro-batch left with no sample is still a micro-batch (``empty``): every rank
  must take part in every gradient reduction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import catalog, paths
from ..catalog import IMAGE_GROUNDING, TASKS, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from ..datasets import ConcatTaskDataset, ImageGroundingDataset, TemporalGroundingDataset, VideoGroundingDataset
from ..errors import DatasetError, SampleTooLongError, TrainingError
from .settings import TrainingSettings

log = logging.getLogger(__name__)


def _manifests_folder(task: str, spatial: str | os.PathLike, temporal: str | os.PathLike) -> str:
    return os.fspath(temporal if task == TEMPORAL_GROUNDING else spatial)


def open_dataset(
    name: str,
    split: str,
    *,
    spatial: str | os.PathLike,
    temporal: str | os.PathLike,
    settings: TrainingSettings,
    num_positions: int,
    train: bool,
    root: str | os.PathLike | None = None,
) -> Any:
    """One dataset's manifest of one split, read by its task's dataset class."""
    task = catalog.dataset(name).task
    path = paths.manifest(_manifests_folder(task, spatial, temporal), name, split)
    if not Path(path).is_file():
        raise TrainingError(
            f"the {split} manifest of {name!r} is missing",
            file=path,
            key=f"training.repeats.{name}",
            fix="build the manifests first (snakemake manifests); for a temporal dataset list it under "
            "temporal_datasets, or set its repeat to 0",
        )
    common = {"train": train, "seed": settings.seed, "root": root}
    if task == IMAGE_GROUNDING:
        return ImageGroundingDataset(path, max_expressions=settings.max_expressions, **common)
    if task == VIDEO_GROUNDING:
        return VideoGroundingDataset(
            path, num_frames=settings.video_frames, max_expressions=settings.max_expressions, **common
        )
    return TemporalGroundingDataset(path, num_positions=num_positions, **common)


def training_mix(
    settings: TrainingSettings,
    *,
    spatial: str | os.PathLike,
    temporal: str | os.PathLike,
    num_positions: int,
    root: str | os.PathLike | None = None,
) -> ConcatTaskDataset:
    """The ``train`` manifests of every dataset with a positive repeat, in catalog order."""
    datasets = [
        open_dataset(
            name,
            "train",
            spatial=spatial,
            temporal=temporal,
            settings=settings,
            num_positions=num_positions,
            train=True,
            root=root,
        )
        for name in catalog.NAMES
        if name in settings.repeats
    ]
    return ConcatTaskDataset(datasets)


def held_out_items(
    settings: TrainingSettings,
    *,
    spatial: str | os.PathLike,
    temporal: str | os.PathLike,
    num_positions: int,
    tasks: Sequence[str],
    root: str | os.PathLike | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per task, up to ``held_out_samples`` evaluation-mode items with answers (see the module docstring)."""
    wanted = settings.held_out_samples
    found: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        for name in (n for n in catalog.NAMES if n in settings.repeats and catalog.dataset(n).task == task):
            for split in (s.name for s in catalog.dataset(name).eval_splits if s.ground_truth == "local"):
                if task in found or not wanted:
                    break
                try:
                    dataset = open_dataset(
                        name,
                        split,
                        spatial=spatial,
                        temporal=temporal,
                        settings=settings,
                        num_positions=num_positions,
                        train=False,
                        root=root,
                    )
                except (TrainingError, DatasetError) as exc:
                    log.info("held-out: %s %s not used (%s)", name, split, exc.what)
                    continue
                items = []
                for index in range(len(dataset)):
                    item = dataset[index]
                    answers = item.get("answers", [item.get("answer")])
                    if all(a is not None for a in answers):
                        items.append(item)
                    if len(items) == wanted:
                        break
                if items:
                    found[task] = items
                    log.info("held-out %s: %d items of %s %s", task, len(items), name, split)
    return found


def sample_id(item: Mapping[str, Any]) -> str:
    """``dataset/split:row ids`` of an item (the manifest ids of its expressions or its query)."""
    ids = item.get("ids") or [item.get("id", f"#{item.get('index')}")]
    return f"{item['dataset']}/{item['split']}:{'+'.join(str(i) for i in ids)}"


class TrainingCollator:
    """DataLoader ``collate_fn``: items → a padded training batch (see the module docstring).

    Besides the processor's keys the batch holds ``ids`` (list[str] of the samples kept), ``skipped``
    (list[str] of those left out), ``skipped_per_task`` ({task: n}), ``tokens`` (real tokens) and
    ``padded_tokens`` (B x L), and ``empty`` (no sample left).
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        samples, ids, skipped = [], [], []
        skipped_per_task = dict.fromkeys(TASKS, 0)
        for item in items:
            try:
                samples.append(self.processor.encode(item))
                ids.append(sample_id(item))
            except SampleTooLongError:
                skipped.append(sample_id(item))
                skipped_per_task[item["task"]] += 1
        extra = {"ids": ids, "skipped": skipped, "skipped_per_task": skipped_per_task}
        if not samples:
            return {"empty": True, "tokens": 0, "padded_tokens": 0, "task": [], **extra}
        batch = self.processor.collate(samples)
        return {
            **batch,
            **extra,
            "empty": False,
            "tokens": int(batch["attention_mask"].sum()),
            "padded_tokens": int(batch["attention_mask"].numel()),
        }


class FirstItems:
    """The first ``n`` items of a dataset, under its name and task (debug mode's small subset)."""

    def __init__(self, dataset: Any, n: int) -> None:
        self.dataset, self.n = dataset, min(int(n), len(dataset))
        self.name, self.task = dataset.name, dataset.task

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.dataset[index]

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def lengths(self) -> Any:
        return self.dataset.lengths()[: self.n]


def first_items(mix: ConcatTaskDataset, n: int) -> ConcatTaskDataset:
    return ConcatTaskDataset([FirstItems(d, n) for d in mix.datasets])
