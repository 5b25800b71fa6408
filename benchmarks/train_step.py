#!/usr/bin/env python
"""Our training step (DeepSpeed ZeRO-2 engine, `TrainingRecipe.train_step`) against a plain PyTorch loop,
and the padding of length-grouped batches against ungrouped ones.

Both loops run in this one process, on one CPU thread, on the tiny preset (the same initial weights,
built twice from the same seed), over **the same micro-batches**: one pass of the synthetic world's mix,
encoded once by the training collator and kept in memory, so neither loop pays for data loading.

- **ours**: the recipe's step (learning rate of the step, torch's RNG seeded per micro-batch, forward,
  ``engine.backward``, ``engine.step`` with DeepSpeed's accumulation, clipping and AdamW, per-task
  losses and counts kept as tensors, the non-finite checks), under a real process group of one (gloo).
- **plain**: forward, ``(loss / accumulation).backward()``, at the last micro-batch
  ``clip_grad_norm_(1.0)``, ``AdamW.step()``, ``zero_grad(set_to_none=False)``: the same model and
  optimizer without DeepSpeed. (Zeroed rather than dropped gradients: DeepSpeed's flat partitions give a
  part that a batch does not use, e.g. the temporal projector in an image step, a zero gradient, so
  AdamW's momentum and weight decay still move it; a plain loop that drops the gradients would skip
  those parts and compute another update.) The same learning rate per step and the same dropout seeds
  per micro-batch as ours, so the two must end with the same weights: the script prints the largest
  difference (a check that the comparison is of the same work).

Timing: the two loops alternate over ``--rounds`` rounds of ``--steps`` optimizer steps (after one
untimed warm-up round each); the medians are compared. ``overhead = ours / plain`` (target <= 1.2).

Padding (target: grouped <= half of naive): over a whole pass, per micro-batch, the fraction of the
padded ``B x L`` tensor that is padding, with L the longest *real* encoded sample of the micro-batch
(token counts from the processor, not the sampler's estimates), for the sampler with length grouping
(``group_window`` of the config) and without it (``padding_naive``).

The last line is ``RESULT overhead=<ours/plain> padding=<fraction> padding_naive=<fraction>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from _report import Report, log_to_file  # noqa: E402
from sa2va_st import paths  # noqa: E402
from sa2va_st.atomic import atomic_write_text  # noqa: E402
from sa2va_st.config import validate_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / paths.BENCHMARKS / "train_step"


def world(cache: Path) -> dict:
    """The synthetic world's manifests and the tiny preset, built once under ``cache``."""
    from sa2va_st.testing.build import FEATURES_LABEL, FPS, build_synthetic_manifests
    from sa2va_st.testing.tiny import save_tiny_preset

    done = cache / "build" / ".complete"  # built in place: the manifests hold absolute paths into the tree
    if not done.is_file():
        shutil.rmtree(cache / "build", ignore_errors=True)
        build_synthetic_manifests(cache / "build", seed=0)
        atomic_write_text(done, "")
    tiny = save_tiny_preset(cache / "tiny", 0, ["vlm"])["vlm"]
    manifests = cache / "build" / "manifests"
    return {
        "vlm": tiny,
        "spatial": manifests / "spatial",
        "temporal": manifests / "temporal" / FEATURES_LABEL / f"fps{FPS:g}",
    }


def run_config(vlm: Path, accumulation: int) -> dict:
    from sa2va_st.testing.tiny import TINY_CLIP_DIM

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["model"].update(vlm=str(vlm), dtype="fp32", max_image_tiles=1)
    config["model"]["lora"].update(r=16, alpha=32)
    config["model"]["temporal"]["clip_dim"] = TINY_CLIP_DIM
    config["training"].update(
        processes=1, batch_size=2, gradient_accumulation=accumulation, lr=1e-3, num_workers=0, group_window=4
    )
    return validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")


def padding(micro_batches: list[list[int]], lengths: np.ndarray) -> float:
    real = sum(float(lengths[b].sum()) for b in micro_batches)
    padded = sum(len(b) * float(lengths[b].max()) for b in micro_batches)
    return 1.0 - real / padded


def plain_step(model, optimizer, micro_batches: list[dict], accumulation: int, step: int, lr: float) -> None:
    from sa2va_st.training.recipe import micro_seed

    for group in optimizer.param_groups:
        group["lr"] = lr
    for k, batch in enumerate(micro_batches):
        torch.manual_seed(micro_seed(0, step, k))
        out = model(
            **{
                k: batch[k]
                for k in ("input_ids", "attention_mask", "labels", "pixel_values", "temporal_features", "task")
            }
        )
        (out.loss / accumulation).backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--accumulation", type=int, default=2)
    parser.add_argument("--report", type=Path, default=REPO / paths.BENCHMARKS / "train_step.txt")
    args = parser.parse_args(argv)
    log_to_file(REPO / paths.log_file("benchmark_train_step.log"))
    torch.set_num_threads(1)
    report = Report()

    from sa2va_st.model.modeling import Sa2vaSTModel
    from sa2va_st.training.recipe import RunSpec, TrainingRecipe, WindowStats

    data = world(CACHE)
    config = run_config(data["vlm"], args.accumulation)
    spec = RunSpec(
        config=config,
        spatial_manifests=data["spatial"],
        temporal_manifests=data["temporal"],
        work_dir=CACHE / "work",
        out_dir=CACHE / "out",
        deepspeed_json=REPO / "workflow" / "deepspeed" / "zero2.json",
        start_over=True,
        debug=True,
        debug_items=10**9,  # debug: one process, no workers; every item
    )
    recipe = TrainingRecipe(spec)
    recipe.setup()
    acc = recipe.accumulation
    batches = recipe._batches()
    needed = (args.rounds + 1) * args.steps * acc
    micro = [next(batches) for _ in range(needed)]
    micro = [b for b in micro if not b["empty"]]
    steps = [micro[i : i + acc] for i in range(0, len(micro) - acc + 1, acc)]

    plain_model = Sa2vaSTModel.from_config(recipe.model_config, seed=config["training"]["seed"]).train()
    initial = {n: p.detach().clone() for n, p in plain_model.named_parameters() if p.requires_grad}
    plain_opt = torch.optim.AdamW(
        [p for p in plain_model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05
    )

    def time_ours(chunk: list[list[dict]], first_step: int) -> float:
        window = WindowStats(recipe.device)
        start = time.perf_counter()
        for i, step_batches in enumerate(chunk):
            recipe.train_step(first_step + i, step_batches, window)
        float(window.loss_sums.sum())  # the reduction a log line makes: include the one host sync
        return time.perf_counter() - start

    def time_plain(chunk: list[list[dict]], first_step: int) -> float:
        start = time.perf_counter()
        for i, step_batches in enumerate(chunk):
            step = first_step + i
            plain_step(plain_model, plain_opt, step_batches, acc, step, recipe.schedule.lr_at(step))
        return time.perf_counter() - start

    ours, plain = [], []
    for r in range(args.rounds + 1):
        chunk = steps[r * args.steps : (r + 1) * args.steps]
        a, b = time_ours(chunk, r * args.steps), time_plain(chunk, r * args.steps)
        if r:  # round 0 warms both up
            ours.append(a)
            plain.append(b)
    t_ours, t_plain = statistics.median(ours), statistics.median(plain)
    theirs = dict(plain_model.named_parameters())
    weight_diff = max(float((p - theirs[n]).abs().max()) for n, p in recipe.model.trainable_parameters().items())
    moved = max(float((p - initial[n]).abs().max()) for n, p in theirs.items() if n in initial)
    ran = sum(len(steps[r * args.steps : (r + 1) * args.steps]) for r in range(args.rounds + 1))
    tokens = sum(b["tokens"] for s in steps[: args.steps] for b in s)

    # padding over one whole pass, with and without length grouping, from real encoded lengths
    mix, collator = recipe.mix, recipe.collator
    mix.set_epoch(0)
    real_lengths = np.zeros(len(mix), dtype=np.float64)
    for i in range(len(mix)):
        real_lengths[i] = len(collator.processor.encode(mix[i]).input_ids)
    sampler_kwargs = {
        "batch_size": 2, "accumulation": acc, "world_size": 1, "rank": 0,
        "seed": 0, "repeats": recipe.settings.repeats,
    }  # fmt: skip
    grouped = mix.make_sampler(**sampler_kwargs, lengths=mix.lengths(), group_window=recipe.settings.group_window)
    naive = mix.make_sampler(**sampler_kwargs)
    grouped.set_epoch(0)
    naive.set_epoch(0)
    pad, pad_naive = padding(list(grouped), real_lengths), padding(list(naive), real_lengths)

    report("benchmark train_step: our DeepSpeed step vs a plain PyTorch loop, the same micro-batches")
    report(f"machine: {os.uname().machine}, {os.cpu_count()} CPUs; torch {torch.__version__}, 1 thread")
    report(
        f"tiny preset ({recipe.model.parameter_counts()['trainable']:,} trainable parameters); batch 2 x "
        f"accumulation {acc}; {args.steps} steps a round, {args.rounds} timed rounds; {tokens} real tokens a round"
    )
    report(f"{'loop':<36}{'seconds':>10}{'steps/s':>10}")
    report(f"{'ours: DeepSpeed ZeRO-2 (train_step)':<36}{t_ours:>10.2f}{args.steps / t_ours:>10.2f}")
    report(f"{'plain: torch AdamW, no DeepSpeed':<36}{t_plain:>10.2f}{args.steps / t_plain:>10.2f}")
    report(f"  rounds ours {', '.join(f'{x:.2f}' for x in ours)} s; plain {', '.join(f'{x:.2f}' for x in plain)} s")
    report(
        f"same work: largest weight difference after {ran} steps = {weight_diff:.2e} (float rounding), "
        f"while the weights moved up to {moved:.2e} from their initial values"
    )
    overhead = t_ours / t_plain
    report(f"overhead ours / plain = {overhead:.3f}   target <= 1.2: {'PASS' if overhead <= 1.2 else 'FAIL'}")
    verdict = "PASS" if pad <= 0.5 * pad_naive else "FAIL"
    report(
        f"padding over one pass: grouped {pad:.4f}, naive {pad_naive:.4f} "
        f"(ratio {pad / pad_naive:.3f})   target grouped <= half of naive: {verdict}"
    )
    report(f"RESULT overhead={overhead:.3f} padding={pad:.4f} padding_naive={pad_naive:.4f}")
    report.save(args.report)
    recipe.metrics.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
