"""What a run reports as it goes: JSON lines and TensorBoard on rank 0, and a progress bar only on a terminal.

Records of ``{work_dir}/metrics.jsonl`` (one JSON object a line, each with ``event`` and ``step``):

- ``train``: per-task loss (mean over answer tokens), lr, grad norm (mean and max over the steps
  since the last line), samples/s, tokens/s (real tokens), padding (fraction of the batch tensors that is
  padding), samples skipped as too long, and the samples trained on so far;
- ``held_out``: per-task loss on the held-out items (`sa2va_st.training.data.held_out_items`);
- ``checkpoint``: a complete checkpoint's step and folder; ``resume``: where a restart took up the run.

On resume from step ``s`` the lines after ``s`` (written by the run that was killed, and about to be
written again) are dropped, so the file reads as one uninterrupted run. The same numbers go to
TensorBoard (``{work_dir}/tensorboard``). The progress bar (tqdm) is drawn only when stderr is a
terminal; in a log file each ``train`` record is one plain line instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text

log = logging.getLogger("sa2va_st.train")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file (a torn last line, from a kill, is ignored)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


class MetricsLog:
    """See the module docstring; every method is a no-op unless ``enabled`` (rank 0)."""

    def __init__(self, jsonl: str | os.PathLike, tensorboard: str | os.PathLike, *, enabled: bool, resume_step: int):
        self.enabled = enabled
        self.path = Path(jsonl)
        self._writer = None
        self._file = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step] if self.path.exists() else []
        if resume_step == 0:
            kept = []
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        self._file = self.path.open("a")
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(os.fspath(tensorboard), purge_step=resume_step or None)
        if resume_step:
            self.event({"event": "resume", "step": resume_step})

    def event(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def train(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.event({"event": "train", **record})
        step = record["step"]
        for task, loss in record["loss"].items():
            self._writer.add_scalar(f"loss/{task}", loss, step)
        for key in ("lr", "grad_norm", "samples_per_s", "tokens_per_s", "padding"):
            self._writer.add_scalar(f"train/{key}", record[key], step)
        if not sys.stderr.isatty():
            losses = " ".join(f"{task}={loss:.4f}" for task, loss in record["loss"].items())
            log.info(
                "step %d: loss %s lr %.3g grad %.3g %.1f samples/s %.0f tokens/s padding %.2f",
                step,
                losses,
                record["lr"],
                record["grad_norm"],
                record["samples_per_s"],
                record["tokens_per_s"],
                record["padding"],
            )

    def held_out(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.event({"event": "held_out", **record})
        for task, loss in record["loss"].items():
            self._writer.add_scalar(f"held_out/{task}", loss, record["step"])
        log.info(
            "step %d: held-out loss %s",
            record["step"],
            " ".join(f"{t}={v:.4f}" for t, v in record["loss"].items()),
        )

    def progress_bar(self, total: int, initial: int) -> Any:
        if not self.enabled or not sys.stderr.isatty():
            return _NoBar()
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
