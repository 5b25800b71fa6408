"""The training mix: datasets concatenated in the sampler's index space, and a collate that keeps lists.

`ConcatTaskDataset` puts dataset ``k`` at global indices ``offsets[k] .. offsets[k] + len_k - 1``
in the order given — exactly `TaskGroupedBatchSampler`'s index space for the same
``specs`` (name, task, length), so::

    mix = ConcatTaskDataset([image_ds, video_ds, temporal_ds])
    sampler = mix.make_sampler(batch_size=2, repeats=catalog.upstream_repeats())  # or build it from mix.specs
    loader = DataLoader(mix, batch_sampler=sampler, collate_fn=collate_keep_lists)
    for epoch in ...:
        sampler.set_epoch(epoch); mix.set_epoch(epoch)   # before iter(loader)

`ConcatTaskDataset.ordered_like(sampler, datasets)` orders datasets to match a sampler built
elsewhere (e.g. from a checkpoint's config), and `check_sampler` verifies the match.
Dataset names (``ds.name``: the manifests' ``dataset`` value unless given) must be distinct,
as the sampler's repeats are keyed by them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset

from ..errors import DatasetError
from .sampler import DatasetSpec, TaskGroupedBatchSampler


class ConcatTaskDataset(Dataset):
    """Datasets (each with ``name``, ``task``, ``__len__``, ``__getitem__``) in one index space."""

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise DatasetError("no datasets to concatenate", key="datasets")
        names = [self._attr(d, "name") for d in self.datasets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DatasetError(
                f"dataset name(s) {dupes} appear more than once",
                key="datasets",
                fix="give each dataset its own name= (the sampler's repeats are keyed by name)",
            )
        self.specs: tuple[DatasetSpec, ...] = tuple(
            DatasetSpec(self._attr(d, "name"), self._attr(d, "task"), len(d)) for d in self.datasets
        )
        lengths = [s.length for s in self.specs]
        self.offsets: tuple[int, ...] = tuple(int(x) for x in np.cumsum([0] + lengths)[:-1])
        self._ends = [o + n for o, n in zip(self.offsets, lengths)]
        self.total_length = sum(lengths)

    @staticmethod
    def _attr(d: object, attr: str) -> str:
        value = getattr(d, attr, None)
        if not isinstance(value, str) or not value:
            raise DatasetError(f"dataset {d!r} has no {attr!r} attribute", key=attr)
        return value

    @classmethod
    def ordered_like(
        cls, sampler: TaskGroupedBatchSampler, datasets: Iterable[Dataset] | Mapping[str, Dataset]
    ) -> ConcatTaskDataset:
        """The concatenation whose index space is ``sampler``'s (datasets matched by name)."""
        items = list(datasets.values()) if isinstance(datasets, Mapping) else list(datasets)
        by_name = {cls._attr(d, "name"): d for d in items}
        missing = [s.name for s in sampler.specs if s.name not in by_name]
        extra = sorted(set(by_name) - {s.name for s in sampler.specs})
        if missing or extra:
            raise DatasetError(
                f"the sampler's datasets {[s.name for s in sampler.specs]} do not match the given ones "
                f"{sorted(by_name)} (missing {missing}, extra {extra})",
                key="datasets",
            )
        concat = cls([by_name[s.name] for s in sampler.specs])
        concat.check_sampler(sampler)
        return concat

    def check_sampler(self, sampler: TaskGroupedBatchSampler) -> None:
        """Raise unless ``sampler`` indexes exactly this concatenation (names, tasks, lengths, order)."""
        ours = [(s.name, s.task, s.length) for s in self.specs]
        theirs = [(s.name, s.task, s.length) for s in sampler.specs]
        if ours != theirs or tuple(sampler.offsets) != self.offsets:
            raise DatasetError(
                f"the sampler's index space {theirs} is not this concatenation's {ours}",
                key="sampler",
                fix="build the sampler from ConcatTaskDataset.specs (or use make_sampler / ordered_like)",
            )

    def lengths(self) -> np.ndarray:
        """(total_length,) every sample's rough token count, in this index space (each dataset's `lengths`)."""
        return np.concatenate([np.asarray(d.lengths(), dtype=np.float64) for d in self.datasets])

    def make_sampler(self, *, batch_size: int, **kwargs: object) -> TaskGroupedBatchSampler:
        """A `TaskGroupedBatchSampler` over this concatenation (kwargs: accumulation, world_size, rank, seed,
        repeats, lengths, group_window)."""
        return TaskGroupedBatchSampler(self.specs, batch_size=batch_size, **kwargs)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to every dataset that has ``set_epoch``."""
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def split_index(self, index: int) -> tuple[int, int]:
        """A global index → ``(position of the dataset in this concatenation, local index)``."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {index!r}")
        i = int(index)
        if not 0 <= i < self.total_length:
            raise IndexError(f"index {index} out of range [0, {self.total_length})")
        k = bisect.bisect_right(self._ends, i)  # first dataset whose end is past i (skips empty ones)
        return k, i - self.offsets[k]

    def __len__(self) -> int:
        return self.total_length

    def __getitem__(self, index: int) -> dict:
        k, local = self.split_index(index)
        return self.datasets[k][local]


def collate_keep_lists(batch: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """A batch of item dicts → ``{"task": task, "size": n, key: [value per item], ...}``.

    Nothing is stacked or padded (images differ in size, items in their number of
    expressions; the model side tokenises and batches). All items must share one task
    (`TaskGroupedBatchSampler` guarantees it) and the same keys.
    """
    if not batch:
        raise DatasetError("an empty batch", key="batch")
    tasks = {item.get("task") for item in batch}
    if len(tasks) != 1:
        raise DatasetError(
            f"a batch mixes tasks {sorted(map(str, tasks))}",
            key="task",
            fix="use TaskGroupedBatchSampler as the DataLoader's batch_sampler",
        )
    keys = list(batch[0].keys())
    for item in batch[1:]:
        if list(item.keys()) != keys:
            raise DatasetError(f"items of one batch have different fields: {keys} vs {list(item.keys())}", key="batch")
    out: dict[str, object] = {"task": tasks.pop(), "size": len(batch)}
    for key in keys:
        if key != "task":
            out[key] = [item[key] for item in batch]
    return out
