"""`Progress`: how far a run is, saved in every checkpoint under fixed keys and checked when read back.

- ``step``: optimizer steps done (the next step to run has this index; its learning rate is
  ``Schedule.lr_at(step)``).
- ``samples`` / ``tokens``: samples and real (unpadded) tokens trained on so far, over all ranks;
  ``skipped``: samples per task left out because their first answer did not fit in ``max_length``.
- ``elapsed_s``: training seconds so far, over restarts.

Where the sampler stands follows from ``step`` (``divmod(step, batches_per_pass)``: pass and global
batch within it); the sampler's own state is saved beside it and must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..catalog import TASKS
from ..errors import TrainingError

FORMAT_VERSION = 1


@dataclass
class Progress:
    step: int = 0
    samples: int = 0
    tokens: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASKS, 0))
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], file: str) -> Progress:
        """Read a saved `to_dict`; any other set of keys, or a bad value, is refused naming the file."""
        expected = {"format_version"} | {f.name for f in fields(cls)}
        if set(data) != expected or data.get("format_version") != FORMAT_VERSION:
            raise TrainingError(
                f"progress has keys {sorted(data)} (format {data.get('format_version')!r}); this code reads "
                f"{sorted(expected)} (format {FORMAT_VERSION})",
                file=file,
                key="progress",
                fix="resume with the sa2va_st version that wrote the checkpoint, or start over",
            )
        try:
            progress = cls(
                step=int(data["step"]),
                samples=int(data["samples"]),
                tokens=int(data["tokens"]),
                skipped={task: int(data["skipped"][task]) for task in TASKS},
                elapsed_s=float(data["elapsed_s"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError(f"progress has a bad value: {exc!r}", file=file, key="progress") from exc
        if min(progress.step, progress.samples, progress.tokens, *progress.skipped.values()) < 0:
            raise TrainingError(f"progress has a negative count: {progress}", file=file, key="progress")
        return progress
