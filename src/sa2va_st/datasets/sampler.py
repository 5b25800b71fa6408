"""A task-grouped, distributed-aware batch sampler with per-dataset repeats and mid-epoch resume.

Definitions:

- **Index space.** The datasets are concatenated in the order given; dataset ``k``
  owns global indices ``offsets[k] .. offsets[k] + length_k - 1``
  (`TaskGroupedBatchSampler.split_index` maps back to ``(name, local index)``).
- **Repeats.** Per epoch dataset ``k`` contributes ``floor(length_k * repeat_k)`` samples:
  every index ``floor(repeat_k)`` times, plus, for a fractional repeat, a random subset
  (without replacement, drawn per epoch) of ``floor(length_k * frac(repeat_k))`` indices.
  Upstream lists MeViS twice in its dataset list, each with repeat 4; here it is *one*
  entry with repeat 8 (`sa2va_st.catalog`): the same samples per epoch, and each
  dataset appears once in the index space. Duplicate names are rejected.
- **Global batch.** The samples of one optimizer step:
  ``global_batch_size = world_size * batch_size * accumulation`` samples of ONE task. Per
  epoch and task the samples of all its datasets are shuffled together and cut into
  global batches. **Tail rule: drop.** The ``count_t % global_batch_size`` samples left
  over at the end of task ``t``'s shuffled pool are dropped for that epoch (fewer than
  one global batch per task and epoch; which samples are dropped changes with the
  epoch). No padding, so no sample is ever seen twice because of padding.
- **Length grouping** (``lengths`` given: an estimate of each sample's tokens). After the
  shuffle, each task's pool is cut into windows of ``group_window`` global batches, and
  each window is sorted by length (longest first, ties in shuffled order) before it is cut
  into global batches: the samples of a micro-batch are then of similar length, so
  padding stays small, while the batches stay random (windows differ every epoch, and the
  batch order is shuffled below).
- **Order.** The global batches of all tasks are then shuffled together (tasks
  interleave in proportion to their size). Everything is drawn from
  ``numpy.random.default_rng([seed, epoch])``: deterministic for ``(seed, epoch)``,
  identical on every rank; world size, per-rank batch size and accumulation enter only
  through ``global_batch_size`` (8 x 2 x 4 and 4 x 2 x 8 give the same global batches).
- **Micro-batches.** A global batch is split into ``accumulation x world_size`` slices of
  ``batch_size``: micro-step ``k`` of the step gives rank ``r`` slice ``k * world_size + r``.
  So the slices of a step are the same whatever the split of its product into ranks and
  accumulation: a run saved on 2 ranks x accumulation 4 resumes on 1 rank x accumulation 8
  with the same micro-batches in every step (and the same gradient, up to float
  rounding). Every rank yields ``accumulation`` micro-batches per global batch, the same
  number on every rank.
- **Resume.** ``set_epoch(epoch, start_batch=k)`` makes the next iteration yield the
  micro-batches of global batches ``k .. batches_per_epoch - 1`` of that epoch (computing
  the epoch's permutation, which is cheap, but touching no data). ``len(sampler)`` is the
  number of micro-batches the next iteration yields. The trainer counts the batches it has *consumed*
  (a DataLoader prefetches, so the sampler cannot know) and checkpoints
  ``sampler.state_dict(batches_done_in_epoch)``; ``load_state_dict`` restores it and
  checks that the datasets, repeats, global batch size and seed are the same
  (`SamplerError` otherwise). `position` converts a global step count into
  ``(epoch, start_batch)``.

Use it as ``DataLoader(concat_dataset, batch_sampler=sampler)``; call
``sampler.set_epoch(epoch)`` before each epoch (as with ``DistributedSampler``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler

from .. import catalog
from ..errors import Sa2vaError

_STATE_FORMAT = 1


def repeats_from_config(config: Mapping[str, object]) -> dict[str, float]:
    """The training mix's repeat factors: upstream's, overridden by ``training.repeats`` of the config."""
    overrides = (config.get("training") or {}).get("repeats") or {}
    return {**catalog.upstream_repeats(), **{name: float(value) for name, value in overrides.items()}}


class SamplerError(Sa2vaError):
    """The sampler's datasets, batch layout or resume state are inconsistent."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the training mix: its name, task, number of samples and repeat factor."""

    name: str
    task: str
    length: int
    repeat: float = 1.0


def _as_spec(item: DatasetSpec | Sequence[object]) -> DatasetSpec:
    if isinstance(item, DatasetSpec):
        return item
    if isinstance(item, (tuple, list)) and len(item) in (3, 4):
        return DatasetSpec(*item)  # type: ignore[arg-type]
    raise SamplerError(f"a dataset entry must be DatasetSpec or (name, task, length[, repeat]), got {item!r}")


def _dist_default(world_size: int | None, rank: int | None) -> tuple[int, int]:
    if world_size is not None and rank is not None:
        return world_size, rank
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return (
            dist.get_world_size() if world_size is None else world_size,
            dist.get_rank() if rank is None else rank,
        )
    return (1 if world_size is None else world_size, 0 if rank is None else rank)


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SamplerError(f"{name} must be an integer >= {minimum}, got {value!r}", key=name)
    return int(value)


class TaskGroupedBatchSampler(Sampler[list[int]]):
    """Yields, for this rank, lists of global indices; every global batch holds one task only."""

    def __init__(
        self,
        datasets: Sequence[DatasetSpec | Sequence[object]],
        *,
        batch_size: int,
        accumulation: int = 1,
        world_size: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        repeats: Mapping[str, float] | None = None,
        lengths: Sequence[float] | np.ndarray | None = None,
        group_window: int = 50,
    ) -> None:
        specs = [_as_spec(d) for d in datasets]
        if not specs:
            raise SamplerError("no datasets to sample from", key="datasets")
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SamplerError(
                f"dataset(s) listed more than once: {dupes}",
                key="datasets",
                fix="list each dataset once and add up its repeats (upstream's MeViS twice x 4 = once x 8)",
            )
        if repeats is not None:
            unknown = sorted(set(repeats) - set(names))
            if unknown:
                raise SamplerError(
                    f"repeats given for unknown dataset(s) {unknown}; datasets are {names}", key="repeats"
                )
            specs = [DatasetSpec(s.name, s.task, s.length, repeats.get(s.name, s.repeat)) for s in specs]
        for s in specs:
            if not isinstance(s.name, str) or not s.name or not isinstance(s.task, str) or not s.task:
                raise SamplerError(f"dataset name and task must be non-empty strings: {s!r}", key="datasets")
            _check_int(s.length, f"length of {s.name}", 0)
            r = s.repeat
            if (
                isinstance(r, bool)
                or not isinstance(r, (int, float, np.integer, np.floating))
                or not (math.isfinite(r) and r >= 0)
            ):
                raise SamplerError(f"repeat of {s.name} must be a finite number >= 0, got {r!r}", key="repeats")
        self.specs: tuple[DatasetSpec, ...] = tuple(
            DatasetSpec(s.name, s.task, int(s.length), float(s.repeat)) for s in specs
        )
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        world_size, rank = _dist_default(world_size, rank)
        self.world_size = _check_int(world_size, "world_size", 1)
        self.rank = _check_int(rank, "rank", 0)
        if self.rank >= self.world_size:
            raise SamplerError(f"rank {self.rank} is not below world_size {self.world_size}", key="rank")
        self.seed = int(seed)
        self.accumulation = _check_int(accumulation, "accumulation", 1)
        self.global_batch_size = self.batch_size * self.world_size * self.accumulation
        self.group_window = _check_int(group_window, "group_window", 1)
        self.lengths: np.ndarray | None = None
        if lengths is not None:
            self.lengths = np.asarray(lengths, dtype=np.float64)
            if self.lengths.shape != (sum(s.length for s in self.specs),):
                raise SamplerError(
                    f"{self.lengths.shape[0] if self.lengths.ndim == 1 else self.lengths.shape} lengths for "
                    f"{sum(s.length for s in self.specs)} samples",
                    key="lengths",
                    fix="pass one length per index of the concatenated datasets (ConcatTaskDataset.lengths())",
                )
        self.offsets: tuple[int, ...] = tuple(int(x) for x in np.cumsum([0] + [s.length for s in self.specs])[:-1])
        self.total_length = sum(s.length for s in self.specs)
        self.tasks: tuple[str, ...] = tuple(dict.fromkeys(s.task for s in self.specs))
        self.batches_per_task: dict[str, int] = {
            t: self.samples_per_task()[t] // self.global_batch_size for t in self.tasks
        }
        self.batches_per_epoch = sum(self.batches_per_task.values())
        if self.batches_per_epoch == 0:
            raise SamplerError(
                f"no task has a full global batch of {self.global_batch_size} samples "
                f"(samples per task and epoch: {self.samples_per_task()})",
                key="batch_size",
                fix="lower the batch size or the number of processes, or raise the repeats",
            )
        self.epoch = 0
        self.start_batch = 0
        self._cache: tuple[int, np.ndarray] | None = None

    # ------------------------------------------------------------------ counts

    def samples_per_dataset(self) -> dict[str, int]:
        """Samples each dataset contributes per epoch before the tail rule: ``floor(length * repeat)``."""
        return {s.name: math.floor(s.length * s.repeat + 1e-9) for s in self.specs}

    def samples_per_task(self) -> dict[str, int]:
        """Samples per task and epoch before the tail rule."""
        per = self.samples_per_dataset()
        out = {t: 0 for t in dict.fromkeys(s.task for s in self.specs)}
        for s in self.specs:
            out[s.task] += per[s.name]
        return out

    def dropped_per_task(self) -> dict[str, int]:
        """Samples the tail rule drops per task and epoch (each fewer than one global batch)."""
        return {t: c % self.global_batch_size for t, c in self.samples_per_task().items()}

    def split_index(self, index: int) -> tuple[str, int]:
        """A global index → ``(dataset name, index inside that dataset)``."""
        if not 0 <= index < self.total_length:
            raise SamplerError(f"index {index} outside [0, {self.total_length})")
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        while self.specs[k].length == 0 or index - self.offsets[k] >= self.specs[k].length:
            k += 1  # skip empty datasets that share an offset
        return self.specs[k].name, index - self.offsets[k]

    def task_of(self, index: int) -> str:
        """The task of the dataset that owns a global index."""
        name, _ = self.split_index(index)
        return next(s.task for s in self.specs if s.name == name)

    # ------------------------------------------------------------------ the plan

    def _pool(self, k: int, rng: np.random.Generator) -> np.ndarray:
        s = self.specs[k]
        idx = np.arange(self.offsets[k], self.offsets[k] + s.length, dtype=np.int64)  # (L,)
        if s.length == 0:
            return idx
        whole, extra = divmod(self.samples_per_dataset()[s.name], s.length)
        parts = [np.tile(idx, whole)]
        if extra > 0:
            parts.append(rng.choice(idx, size=extra, replace=False))
        return np.concatenate(parts)

    def global_batches(self, epoch: int) -> np.ndarray:
        """The epoch's global batches: (batches_per_epoch, global_batch_size) int64, same on every rank."""
        epoch = _check_int(epoch, "epoch", 0)
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        g = self.global_batch_size
        per_task: list[np.ndarray] = []
        for task in self.tasks:  # fixed order: the RNG stream is reproducible
            pools = [self._pool(k, rng) for k, s in enumerate(self.specs) if s.task == task]
            pool = rng.permutation(np.concatenate(pools))  # (count_t,)
            n = len(pool) // g  # tail rule: drop the remainder
            pool = pool[: n * g]
            if self.lengths is not None:  # length grouping: sort each window of group_window batches
                window = self.group_window * g
                for start in range(0, len(pool), window):
                    part = pool[start : start + window]
                    pool[start : start + window] = part[np.argsort(-self.lengths[part], kind="stable")]
            per_task.append(pool.reshape(n, g))
        batches = np.concatenate(per_task, axis=0)  # (B, g)
        batches = batches[rng.permutation(len(batches))]
        batches.setflags(write=False)
        self._cache = (epoch, batches)
        return batches

    # ------------------------------------------------------------------ Sampler API

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch; the next iteration starts at global batch ``start_batch`` of it."""
        epoch = _check_int(epoch, "epoch", 0)
        start_batch = _check_int(start_batch, "start_batch", 0)
        if start_batch > self.batches_per_epoch:
            raise SamplerError(
                f"start_batch {start_batch} is past the end of the epoch ({self.batches_per_epoch} batches)",
                key="start_batch",
            )
        self.epoch, self.start_batch = epoch, start_batch

    def position(self, global_batches_done: int) -> tuple[int, int]:
        """``(epoch, start_batch)`` after ``global_batches_done`` batches counted from epoch 0."""
        done = _check_int(global_batches_done, "global_batches_done", 0)
        return divmod(done, self.batches_per_epoch)

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.accumulation

    def micro_batches(self, row: np.ndarray) -> list[np.ndarray]:
        """This rank's micro-batches of one global batch, in micro-step order: slices k * world_size + rank."""
        b = self.batch_size
        return [
            row[(k * self.world_size + self.rank) * b : (k * self.world_size + self.rank + 1) * b]
            for k in range(self.accumulation)
        ]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches(self.epoch)
        for row in batches[self.start_batch :]:
            for micro in self.micro_batches(row):
                yield micro.tolist()

    # ------------------------------------------------------------------ checkpoints

    def fingerprint(self) -> str:
        """A hash of everything that defines the global order: datasets, repeats, global batch size, seed.

        World size, per-rank batch size and accumulation enter only through their product, so a
        run may resume on another number of processes when the global batch size stays the same.
        """
        blob = json.dumps(
            {
                "specs": [[s.name, s.task, s.length, s.repeat] for s in self.specs],
                "global_batch_size": self.global_batch_size,
                "seed": self.seed,
                "tail": "drop",
                "format": _STATE_FORMAT,
                "grouping": None
                if self.lengths is None
                else [self.group_window, hashlib.sha256(self.lengths.tobytes()).hexdigest()[:16]],
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def state_dict(self, batches_done: int | None = None) -> dict[str, object]:
        """Where to resume: ``batches_done`` global batches of the current epoch are consumed.

        ``None`` means "none of this iteration": the current ``start_batch`` is kept. A
        finished epoch rolls over to ``(epoch + 1, 0)``.
        """
        start = self.start_batch if batches_done is None else _check_int(batches_done, "batches_done", 0)
        if start > self.batches_per_epoch:
            raise SamplerError(f"{start} batches done but the epoch has {self.batches_per_epoch}", key="batches_done")
        epoch = self.epoch
        if start == self.batches_per_epoch:
            epoch, start = epoch + 1, 0
        return {"format": _STATE_FORMAT, "fingerprint": self.fingerprint(), "epoch": epoch, "start_batch": start}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore a `state_dict`; refuses one written for other datasets, repeats, global batch size or seed."""
        try:
            fmt, fp, epoch, start = state["format"], state["fingerprint"], state["epoch"], state["start_batch"]
        except (KeyError, TypeError) as exc:
            raise SamplerError(
                f"not a sampler state: {state!r}", key="sampler", fix="resume from a checkpoint this trainer wrote"
            ) from exc
        if fmt != _STATE_FORMAT or fp != self.fingerprint():
            raise SamplerError(
                "the checkpoint's data order was made for other datasets, repeats, global batch size or seed",
                key="sampler.fingerprint",
                fix="resume with the same data and batch settings, or start a new work dir",
            )
        self.set_epoch(epoch, start)  # type: ignore[arg-type]
