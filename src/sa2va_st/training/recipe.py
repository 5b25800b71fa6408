"""The training recipe: `TrainingRecipe(spec)` → ``setup()`` → ``train()`` → ``cleanup()``.

One process per rank (``torchrun``; or one process without a launcher in debug mode). What a run does,
in order:

1. **Setup.** Join the process group (NCCL on GPUs, gloo on a CPU); read the ``training`` and
   ``model`` sections; find the newest complete checkpoint and check that it belongs to this run
   (`settings.trajectory`; otherwise refuse, or remove it with ``start_over``); build the model
   (`Sa2vaSTModel.from_config`, same seed → same initial weights on every rank), the truncating
   processor, the training mix, the length-grouped task sampler of this rank, the schedule and the
   DeepSpeed engine; restore the checkpoint (engine, sampler, progress, RNG states; through a
   universal checkpoint when the layout changed).
2. **Train.** Step by step until ``schedule.total_steps``: set the step's learning rate; run its
   ``accumulation`` micro-batches (forward, ``engine.backward``, ``engine.step``; DeepSpeed
   reduces the gradients, clips them to ``max_grad_norm`` and updates at the last one). Before each
   micro-batch torch's RNG is seeded from ``(seed, step, global slice)``, so dropout draws the same
   masks for a slice whichever rank runs it and whatever was run before (resume on other world sizes,
   after a kill). Per-task losses and counts stay tensors on the device; they are reduced across
   ranks only when logged (every ``log_steps``), when the held-out loss is measured
   (every ``eval_every``) and when a checkpoint is saved (every ``save_steps``, and at the end).
3. **Stop on a non-finite number.** A non-finite loss or gradient norm is noticed at the next
   reduction (DeepSpeed itself skips such an update); the run then stops with `TrainingError`
   naming the first bad step and the ids of its samples, and saves nothing: the last checkpoint is
   the last good one.
4. **Cleanup.** Rank 0 exports the final model (`model.checkpoint.export`) to ``{out_dir}/model``
   and copies the metrics to ``{out_dir}/metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import paths
from ..atomic import atomic_write_text
from ..catalog import TASKS
from ..errors import TrainingError
from ..model.config import Sa2vaSTConfig
from ..model.prompts import Sa2vaSTProcessor
from . import checkpointing as ckpt
from .data import TrainingCollator, held_out_items, training_mix
from .engine import build_engine, deepspeed_config, read_deepspeed_json, set_lr, to_universal, zero_stage
from .launch import rank_banner
from .metrics_log import MetricsLog
from .progress import Progress
from .schedule import Schedule
from .settings import TrainingSettings, resume_accumulation, trajectory_changes, trajectory_hash

log = logging.getLogger("sa2va_st.train")

MODEL_INPUTS = ("input_ids", "attention_mask", "labels", "pixel_values", "temporal_features", "task")


@dataclass(frozen=True)
class RunSpec:
    """Where a run reads and writes: the ``train`` rule's inputs and outputs, and how it is run.

    ``config`` is the validated pipeline config (its ``training``, ``model`` and ``clip`` sections
    are read). ``debug``: one process, no DataLoader workers, the first ``debug_items`` items of each
    dataset (a pdb-friendly run of the same code).
    """

    config: Mapping[str, Any]
    spatial_manifests: Path
    temporal_manifests: Path
    work_dir: Path
    out_dir: Path
    deepspeed_json: Path
    root: Path | None = None
    start_over: bool = False
    debug: bool = False
    debug_items: int = 8


@dataclass
class WindowStats:
    """What the steps since the last reduction add up (device tensors; Python ints for host counts)."""

    device: torch.device
    loss_sums: torch.Tensor = field(init=False)  # (len(TASKS),) summed token losses
    loss_tokens: torch.Tensor = field(init=False)  # (len(TASKS),) answer tokens
    first_bad_step: torch.Tensor = field(init=False)  # () the first step with a non-finite number, or -1
    grad_norms: list[Any] = field(default_factory=list)
    samples: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASKS, 0))
    ids: dict[int, list[str]] = field(default_factory=dict)  # step → this rank's sample ids
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.loss_sums = torch.zeros(len(TASKS), dtype=torch.float64, device=self.device)
        self.loss_tokens = torch.zeros(len(TASKS), dtype=torch.float64, device=self.device)
        self.first_bad_step = torch.tensor(-1, dtype=torch.int64, device=self.device)

    def mark_bad(self, step: int, bad: torch.Tensor) -> None:
        unset = self.first_bad_step < 0
        self.first_bad_step = torch.where(bad & unset, torch.full_like(self.first_bad_step, step), self.first_bad_step)


def micro_seed(seed: int, step: int, slice_index: int) -> int:
    """torch's seed for one micro-batch: a function of the run's seed, the step and the global slice."""
    return int(np.random.SeedSequence([seed, step, slice_index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def die_with_launcher() -> None:
    """Under torchrun, make the kernel kill this rank when the launcher dies (Linux ``PR_SET_PDEATHSIG``).

    torchrun's ranks are not in its process group: a launcher killed with SIGKILL (a job cancelled
    hard) would leave them training on, racing the next start for the same checkpoints.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the launcher died before the request was made
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TrainingRecipe:
    """See the module docstring."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.settings = TrainingSettings.from_config(spec.config["training"])

    # ================================================================== setup

    def setup(self) -> None:
        spec, settings = self.spec, self.settings
        self._init_distributed()
        self.model_config = Sa2vaSTConfig.from_pipeline_config(spec.config)
        self.device = self._device()
        self.checkpoints = ckpt.CheckpointManager(
            paths.checkpoints_dir(spec.work_dir), keep=settings.save_total_limit, rank=self.rank, barrier=self.barrier
        )
        stale = self.checkpoints.clean_stale()
        if stale and self.rank == 0:
            log.info("removed what an interrupted save left: %s", ", ".join(stale))
        self.resume_from, self.accumulation = self._choose_checkpoint()

        from ..model.modeling import Sa2vaSTModel

        self.model = Sa2vaSTModel.from_config(self.model_config, device=self.device, seed=settings.seed)
        self.model.train()
        self.processor = Sa2vaSTProcessor(
            self.model.hf_processor,
            num_tokens=self.model_config.temporal.num_tokens,
            max_image_tiles=self.model_config.max_image_tiles,
            max_length=settings.max_length,
        )
        manifests = {
            "spatial": spec.spatial_manifests,
            "temporal": spec.temporal_manifests,
            "num_positions": self.model_config.temporal.num_tokens,
            "root": spec.root,
        }
        self.mix = training_mix(settings, **manifests)
        if spec.debug:
            from .data import first_items

            self.mix = first_items(self.mix, spec.debug_items)
        self.sampler = self.mix.make_sampler(
            batch_size=settings.batch_size,
            accumulation=self.accumulation,
            world_size=self.world_size,
            rank=self.rank,
            seed=settings.seed,
            repeats=settings.repeats,
            lengths=self.mix.lengths() if settings.group_window else None,
            group_window=settings.group_window or 1,
        )
        self.batches_per_pass = self.sampler.batches_per_epoch
        self.schedule = Schedule.from_training(
            {
                "gradient_accumulation": self.accumulation,
                "passes_per_epoch": settings.passes_per_epoch,
                "epochs": settings.epochs,
                "warmup_epochs": settings.warmup_epochs,
                "lr": settings.lr,
                "warmup_start_factor": settings.warmup_start_factor,
            },
            self.batches_per_pass * self.accumulation,
        )
        self.held_out = held_out_items(settings, tasks=self.mix_tasks, **manifests)
        self.collator = TrainingCollator(self.processor)

        universal = self.resume_from is not None and self._layout() != self.resume_from.meta["layout"]
        self.ds_config = deepspeed_config(
            read_deepspeed_json(spec.deepspeed_json),
            settings,
            accumulation=self.accumulation,
            bf16=self.model.dtype == torch.bfloat16,
            load_universal=universal,
        )
        self.engine = build_engine(self.model, settings, self.ds_config)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.progress = Progress()
        if self.resume_from is not None:
            self._restore(self.resume_from, universal)
        self.metrics = MetricsLog(
            paths.live_metrics(spec.work_dir),
            paths.tensorboard_dir(spec.work_dir),
            enabled=self.rank == 0,
            resume_step=self.progress.step,
        )
        if self.rank == 0:
            self._describe()

    @property
    def mix_tasks(self) -> list[str]:
        return list(dict.fromkeys(s.task for s in self.mix.specs))

    def _init_distributed(self) -> None:
        import deepspeed
        import torch.distributed as dist

        die_with_launcher()
        if "RANK" not in os.environ:  # no launcher (debug mode): a process group of one
            os.environ.update(
                RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())
            )
        if self.spec.debug and os.environ["WORLD_SIZE"] != "1":
            raise TrainingError("debug mode runs one process", fix="run it without torchrun")
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if not dist.is_initialized():
            deepspeed.init_distributed(dist_backend=backend, verbose=False)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        log.info(rank_banner(self.rank, self.world_size, self.local_rank, socket.gethostname()))

    def _device(self) -> torch.device:
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def barrier(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.barrier()

    def _layout(self) -> dict[str, Any]:
        return {
            "world_size": self.world_size,
            "accumulation": self.accumulation,
            "batch_size": self.settings.batch_size,
            "zero_stage": zero_stage(read_deepspeed_json(self.spec.deepspeed_json)),
        }

    def _trajectory(self, accumulation: int) -> dict[str, Any]:
        return self.settings.trajectory(
            world_size=self.world_size, accumulation=accumulation, model=self.model_config.to_dict()
        )

    def _choose_checkpoint(self) -> tuple[ckpt.Checkpoint | None, int]:
        """The checkpoint to resume from (None: a fresh run) and the accumulation to run with."""
        fresh = self.settings.gradient_accumulation
        latest = self.checkpoints.latest()
        if latest is None:
            return None, fresh
        saved = latest.meta["trajectory"]
        layout = latest.meta["layout"]
        accumulation = (
            fresh
            if layout["world_size"] == self.world_size
            else resume_accumulation(saved["micro_batches_per_step"], self.world_size, "training.processes")
        )
        changes = trajectory_changes(saved, self._trajectory(accumulation))
        if not changes:
            return latest, accumulation
        if not self.spec.start_over:
            raise TrainingError(
                f"{latest.path} belongs to a run with another config; changed: " + "; ".join(changes),
                file=str(latest.path / ckpt.META),
                key=changes[0].split(":")[0],
                fix="restore the config, use another work_dir, or start over (snakemake train --config "
                "start_over=true; python -m sa2va_st.training --start-over), which removes these checkpoints",
            )
        if self.rank == 0:
            log.warning("start over: removing the checkpoints of the old config (%s)", "; ".join(changes))
        self.checkpoints.remove_all()
        return None, fresh

    def _restore(self, checkpoint: ckpt.Checkpoint, universal: bool) -> None:
        engine_dir = checkpoint.path / ckpt.ENGINE
        if universal:
            load_dir, tag = Path(paths.join(self.spec.work_dir, "universal")), checkpoint.path.name
            if self.rank == 0:
                to_universal(engine_dir / ckpt.ENGINE_TAG, load_dir, tag)
            self.barrier()
        else:
            load_dir, tag = engine_dir, ckpt.ENGINE_TAG
        loaded, _ = self.engine.load_checkpoint(
            str(load_dir),
            tag=tag,
            load_module_strict=False,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
        )
        if loaded is None:
            raise TrainingError("DeepSpeed found no checkpoint to load", file=str(load_dir / tag))
        self.progress = Progress.from_dict(checkpoint.read_json(ckpt.PROGRESS), str(checkpoint.path / ckpt.PROGRESS))
        self.sampler.load_state_dict(checkpoint.read_json(ckpt.SAMPLER))
        expected = divmod(self.progress.step, self.batches_per_pass)
        if (self.sampler.epoch, self.sampler.start_batch) != expected:
            raise TrainingError(
                f"the sampler stands at pass {self.sampler.epoch}, batch {self.sampler.start_batch}, but step "
                f"{self.progress.step} is pass {expected[0]}, batch {expected[1]}",
                file=str(checkpoint.path / ckpt.SAMPLER),
                fix="remove this checkpoint; the run resumes from the one before",
            )
        state = ckpt.read_rng_state(checkpoint, self.rank)
        if state is not None:
            ckpt.set_rng_state(state)
        if self.rank == 0:
            how = (
                f"through a universal checkpoint ({checkpoint.meta['layout']} → {self._layout()})" if universal else ""
            )
            log.info("resuming from %s at step %d %s", checkpoint.path, self.progress.step, how)

    def _describe(self) -> None:
        counts = self.model.parameter_counts()
        log.info(
            "run %s: %d processes x accumulation %d x batch %d = %d samples per step; %d steps "
            "(%d per pass over the mix, warmup %d); %s; trainable %s of %s parameters",
            paths.run_name(self.spec.work_dir),
            self.world_size,
            self.accumulation,
            self.settings.batch_size,
            self.world_size * self.accumulation * self.settings.batch_size,
            self.schedule.total_steps,
            self.batches_per_pass,
            self.schedule.warmup_steps,
            self.spec.deepspeed_json.stem,
            f"{counts['trainable']:,}",
            f"{counts['total']:,}",
        )
        log.info("samples per pass: %s", self.sampler.samples_per_task())

    # ================================================================== train

    def _loader(self, pass_index: int, start_batch: int) -> Iterator[dict[str, Any]]:
        from torch.utils.data import DataLoader

        self.sampler.set_epoch(pass_index, start_batch=start_batch)
        self.mix.set_epoch(pass_index)
        workers = 0 if self.spec.debug else self.settings.num_workers
        loader = DataLoader(
            self.mix,
            batch_sampler=self.sampler,
            collate_fn=self.collator,
            num_workers=workers,
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
        )
        return iter(loader)

    def _batches(self) -> Iterator[dict[str, Any]]:
        """This rank's micro-batches from the progress' step on, across pass boundaries."""
        pass_index, start = divmod(self.progress.step, self.batches_per_pass)
        while True:
            yield from self._loader(pass_index, start)
            pass_index, start = pass_index + 1, 0

    def train(self) -> None:
        settings = self.settings
        total = self.schedule.total_steps
        if self.progress.step >= total:
            if self.rank == 0:
                log.info("the run is complete (step %d of %d): nothing to train", self.progress.step, total)
            return
        if self.progress.step == 0:
            self._log_held_out(0)
        window = WindowStats(self.device)
        bar = self.metrics.progress_bar(total, self.progress.step)
        batches = self._batches()
        run_started = time.perf_counter() - self.progress.elapsed_s
        while self.progress.step < total:
            step = self.progress.step
            self.train_step(step, [next(batches) for _ in range(self.accumulation)], window)
            self.progress.step = done = step + 1
            bar.update(1)
            if done % settings.log_steps == 0 or done == total or done % settings.save_steps == 0:
                self._reduce_and_log(window, done, bar)
                self.progress.elapsed_s = time.perf_counter() - run_started
                window = WindowStats(self.device)
            if done % settings.eval_every == 0 or done == total:
                self._log_held_out(done)
            if done % settings.save_steps == 0 or done == total:
                self._save(done)
        bar.close()

    def train_step(self, step: int, micro_batches: list[dict[str, Any]], window: WindowStats) -> None:
        """One optimizer step over this rank's micro-batches of it (DeepSpeed updates at the last one)."""
        engine = self.engine
        set_lr(engine, self.schedule.lr_at(step))
        window.ids[step] = []
        for k, batch in enumerate(micro_batches):
            torch.manual_seed(micro_seed(self.settings.seed, step, k * self.world_size + self.rank))
            window.ids[step] += batch["ids"]
            for task, n in batch["skipped_per_task"].items():
                window.skipped[task] += n
            if batch["empty"]:  # still a micro-batch: every rank joins every gradient reduction
                loss = torch.stack([p.sum() for p in self.trainable]).sum() * 0.0
            else:
                out = engine(**{key: batch[key] for key in MODEL_INPUTS})
                loss = out.loss
                window.loss_sums += out.task_loss_sums.double()
                window.loss_tokens += out.task_tokens.double()
                window.samples += len(batch["ids"])
                window.tokens += batch["tokens"]
                window.padded_tokens += batch["padded_tokens"]
                window.mark_bad(step, ~torch.isfinite(loss.detach()))
            engine.backward(loss)
            engine.step()
        norm = engine.get_global_grad_norm()
        norm = torch.as_tensor(float("nan") if norm is None else norm, dtype=torch.float64, device=self.device)
        window.grad_norms.append(norm)
        window.mark_bad(step, ~torch.isfinite(norm))

    def _reduce_and_log(self, window: WindowStats, step: int, bar: Any) -> None:
        """One reduction of the window across ranks: stop on a non-finite number, else log it."""
        import torch.distributed as dist

        counts = torch.tensor(
            [window.samples, window.tokens, window.padded_tokens, *window.skipped.values()],
            dtype=torch.float64,
            device=self.device,
        )
        packed = torch.cat([window.loss_sums, window.loss_tokens, counts])
        bad = torch.where(
            window.first_bad_step < 0, torch.full_like(window.first_bad_step, 2**62), window.first_bad_step
        )
        if self.world_size > 1:
            dist.all_reduce(packed)
            dist.all_reduce(bad, op=dist.ReduceOp.MIN)
        first_bad = int(bad)
        if first_bad < 2**62:
            self._stop_non_finite(first_bad, window)
        n = len(TASKS)
        sums, tokens = packed[:n].tolist(), packed[n : 2 * n].tolist()
        samples, real, padded = (int(x) for x in packed[2 * n : 2 * n + 3].tolist())
        skipped = dict(zip(TASKS, (int(x) for x in packed[2 * n + 3 :].tolist())))
        seconds = max(time.perf_counter() - window.started, 1e-9)
        norms = torch.stack(window.grad_norms).tolist()
        self.progress.samples += samples
        self.progress.tokens += real
        for task, count in skipped.items():
            self.progress.skipped[task] += count
        record = {
            "step": step,
            "lr": self.schedule.lr_at(step - 1),
            "loss": {t: s / c for t, s, c in zip(TASKS, sums, tokens) if c > 0},
            "grad_norm": float(np.mean(norms)),
            "grad_norm_max": float(np.max(norms)),
            "samples_per_s": samples / seconds,
            "tokens_per_s": real / seconds,
            "padding": 1.0 - real / padded if padded else 0.0,
            "skipped": skipped,
            "samples": self.progress.samples,
        }
        self.metrics.train(record)
        bar.set_postfix({"loss": f"{sum(sums) / max(sum(tokens), 1):.4f}"})

    def _stop_non_finite(self, step: int, window: WindowStats) -> None:
        import torch.distributed as dist

        mine = window.ids.get(step, [])
        everyone = [None] * self.world_size
        if self.world_size > 1:
            dist.all_gather_object(everyone, mine)
        else:
            everyone = [mine]
        ids = [i for rank_ids in everyone for i in (rank_ids or [])]
        latest = self.checkpoints.latest()
        raise TrainingError(
            f"a non-finite loss or gradient at step {step}; the samples of that step: {ids}",
            key="training",
            fix="check these samples' inputs (features, images, boxes); the run resumes from the last good "
            f"checkpoint {latest.path if latest else '(none: it starts from the beginning)'} once they are fixed",
        )

    @torch.no_grad()
    def _log_held_out(self, step: int) -> None:
        """Every rank scores all held-out items (the same forwards on each, as ZeRO-3 needs); no RNG is used."""
        if not self.held_out:
            return
        module = self.engine.module
        module.eval()
        losses = {}
        try:
            for task, items in self.held_out.items():
                total, count = 0.0, 0.0
                for start in range(0, len(items), self.settings.batch_size):
                    chunk = [
                        self.collator.processor.encode(item) for item in items[start : start + self.settings.batch_size]
                    ]
                    batch = self.collator.processor.collate(chunk)
                    out = module(**{key: batch[key] for key in MODEL_INPUTS})
                    total += float(out.task_loss_sums.sum())
                    count += float(out.task_tokens.sum())
                losses[task] = total / count
        finally:
            module.train()
        self.metrics.held_out({"step": step, "loss": losses})

    # ================================================================== checkpoints

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        """The trainable weights, whole, in fp32 (DeepSpeed's master copies; gathered under ZeRO-3)."""
        from deepspeed.utils import safe_get_full_fp32_param

        return {
            name: safe_get_full_fp32_param(p).detach().cpu() for name, p in self.model.trainable_parameters().items()
        }

    def _save(self, step: int) -> None:
        from ..model.checkpoint import save_trainable

        meta = {
            "layout": self._layout(),
            "trajectory": self._trajectory(self.accumulation),
            "trajectory_hash": trajectory_hash(self._trajectory(self.accumulation)),
        }
        last_pass = (step - 1) // self.batches_per_pass  # the pass the sampler is in (a finished one rolls over)
        if self.sampler.epoch != last_pass:
            raise TrainingError(
                f"internal: the sampler is at pass {self.sampler.epoch}, step {step} ends pass {last_pass}"
            )
        sampler_state = self.sampler.state_dict(step - last_pass * self.batches_per_pass)

        def write(folder: Path) -> None:
            self.engine.save_checkpoint(str(folder / ckpt.ENGINE), tag=ckpt.ENGINE_TAG, exclude_frozen_parameters=True)
            state = self._trainable_state()
            if self.rank == 0:
                save_trainable(self.model, folder / ckpt.TRAINABLE, state=state, extra={"step": step})
                atomic_write_text(folder / ckpt.SAMPLER, json.dumps(sampler_state, indent=2) + "\n")
                atomic_write_text(folder / ckpt.PROGRESS, json.dumps(self.progress.to_dict(), indent=2) + "\n")
            ckpt.write_rng_state(folder, self.rank)

        path = self.checkpoints.save(step, write, meta)
        self.metrics.event({"event": "checkpoint", "step": step, "path": str(path)})

    # ================================================================== cleanup

    def cleanup(self) -> None:
        """Export the final model and the metrics (rank 0), then leave the process group."""
        import torch.distributed as dist

        from ..model.checkpoint import export

        if self.progress.step >= self.schedule.total_steps:
            gather = zero_stage(self.ds_config) == 3
            if gather:
                import deepspeed

                context = deepspeed.zero.GatheredParameters(list(self.model.parameters()), modifier_rank=None)
            else:
                import contextlib

                context = contextlib.nullcontext()
            with context:
                if self.rank == 0:
                    out = export(self.model, self.spec.out_dir / "model")
                    log.info("exported the trained model to %s", out)
            if self.rank == 0:
                self.metrics.close()
                self.spec.out_dir.mkdir(parents=True, exist_ok=True)
                tmp = self.spec.out_dir / ".metrics.jsonl.tmp"
                shutil.copyfile(paths.live_metrics(self.spec.work_dir), tmp)
                os.replace(tmp, self.spec.out_dir / "metrics.jsonl")
        else:
            self.metrics.close()
        self.barrier()
        if dist.is_initialized():
            dist.destroy_process_group()


def run(spec: RunSpec) -> None:
    """Set up, train and clean up (the script's whole job)."""
    recipe = TrainingRecipe(spec)
    recipe.setup()
    recipe.train()
    recipe.cleanup()
