"""The ``training`` section of the config, checked once, and which of its values change what a run trains.

Definitions:

- **Mix.** ``repeats``: every dataset of `sa2va_st.catalog` with its factor: upstream's, replaced by
  the config's where it names one; a factor of 0 leaves the dataset out.
- **Layout.** How one optimizer step is spread over processes: ``world_size`` processes x
  ``gradient_accumulation`` micro-batches of ``batch_size`` samples. The step's samples are the
  same for every layout with the same ``batch_size`` and the same ``world_size x accumulation``
  (`sa2va_st.datasets.sampler`), so a run may resume on another number of processes: the
  accumulation then changes to keep ``world_size x accumulation`` (`resume_accumulation`).
- **Trajectory.** The values that decide the weights a run ends with (`TrainingSettings.trajectory`):
  the mix, the schedule, the optimizer, the micro-batch size, micro-batches per step, truncation,
  items, seed, and the model section. A checkpoint records them; a restart whose trajectory differs
  is refused unless the user starts over. Where checkpoints go, how often, logging, workers, the
  DeepSpeed variant and the process count change how a run is carried out, not what it computes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .. import catalog
from ..errors import TrainingError

DEEPSPEED_VARIANTS = ("zero2", "zero3", "zero2_offload")
# what changes how a run is carried out, not what it computes (everything else is its trajectory)
EXECUTION_KEYS = frozenset(
    {
        "save_steps",
        "save_total_limit",
        "deepspeed",
        "processes",
        "num_workers",
        "log_steps",
        "eval_steps",
        "held_out_samples",
        "check_samples",
        "gradient_accumulation",  # enters the trajectory as micro-batches per step (with the world size)
    }
)


@dataclass(frozen=True)
class TrainingSettings:
    """The config's ``training`` section (schema: ``workflow/schemas/config.schema.yaml``, where the
    defaults live); see the module docstring."""

    repeats: dict[str, float]
    epochs: float
    passes_per_epoch: float
    batch_size: int
    gradient_accumulation: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    warmup_epochs: float
    warmup_start_factor: float
    max_grad_norm: float
    max_length: int
    save_steps: int
    save_total_limit: int
    seed: int
    video_frames: int
    max_expressions: int
    deepspeed: str
    processes: int | None
    num_workers: int
    group_window: int | None
    log_steps: int
    eval_steps: int | None
    held_out_samples: int
    check_samples: int

    @classmethod
    def from_config(cls, training: Mapping[str, Any]) -> TrainingSettings:
        """From a validated config's ``training`` section (every key present: the schema fills defaults)."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in training]
        unknown = sorted(set(training) - set(names))
        if missing or unknown:
            raise TrainingError(
                f"the training section lacks {missing} / has unknown keys {unknown}",
                key=f"training.{(missing or unknown)[0]}",
                fix="validate the config with sa2va_st.config.validate_config (it fills the defaults)",
            )
        values = dict(training)
        repeats = catalog.upstream_repeats()
        for name, factor in dict(values["repeats"]).items():
            if name not in repeats:
                raise TrainingError(
                    f"{name!r} is not a dataset", key=f"training.repeats.{name}", fix=f"one of {list(repeats)}"
                )
            repeats[name] = float(factor)
        values["repeats"] = {name: factor for name, factor in repeats.items() if factor > 0}
        values["betas"] = tuple(float(b) for b in values["betas"])
        if values["deepspeed"] not in DEEPSPEED_VARIANTS:
            raise TrainingError(
                f"unknown DeepSpeed variant {values['deepspeed']!r}",
                key="training.deepspeed",
                fix=f"one of {DEEPSPEED_VARIANTS}",
            )
        if not values["repeats"]:
            raise TrainingError("every dataset has repeat 0: nothing to train on", key="training.repeats")
        return cls(**values)

    @property
    def eval_every(self) -> int:
        return self.eval_steps if self.eval_steps is not None else self.save_steps

    def trajectory(self, *, world_size: int, accumulation: int, model: Mapping[str, Any]) -> dict[str, Any]:
        """Everything that decides the weights this run ends with (see the module docstring)."""
        values = {k: v for k, v in asdict(self).items() if k not in EXECUTION_KEYS}
        values["betas"] = list(self.betas)
        values["micro_batches_per_step"] = int(world_size) * int(accumulation)
        values["model"] = json.loads(json.dumps(dict(model), sort_keys=True, default=str))
        return values


def trajectory_hash(trajectory: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(trajectory, sort_keys=True).encode()).hexdigest()[:16]


def trajectory_changes(saved: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key: saved → now`` for every value that differs (nested keys dotted)."""
    changes = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += trajectory_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {a!r} → {b!r}")
    return changes


def resume_accumulation(micro_batches_per_step: int, world_size: int, key: str) -> int:
    """The accumulation that keeps a checkpoint's micro-batches per step on ``world_size`` processes."""
    if micro_batches_per_step % world_size:
        raise TrainingError(
            f"the checkpoint's steps hold {micro_batches_per_step} micro-batches, which {world_size} processes "
            "cannot split evenly",
            key=key,
            fix=f"resume on a number of processes that divides {micro_batches_per_step}, or start over",
        )
    return micro_batches_per_step // world_size
