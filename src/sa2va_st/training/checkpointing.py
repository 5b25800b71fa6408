"""Checkpoints that are complete or absent: written under a temporary name, renamed, then rotated.

Layout (``{work_dir}/checkpoints/``)::

    step_00000250/
        engine/                 DeepSpeed's save_checkpoint: weights, optimizer shards (one per rank)
        trainable/              the trainable weights as safetensors + JSON (`model.checkpoint.save_trainable`)
        sampler.json            the sampler's state at this step (position, fingerprint)
        progress.json           `Progress`
        rng/rank_00000.json     every rank's Python, NumPy and torch RNG states
        checkpoint.json         written last: step, layout, trajectory and the size of every file above
    .step_00000500.partial/     a save in progress (or one a kill interrupted)
    .removing.step_00000000/    a rotated checkpoint being deleted

Definitions:

- **Complete.** A folder named ``step_<8 digits>`` holding a ``checkpoint.json`` whose listed files
  all exist with their listed sizes. Only complete checkpoints are resumed from or counted.
- **Save.** Rank 0 makes a fresh ``.step_<n>.partial`` folder; every rank writes its part into it
  (a shared filesystem on several nodes); after a barrier rank 0 lists the files in
  ``checkpoint.json``, flushes it to disk and renames the folder to ``step_<n>`` (one atomic
  rename: a kill before it leaves only a partial folder, a kill after it a complete checkpoint).
- **Rotation.** Only after that rename are the oldest complete checkpoints beyond ``keep`` removed,
  each first renamed to ``.removing.<name>`` (so a kill while deleting never leaves a half-deleted
  folder that looks complete). So the newest complete checkpoint is never removed before a newer one
  is complete, and after a save exactly ``keep`` complete checkpoints remain (fewer early in a run).
- **Start.** Rank 0 deletes partial and removing folders left by a kill before anything else.

DeepSpeed's engine folder holds ``torch.save`` files (pickles): DeepSpeed's own format for its
optimizer shards, written by this run and read back only by DeepSpeed's loader; the weights a user
shares (``trainable/`` and the exported model) are safetensors.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write_text, disk_full_error, is_disk_full
from ..errors import TrainingError

FORMAT_VERSION = 1
META = "checkpoint.json"
ENGINE = "engine"
ENGINE_TAG = "state"
TRAINABLE = "trainable"
SAMPLER = "sampler.json"
PROGRESS = "progress.json"
RNG = "rng"
_NAME = re.compile(r"^step_(\d{8})$")


def checkpoint_name(step: int) -> str:
    return f"step_{int(step):08d}"


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: its step, folder and ``checkpoint.json``."""

    step: int
    path: Path
    meta: dict[str, Any]

    def read_json(self, name: str) -> dict[str, Any]:
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TrainingError(
                f"checkpoint file unreadable: {exc}",
                file=str(path),
                fix="remove this checkpoint folder; the run resumes from the one before",
            ) from exc


def _listed_files(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != META
    }


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder of ``folder`` to disk (a rename is only as durable as what it names)."""
    for path in [*sorted(folder.rglob("*")), folder]:
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        try:
            fd = os.open(path, flags)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


class CheckpointManager:
    """Saves, lists, rotates and finds checkpoints under ``root`` (see the module docstring).

    ``rank`` 0 does the folder operations; ``barrier`` synchronises the ranks (a no-op for one process).
    """

    def __init__(self, root: str | os.PathLike, *, keep: int, rank: int, barrier: Callable[[], None]) -> None:
        if keep < 1:
            raise TrainingError(f"save_total_limit must be at least 1, got {keep}", key="training.save_total_limit")
        self.root = Path(root)
        self.keep = int(keep)
        self.rank = int(rank)
        self.barrier = barrier

    # ------------------------------------------------------------------ reading

    def complete(self) -> list[Checkpoint]:
        """The complete checkpoints, oldest first."""
        found = []
        if not self.root.is_dir():
            return found
        for path in self.root.iterdir():
            match = _NAME.match(path.name)
            if not match or not path.is_dir():
                continue
            try:
                meta = json.loads((path / META).read_text())
            except (OSError, ValueError):
                continue
            files = meta.get("files") if isinstance(meta, dict) else None
            if meta.get("format_version") != FORMAT_VERSION or not isinstance(files, dict):
                continue
            if all((path / name).is_file() and (path / name).stat().st_size == size for name, size in files.items()):
                found.append(Checkpoint(int(match.group(1)), path, meta))
        return sorted(found, key=lambda c: c.step)

    def latest(self) -> Checkpoint | None:
        complete = self.complete()
        return complete[-1] if complete else None

    # ------------------------------------------------------------------ writing

    def clean_stale(self) -> list[str]:
        """Rank 0: delete what a killed save or rotation left; returns the names removed."""
        removed = []
        if self.rank == 0 and self.root.is_dir():
            for path in self.root.iterdir():
                if path.name.startswith((".step_", ".removing.")):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path.name)
        self.barrier()
        return sorted(removed)

    def save(self, step: int, write: Callable[[Path], None], meta: Mapping[str, Any]) -> Path:
        """Every rank calls this; ``write(folder)`` writes this rank's part. Returns the complete folder."""
        name = checkpoint_name(step)
        staging = self.root / f".{name}.partial"
        final = self.root / name
        if self.rank == 0:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
        self.barrier()
        try:
            write(staging)
            self.barrier()
            if self.rank == 0:
                record = {"format_version": FORMAT_VERSION, "step": int(step), **meta, "files": _listed_files(staging)}
                (staging / META).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
                _fsync_tree(staging)
        except Exception as error:
            if not is_disk_full(error, staging):
                raise
            full = self._disk_full(step, staging)  # the numbers first: removing the partial frees space
            shutil.rmtree(staging, ignore_errors=True)  # the other ranks stop with this one (torchrun)
            raise full from error
        if self.rank == 0:
            if final.exists():  # a checkpoint of this step from before a restart: replace it whole
                self._remove(final)
            os.replace(staging, final)
            _fsync_tree(self.root)
            self.rotate()
        self.barrier()
        return final

    def _disk_full(self, step: int, staging: Path):
        """The DiskFullError of a save that did not fit, with the size of the newest complete checkpoint."""
        latest = self.latest()
        if latest is None:
            return disk_full_error(staging, detail=f"checkpoint {step} did not fit")
        size = sum(latest.meta["files"].values())
        return disk_full_error(
            staging,
            detail=f"checkpoint {step} did not fit (step {latest.step}'s takes {size:,} bytes; a save needs room "
            f"for save_total_limit + 1 = {self.keep + 1} of them until the oldest is removed)",
        )

    def rotate(self) -> list[int]:
        """Rank 0: remove the oldest complete checkpoints beyond ``keep``; returns their steps."""
        complete = self.complete()
        gone = complete[: max(0, len(complete) - self.keep)]
        for checkpoint in gone:
            self._remove(checkpoint.path)
        return [c.step for c in gone]

    def remove_all(self) -> None:
        """Rank 0: remove every checkpoint (starting over)."""
        if self.rank == 0 and self.root.is_dir():
            for checkpoint in self.complete():
                self._remove(checkpoint.path)
        self.clean_stale()

    def _remove(self, path: Path) -> None:
        doomed = path.with_name(f".removing.{path.name}")
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


# ---------------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy (legacy global) and torch RNG states as JSON-able values."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        states = [torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8) for s in state["cuda"]]
        torch.cuda.set_rng_state_all(states[: torch.cuda.device_count()])


def write_rng_state(folder: Path, rank: int) -> None:
    atomic_write_text(folder / RNG / f"rank_{rank:05d}.json", json.dumps(rng_state()) + "\n")


def read_rng_state(checkpoint: Checkpoint, rank: int) -> dict[str, Any] | None:
    """This rank's saved RNG state; None when the checkpoint was saved by fewer ranks."""
    path = checkpoint.path / RNG / f"rank_{rank:05d}.json"
    return checkpoint.read_json(f"{RNG}/{path.name}") if path.is_file() else None
