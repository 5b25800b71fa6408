#!/usr/bin/env python
"""Optimizer steps of the real InternVL3.5-4B shape (random weights) through our DeepSpeed engine: samples/s,
tokens/s, peak memory and MFU per task. Run by ``benchmarks/gpu_check.sh`` on a GPU node, one rank per GPU.

The model is `model_step.real_4b_model` (the published 4B architecture, bf16, LoRA r 128 / alpha 256,
upstream's trainable parts); the engine is the training recipe's (`sa2va_st.training.engine`: the
``workflow/deepspeed/zero2.json`` config completed from ``config.yaml``'s training section, torch's
AdamW, the step's learning rate set before it). Batches are upstream's shapes (`model_step.make_items`):
batch 2 per GPU, accumulation 4; still images of 640x480 with dynamic tiling (12 tiles + thumbnail)
and 5 expressions; 6 video frames of one tile; 100 temporal tokens. ``--steps`` (30) optimizer steps
cycle through the three tasks after one untimed warm-up step each; each step is timed from a CUDA
synchronise to the next.

MFU = model FLOPs (`model_step.model_flops`, the 6N convention) / step time / (ranks x 989 TFLOP/s,
the H200's dense bf16 peak). ``--smoke`` runs the same path shrunk on a CPU (to check the script).
The last line is ``RESULT samples_per_s=... tokens_per_s=... peak_gb=... mfu=...`` (all tasks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

if "DS_ACCELERATOR" not in os.environ:
    os.environ["DS_ACCELERATOR"] = "cuda" if torch.cuda.is_available() else "cpu"

import yaml  # noqa: E402

from model_step import H200_BF16_PEAK_FLOPS, make_items, model_flops, real_4b_model  # noqa: E402
from sa2va_st.catalog import IMAGE_GROUNDING, TASKS, TEMPORAL_GROUNDING, VIDEO_GROUNDING  # noqa: E402
from sa2va_st.training.engine import build_engine, deepspeed_config, read_deepspeed_json, set_lr  # noqa: E402
from sa2va_st.training.settings import TrainingSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--deepspeed", default="zero2")
    args = parser.parse_args(argv)

    import deepspeed
    import torch.distributed as dist

    if "RANK" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29511")
    cuda = torch.cuda.is_available() and not args.smoke
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", verbose=False)
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    settings = TrainingSettings.from_config(config["training"])
    model = real_4b_model(device, smoke=args.smoke)
    ds = deepspeed_config(
        read_deepspeed_json(REPO / "workflow" / "deepspeed" / f"{args.deepspeed}.json"),
        settings,
        accumulation=settings.gradient_accumulation,
        bf16=model.dtype == torch.bfloat16,
    )
    engine = build_engine(model, settings, ds)
    shapes = {
        "batch": settings.batch_size,
        "clip_dim": 1024,
        "num_tokens": 100,
        "image_hw": (480, 640),
        "frame_hw": (720, 1280) if not args.smoke else (64, 64),
        "expressions": settings.max_expressions,
        "frames": settings.video_frames,
    }
    batches = {
        task: [
            model.processor(make_items(task, seed=rank * 100 + k, **shapes))
            for k in range(settings.gradient_accumulation)
        ]
        for task in (IMAGE_GROUNDING, VIDEO_GROUNDING, TEMPORAL_GROUNDING)
    }

    def step(task: str) -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        set_lr(engine, settings.lr)
        for batch in batches[task]:
            out = engine(**batch)
            engine.backward(out.loss)
            engine.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for task in batches:
        step(task)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times: dict[str, list[float]] = {t: [] for t in batches}
    order = list(batches)
    for i in range(args.steps):
        task = order[i % len(order)]
        times[task].append(step(task))
    peak_gb = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    peak = H200_BF16_PEAK_FLOPS * world
    total_samples = total_tokens = total_time = total_flops = 0.0
    lines = []
    for task in TASKS:
        if not times.get(task):
            continue
        median = statistics.median(times[task])
        samples = settings.batch_size * settings.gradient_accumulation * world
        tokens = sum(int(b["attention_mask"].sum()) for b in batches[task]) * world
        flops = sum(model_flops(model, b) for b in batches[task]) * world
        lines.append(
            f"{task:<20} step {median:7.3f} s  {samples / median:7.2f} samples/s  {tokens / median:9.0f} tokens/s"
            f"  seq {max(int(b['input_ids'].shape[1]) for b in batches[task])}  MFU {flops / median / peak:.3f}"
        )
        n = len(times[task])
        total_samples += samples * n
        total_tokens += tokens * n
        total_time += sum(times[task])
        total_flops += flops * n
    if rank == 0:
        print(
            f"benchmark train_4b: {world} ranks, {args.deepspeed}, {'bf16 on ' + torch.cuda.get_device_name() if cuda else 'CPU smoke'}"
        )
        print(
            f"trainable {model.parameter_counts()['trainable']:,} of {model.parameter_counts()['total']:,} parameters"
        )
        print("\n".join(lines))
        print(f"peak memory {peak_gb:.1f} GiB per GPU")
        print(
            f"RESULT samples_per_s={total_samples / total_time:.2f} tokens_per_s={total_tokens / total_time:.0f} "
            f"peak_gb={peak_gb:.1f} mfu={total_flops / total_time / peak:.3f}"
        )
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
