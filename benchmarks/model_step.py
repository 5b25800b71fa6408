#!/usr/bin/env python
"""Forward + backward of `Sa2vaSTModel`, per task: step time, tokens/s, peak memory (and MFU on a GPU).

Two modes, the same code path (dataset-shaped items → `Sa2vaSTProcessor` → `Sa2vaSTModel.forward`
→ ``loss.backward()``; no optimizer step, gradients cleared between steps):

- **default (CPU, tiny preset)**: the tiny InternVL (`sa2va_st.model.tiny`, ~1 M parameters, 64 px
  tiles of 16 tokens, 100 temporal tokens of 32-d CLIP features), batch 2 per task, fp32, one
  torch thread unless ``--threads`` says otherwise (measured on 2 shared cores: 2 threads were 2-20x
  slower and erratic whenever another process held a core).
  **Peak memory** is the peak resident set size *above the RSS just before the first step*,
  sampled every millisecond from ``/proc/self/statm`` by a thread (``tracemalloc`` does not see
  torch's allocations; ``ru_maxrss`` is a process-lifetime high-water mark that model loading may
  already have set higher than any step). The process's ``ru_maxrss`` is printed too.
- ``--real-4b`` (a GPU): the real InternVL3.5-4B architecture with random weights, bf16, LoRA
  r 128 / alpha 256 on all 7 linear layers of the LLM, trainable projector / embeddings / lm_head
  / temporal projector (upstream's recipe), 20 timed steps of each task after 3 warm-up steps,
  batch 2 (upstream's per-GPU batch) at upstream's sequence lengths: still images with InternVL's
  dynamic tiling (12 tiles + thumbnail for a 640×480 COCO image, 256 tokens each) and 5
  expressions per image, 6 video frames of one tile, 100 temporal tokens. Peak memory is
  ``torch.cuda.max_memory_allocated``; MFU is model FLOPs / step time / the H200's dense bf16
  peak (989 TFLOP/s), with model FLOPs = 6 · N_llm · text tokens + 6 · N_head · answer tokens
  + 2 · N_vit · patch tokens (N_llm: LLM + projectors, input embeddings excluded as a lookup; the
  lm_head only where logits are computed, at the answer positions; the
  frozen vision tower runs forward only; attention's sequence-quadratic FLOPs not counted; the
  frozen LLM weights need no weight gradients, so 6N over-counts the work by up to a third: the
  "6N" convention, comparable across papers).
  The architecture comes from a config written here (offline) from the published shapes:
  vision InternViT-300M-448px-V2.5 (24 layers, width 1024, 16 heads, MLP 4096, 448 px, patch 14,
  pixel shuffle 0.5 → 256 tokens per tile); text Qwen3-4B (36 layers, width 2560, 32 query / 8 KV
  heads of 128, MLP 9728, vocabulary 151,936, untied lm_head). Built on the meta device this gives
  4.732 B parameters (vision 0.304 B, language 4.411 B, projector 17 M), the published totals of
  InternVL3.5-4B (4.7 B; 0.3 B + 4.4 B; the -HF card: 4.732 B), which only the untied head and the
  padded 151,936 vocabulary reproduce. Not verifiable offline: per-layer details the count does not
  pin down (e.g. InternViT's qk-norm and attention bias flags, rope settings), which change no
  matrix shape that matters for speed.
  Token ids come from the tiny preset's tokenizer (the ids differ from Qwen's; the lengths, the
  layout and every matrix shape are the real ones; words may split into a few more pieces).
  ``--smoke`` runs the same path shrunk to run on a CPU (for checking the script only).

The last printed line is ``RESULT step_s=<mean over tasks of the median step> peak_mb=<max over tasks>``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/model_step.py                    # tiny preset, CPU
    .venv/bin/python benchmarks/model_step.py --real-4b          # on a GPU
    .venv/bin/python benchmarks/model_step.py --real-4b --smoke  # the 4B path, shrunk, on a CPU

Writes the table and RESULT to results/benchmarks/model_step[_real4b].txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from sa2va_st.catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from sa2va_st.formats.boxes import encode_boxes, encode_video_boxes
from sa2va_st.formats.windows import encode_window_tokens
from sa2va_st.model.config import LoraSettings, Sa2vaSTConfig, TemporalSettings
from sa2va_st.model.modeling import Sa2vaSTModel, add_model_tokens, attach_lora

H200_BF16_PEAK_FLOPS = 989e12  # dense
DEFAULT_REPORT = Path("results/benchmarks/model_step.txt")

# the published shape of InternVL3.5-4B (see the module docstring for what is unverified)
REAL_4B_VISION = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    image_size=448,
    patch_size=14,
    attention_bias=True,
    use_qk_norm=False,
    norm_type="layer_norm",
    layer_scale_init_value=0.1,
    use_mean_pooling=True,
)
REAL_4B_TEXT = dict(
    vocab_size=151936,
    hidden_size=2560,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    intermediate_size=9728,
    max_position_embeddings=40960,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)
SMOKE_VISION = dict(REAL_4B_VISION, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128)
SMOKE_TEXT = dict(
    REAL_4B_TEXT,
    hidden_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=32,
    intermediate_size=128,
    vocab_size=4096,
)


# ----------------------------------------------------------------------------- memory


class RssPeak:
    """Peak RSS (bytes) above the RSS at `start`, sampled every millisecond by a thread."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._stop = threading.Event()
        self.base = self.peak = 0

    def rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:  # not Linux: the lifetime high-water mark is the best there is
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __enter__(self) -> RssPeak:
        self.base = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.base) / 2**20


# ----------------------------------------------------------------------------- items


def make_items(
    task: str,
    *,
    batch: int,
    clip_dim: int,
    num_tokens: int,
    image_hw: tuple[int, int],
    frame_hw: tuple[int, int],
    expressions: int,
    frames: int,
    seed: int = 0,
) -> list[dict]:
    """``batch`` items of ``task`` shaped as the datasets give them (random pixels and features)."""
    rng = np.random.default_rng(seed)

    def box() -> list[float]:
        return np.sort(rng.random(4).reshape(2, 2), axis=0).T.reshape(-1).tolist()

    items = []
    for _ in range(batch):
        if task == IMAGE_GROUNDING:
            sentences = [f"the red circle number {k} on the left" for k in range(expressions)]
            items.append(
                {
                    "task": task,
                    "image": torch.from_numpy(rng.integers(0, 256, (3, *image_hw), dtype=np.uint8)),
                    "sentences": sentences,
                    "answers": [encode_boxes([box()]) for _ in sentences],
                }
            )
        elif task == VIDEO_GROUNDING:
            items.append(
                {
                    "task": task,
                    "frames": torch.from_numpy(rng.integers(0, 256, (frames, 3, *frame_hw), dtype=np.uint8)),
                    "sentence": "the green diamond moving left and leaving the picture",
                    "answer": encode_video_boxes([None if k % 4 == 3 else box() for k in range(frames)]),
                }
            )
        else:
            feats = rng.standard_normal((num_tokens, clip_dim)).astype(np.float32)
            feats /= np.linalg.norm(feats, axis=1, keepdims=True)
            a = int(rng.integers(0, num_tokens // 2))
            items.append(
                {
                    "task": task,
                    "features": torch.from_numpy(feats),
                    "sentence": "a red square appears",
                    "answer": encode_window_tokens(a, a + num_tokens // 4),
                }
            )
    return items


# ----------------------------------------------------------------------------- models


def tiny_model(workdir: Path) -> Sa2vaSTModel:
    from sa2va_st.testing.tiny import save_tiny_preset, tiny_model_config

    folder = save_tiny_preset(workdir / "tiny_vlm", 0, ["vlm"])["vlm"]
    return Sa2vaSTModel.from_config(tiny_model_config(folder))


def real_4b_model(device: torch.device, *, smoke: bool) -> Sa2vaSTModel:
    """InternVL3.5-4B's architecture, random bf16 weights on ``device``, upstream's trainable recipe."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        InternVLVisionConfig,
        Qwen3Config,
    )

    from sa2va_st.testing.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(0)  # the ids stand in for Qwen's (see the module docstring)
    vision = InternVLVisionConfig(**(SMOKE_VISION if smoke else REAL_4B_VISION))
    text = Qwen3Config(**(SMOKE_TEXT if smoke else REAL_4B_TEXT))
    config = InternVLConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        downsample_ratio=0.5,
        image_seq_length=256,
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    size = {"height": 448, "width": 448}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=True, max_patches=12),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer,
        image_seq_length=256,
    )
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    settings = Sa2vaSTConfig(
        vlm="(random InternVL3.5-4B shape)",
        dtype="bf16",
        max_image_tiles=12,
        lora=LoraSettings(),
        temporal=TemporalSettings(clip_dim=1024, num_tokens=100),
    )
    torch.manual_seed(0)
    with torch.device(device):
        vlm = InternVLForConditionalGeneration._from_config(config, dtype=dtype)  # random init on the device
    add_model_tokens(vlm, processor.tokenizer)
    vlm = attach_lora(vlm, settings)
    model = Sa2vaSTModel(settings, vlm, processor)
    model.configure_trainable()
    return model.to(device)


def model_flops(model: Sa2vaSTModel, batch: dict) -> float:
    """6 · N_llm · text tokens + 6 · N_head · answer tokens + 2 · N_vit · patch tokens (module docstring).

    The lm_head is counted at the answer positions only: the forward computes logits there only.
    """
    internvl = model.internvl
    embed = internvl.get_input_embeddings().weight
    head = internvl.get_output_embeddings().weight
    vit = sum(p.numel() for p in internvl.model.vision_tower.parameters())
    llm = sum(
        p.numel()
        for n, p in model.named_parameters()
        if p is not embed and p is not head and "vision_tower" not in n and "lora_" not in n
    )
    tokens = int(batch["attention_mask"].sum())
    answers = int((batch["labels"][:, 1:] != -100).sum())
    flops = 6.0 * llm * tokens + 6.0 * head.numel() * answers
    if batch["pixel_values"] is not None:
        vcfg = internvl.config.vision_config
        patches = (vcfg.image_size[0] // vcfg.patch_size[0]) * (vcfg.image_size[1] // vcfg.patch_size[1]) + 1
        flops += 2.0 * vit * patches * batch["pixel_values"].shape[0]
    return flops


# ----------------------------------------------------------------------------- timing


def run_task(model: Sa2vaSTModel, batch: dict, *, steps: int, warmup: int, device: torch.device) -> dict:
    cuda = device.type == "cuda"

    def step() -> float:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(**batch)
        out.loss.backward()
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
        return elapsed

    model.train()
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        times = [step() for _ in range(steps)]
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        with RssPeak() as rss:
            times = [step() for _ in range(steps)]
        peak_mb = rss.delta_mb
    median = statistics.median(times)
    tokens = int(batch["attention_mask"].sum())
    return {
        "step_s": median,
        "tokens": tokens,
        "tokens_per_s": tokens / median,
        "peak_mb": peak_mb,
        "seq_len": int(batch["input_ids"].shape[1]),
        "images": 0 if batch["pixel_values"] is None else int(batch["pixel_values"].shape[0]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-4b", action="store_true", help="InternVL3.5-4B shape, bf16, on a GPU")
    parser.add_argument("--smoke", action="store_true", help="with --real-4b: the same path shrunk for a CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per task (CPU 10, 4B 20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per task (CPU 2, 4B 3)")
    parser.add_argument("--batch", type=int, default=2, help="samples per batch (upstream: 2 per GPU)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 for the tiny preset, whose small matrices gain nothing "
        "from more and which is then steady on shared cores; torch's default otherwise)",
    )
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args(argv)

    real = args.real_4b
    threads = args.threads or (None if real else 1)
    if threads:
        torch.set_num_threads(threads)
    if real and not args.smoke and not torch.cuda.is_available():
        parser.error("--real-4b needs a GPU (add --smoke to run the shrunk path on a CPU)")
    device = torch.device("cuda" if real and not args.smoke else "cpu")
    steps = args.steps or (20 if real and not args.smoke else (1 if args.smoke else 10))
    warmup = args.warmup if args.warmup is not None else (3 if real and not args.smoke else (0 if args.smoke else 2))
    report = args.report or (DEFAULT_REPORT.with_name("model_step_real4b.txt") if real else DEFAULT_REPORT)

    lines = [
        f"# model_step: {'InternVL3.5-4B shape (random, ' + ('smoke, shrunk' if args.smoke else 'bf16') + ')' if real else 'tiny preset (fp32)'}"
        f" on {torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or platform.machine()}"
        f", torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, "
        f"{warmup} warm-up + {steps} timed steps per task (forward + backward)"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model = real_4b_model(device, smoke=args.smoke) if real else tiny_model(Path(tmp))
        counts = model.parameter_counts()
        lines.append(
            f"# built in {time.perf_counter() - t0:.1f} s; parameters: total {counts['total']:,}, trainable "
            f"{counts['trainable']:,} ("
            + ", ".join(
                f"{k} {counts[k]:,}" for k in ("lora", "projector", "embeddings", "lm_head", "temporal_projector")
            )
            + ")"
        )
        cfg = model.config
        shapes = dict(
            clip_dim=cfg.temporal.clip_dim,
            num_tokens=cfg.temporal.num_tokens,
            frames=6,
            expressions=5 if real else 2,
            image_hw=(480, 640) if real else (96, 128),
            frame_hw=(720, 1280) if real else (64, 96),
        )
        header = f"{'task':<20} {'seq':>6} {'tokens':>7} {'images':>6} {'step_s':>9} {'tokens/s':>10} {'peak_mb':>9}"
        if device.type == "cuda":
            header += f" {'TFLOP/s':>8} {'MFU_6N':>7}"
        lines.append(header)
        print("\n".join(lines), flush=True)
        results = {}
        for task in (IMAGE_GROUNDING, VIDEO_GROUNDING, TEMPORAL_GROUNDING):
            batch = model.processor(make_items(task, batch=args.batch, **shapes))
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            r = run_task(model, batch, steps=steps, warmup=warmup, device=device)
            line = (
                f"{task:<20} {r['seq_len']:>6} {r['tokens']:>7} {r['images']:>6} {r['step_s']:>9.4f} "
                f"{r['tokens_per_s']:>10.1f} {r['peak_mb']:>9.1f}"
            )
            if device.type == "cuda":
                achieved = model_flops(model, batch) / r["step_s"]
                r["mfu"] = achieved / H200_BF16_PEAK_FLOPS
                line += f" {achieved / 1e12:>8.1f} {100 * r['mfu']:>6.1f}%"
            results[task] = r
            lines.append(line)
            print(line, flush=True)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    memory_note = (
        "peak_mb: torch.cuda.max_memory_allocated during the timed steps"
        if device.type == "cuda"
        else "peak_mb: peak RSS above the RSS before the timed steps (sampled every 1 ms)"
    )
    lines.append(f"# {memory_note}; process ru_maxrss {maxrss_mb:.0f} MiB")
    step_s = statistics.mean(r["step_s"] for r in results.values())
    peak_mb = max(r["peak_mb"] for r in results.values())
    lines.append(f"RESULT step_s={step_s:.4f} peak_mb={peak_mb:.1f}")
    print("\n".join(lines[-2:]), flush=True)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
