"""The training schedule upstream runs, counted in optimizer steps: how long, and the learning rate of each step.

Definitions (every count is in optimizer steps; a step is ``gradient_accumulation`` micro-batches):

- **Pass.** One walk of the rank-sharded sampler over the whole training mix (every sample once,
  spread over the ranks): ``micro_batches_per_pass`` global micro-batches of
  ``world_size x batch_size`` samples (`sa2va_st.datasets.sampler`).
- **Upstream epoch.** Upstream's sampler has no rank logic: each of its 8 ranks walks the whole mix
  every epoch. So one upstream epoch is ``passes_per_epoch`` (8) of our passes: on 8 GPUs with
  upstream's batch 2 and accumulation 4 that gives upstream's number of optimizer steps per epoch
  (mix size / 8) and of samples processed (8 x mix size). ``epochs`` counts upstream epochs.
- **Length.** ``total_steps = floor(epochs x passes_per_epoch x micro_batches_per_pass /
  gradient_accumulation)``: micro-batches run on across pass boundaries; a remainder smaller than
  one step is not trained.
- **Warmup.** ``warmup_steps = round(warmup_epochs x passes_per_epoch x micro_batches_per_pass /
  gradient_accumulation)`` (upstream: half an epoch), at least 1.
- **Learning rate of step s** (0-based; the rate the s-th optimizer update uses), as mmengine's
  ``LinearLR`` then ``CosineAnnealingLR(eta_min=0)``, stepped per step:

      s < W:   lr x (f + (1 - f) x s / W)                          f = warmup_start_factor (1e-5)
      s >= W:  lr x (1 + cos(pi x (s - W) / (T - W))) / 2          reaching 0 at s = T

  so step 0 uses ``lr x f``, step W the peak ``lr``, and the last step (T - 1) the smallest
  positive rate.
- **Checkpoints.** ``save_steps`` counts optimizer steps. Upstream's "save every 1000" counts
  mmengine iterations, which are micro-batches: 1000 of them are 250 optimizer steps at
  accumulation 4, this project's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every optimizer step of one run (see the module docstring)."""

    lr: float
    total_steps: int
    warmup_steps: int
    warmup_start_factor: float

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"a run needs at least one optimizer step, got total_steps={self.total_steps}")
        if not 1 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps must be in [1, {self.total_steps}], got {self.warmup_steps}")

    @classmethod
    def from_training(cls, training: dict[str, Any], micro_batches_per_pass: int) -> Schedule:
        """From the config's ``training`` section and the sampler's global micro-batches per pass."""
        accumulation = int(training["gradient_accumulation"])
        passes = float(training["passes_per_epoch"])
        total = math.floor(float(training["epochs"]) * passes * micro_batches_per_pass / accumulation)
        warmup = round(float(training["warmup_epochs"]) * passes * micro_batches_per_pass / accumulation)
        return cls(
            lr=float(training["lr"]),
            total_steps=total,
            warmup_steps=min(max(1, warmup), max(1, total)),
            warmup_start_factor=float(training["warmup_start_factor"]),
        )

    def factor(self, step: int) -> float:
        """lr(step) / lr."""
        if step < self.warmup_steps:
            f = self.warmup_start_factor
            return f + (1.0 - f) * step / self.warmup_steps
        if self.total_steps == self.warmup_steps:
            return 1.0 if step < self.total_steps else 0.0
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def lr_at(self, step: int) -> float:
        return self.lr * self.factor(step)
