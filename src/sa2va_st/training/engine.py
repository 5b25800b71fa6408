"""The DeepSpeed engine of a run: its config (a JSON file under ``workflow/deepspeed/`` + the run's
hyper-parameters), torch's AdamW, the learning rate of each step, and universal checkpoints.

- **Config.** The JSON file says how DeepSpeed shards and overlaps (ZeRO stage, offload, buckets);
  `deepspeed_config` adds what the run's config decides: the micro-batch size, gradient accumulation,
  clipping (``max_grad_norm``) and bf16 (on for a GPU with ``model.dtype: bf16``, off on a CPU, where
  the model runs in fp32). A file that sets one of those itself is refused: each value has one home.
- **Optimizer.** torch's ``AdamW`` over the trainable parameters, one group (weight decay on every
  one, as upstream), handed to DeepSpeed, so no DeepSpeed op is compiled (its fused Adam needs a
  compiler and CUDA); under ``zero2_offload`` it runs on the CPU copy.
- **Learning rate.** Set on the optimizer before each step from `Schedule.lr_at(step)`: a function of
  the step alone, so there is no scheduler state to save or to get out of step on resume.
- **Universal checkpoints.** DeepSpeed's ZeRO shards are cut for one world size. A run resumed on
  another number of processes (or another ZeRO stage) first converts the engine folder with
  DeepSpeed's own ``ds_to_universal`` (into ``{work_dir}/universal/<checkpoint>/``, staged and
  renamed) and loads it with ``checkpoint.load_universal``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..atomic import staging_dir
from ..errors import TrainingError
from .settings import TrainingSettings

# what the run's config decides; a DeepSpeed JSON that sets one is refused
RESERVED_KEYS = (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "optimizer",
    "scheduler",
    "fp16",
)


def read_deepspeed_json(path: str | os.PathLike) -> dict[str, Any]:
    """A ``workflow/deepspeed/*.json`` file, checked for keys that belong to ``config.yaml``."""
    path = Path(path)
    try:
        base = json.loads(path.read_text())
    except FileNotFoundError:
        raise TrainingError(
            "DeepSpeed config not found", file=str(path), key="training.deepspeed", fix="one of workflow/deepspeed/"
        ) from None
    except ValueError as exc:
        raise TrainingError(f"DeepSpeed config is not JSON: {exc}", file=str(path)) from exc
    taken = [k for k in RESERVED_KEYS if k in base] + (["bf16.enabled"] if "enabled" in base.get("bf16", {}) else [])
    if taken:
        raise TrainingError(
            f"the DeepSpeed config sets {taken}, which the run's config decides",
            file=str(path),
            key=taken[0],
            fix="remove them from the JSON; set training.batch_size / gradient_accumulation / max_grad_norm and "
            "model.dtype in config.yaml",
        )
    return base


def deepspeed_config(
    base: Mapping[str, Any],
    settings: TrainingSettings,
    *,
    accumulation: int,
    bf16: bool,
    load_universal: bool = False,
) -> dict[str, Any]:
    """The full DeepSpeed config of this run (see the module docstring)."""
    config = copy.deepcopy(dict(base))
    config["train_micro_batch_size_per_gpu"] = settings.batch_size
    config["gradient_accumulation_steps"] = int(accumulation)
    config["gradient_clipping"] = settings.max_grad_norm
    config["bf16"] = {**config.get("bf16", {}), "enabled": bool(bf16)}
    if load_universal:
        config["checkpoint"] = {**config.get("checkpoint", {}), "load_universal": True}
    return config


def zero_stage(config: Mapping[str, Any]) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


def build_engine(model: torch.nn.Module, settings: TrainingSettings, config: Mapping[str, Any]) -> Any:
    """``deepspeed.initialize`` with torch's AdamW over the trainable parameters (one group)."""
    import deepspeed

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("nothing in the model trains", key="model.train", fix="set at least one part to true")
    optimizer = torch.optim.AdamW(
        params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay, foreach=True
    )
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=dict(config), dist_init_required=False)
    return engine


def set_lr(engine: Any, lr: float) -> None:
    for group in engine.optimizer.param_groups:
        group["lr"] = lr


def to_universal(engine_dir: Path, out_root: Path, name: str) -> tuple[Path, str]:
    """Convert a DeepSpeed checkpoint folder with DeepSpeed's ``ds_to_universal`` (once; rank 0).

    Returns ``(load_dir, tag)`` for ``engine.load_checkpoint``.
    """
    target = out_root / name
    if not target.is_dir():
        with staging_dir(out_root, name) as stage:
            folder = stage / name
            command = [
                sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal",
                "--input_folder", str(engine_dir), "--output_folder", str(folder),
                "--inject_missing_state", "--num_extract_workers", "1", "--num_merge_workers", "1",
            ]  # fmt: skip
            result = subprocess.run(
                command, capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"}
            )
            if result.returncode != 0 or not folder.is_dir():
                raise TrainingError(
                    f"DeepSpeed's ds_to_universal failed ({result.returncode}): {result.stderr[-2000:]}",
                    file=str(engine_dir),
                    fix="resume on the number of processes the checkpoint was saved with, or start over",
                )
            os.replace(folder, target)
    return out_root, name
