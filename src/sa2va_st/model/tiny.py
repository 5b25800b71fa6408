"""The tiny preset: a random InternVL small enough to train on a CPU, saved exactly like a hub checkpoint.

`save_tiny_vlm(out_dir, seed)` writes a folder that ``from_pretrained`` loads as it loads
``OpenGVLab/InternVL3_5-4B-HF`` (the same files: ``config.json``, ``model.safetensors``,
``generation_config.json``, ``tokenizer.json`` + ``tokenizer_config.json``, ``chat_template.jinja``,
``processor_config.json``), written by transformers' own ``save_pretrained``:

- **model** `InternVLForConditionalGeneration` with a tiny `InternVLVisionConfig` (64 px input,
  8 px patches → 64 patches → 16 tokens per tile after InternVL's 0.5 pixel shuffle) and a tiny
  Qwen3 text model (the 4B default's text family), untied lm_head as in the 4B;
- **tokenizer** a byte-level BPE (Qwen2's pre-tokenizer: digits split one by one, as in Qwen) trained
  here with the ``tokenizers`` library on a synthetic corpus of the prompts, the synthetic world's
  vocabulary (colours, shapes, motions, corners) and box numbers, wrapped as transformers'
  ``Qwen2Tokenizer`` with ChatML tokens and InternVL's image tokens (``<img>``, ``</img>``,
  ``<IMG_CONTEXT>``, ``<video>``, named as `InternVLProcessor` expects). The Sa2VA special tokens are
  NOT in it: like the hub checkpoint, the base model lacks them and the model build adds them;
- **processor** `InternVLProcessor` with `GotOcr2ImageProcessor` and `InternVLVideoProcessor` at 64 px.

Same seed → identical files (the corpus, the BPE training and the weights are deterministic).
`save_tiny_preset` also writes the tiny SAM2 (`sam2.save_tiny_sam2`) and the tiny open_clip model (`sa2va_st.features.clip_model.save_tiny_clip`)
beside it, whose 32-d features the tiny temporal projector takes. CLI::

    python -m sa2va_st.model.tiny --out DIR [--seed 0]     # DIR/vlm, DIR/sam2, DIR/clip
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..atomic import staging_dir
from ..formats.tokens import SPATIAL_TOKEN, TEMPORAL_TOKEN
from .config import LoraSettings, Sa2vaSTConfig, TemporalSettings
from .prompts import IM_END, IM_START, IMAGE_QUESTION, TEMPORAL_QUESTION, VIDEO_QUESTION

TINY_IMAGE_SIZE = 64
TINY_PATCH_SIZE = 8
TINY_IMAGE_SEQ_LENGTH = (TINY_IMAGE_SIZE // TINY_PATCH_SIZE) ** 2 // 4  # 16: pixel shuffle 0.5 → a quarter
TINY_BPE_VOCAB = 640
TINY_CLIP_DIM = 32  # the tiny open_clip model's embed_dim (features.clip_model.TINY_MODEL_CFG)

IMAGE_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
CHAT_TOKENS = (IM_START, IM_END)
ENDOFTEXT = "<|endoftext|>"

# ChatML as InternVL3/3.5 and Qwen write it; images/videos become InternVL's placeholders.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "white")
SHAPES = ("circle", "square", "triangle", "diamond", "rectangle")
PHRASES = (
    "the {c} {s}",
    "a {c} {s}",
    "an {c} {s}",
    "The {c} {s} on the left.",
    "{c} {s} moving right",
    "the {c} {s} moving left and leaving the picture",
    "a {c} square appears in the top left corner",
    "A small {c} {s} in the upper right part of the picture.",
    "the {c} {s} and the {c} {s}",
    "The {s} that is {c}.",
    "{c} one shaped like a {s}",
    "a person is putting a book on a shelf.",
    "a {c} square appears in the bottom right corner",
    "large {c} {s} in the middle",
)


def tiny_corpus(seed: int = 0) -> list[str]:
    """Deterministic training text for the tiny BPE: prompts, the synthetic world's words, numbers."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    lines: list[str] = []
    for c in COLOURS:
        for s in SHAPES:
            for phrase in PHRASES:
                sentence = phrase.format(c=c, s=s)
                for template in (IMAGE_QUESTION, VIDEO_QUESTION, TEMPORAL_QUESTION):
                    # without the task tokens: a base tokenizer does not know them (the model adds them)
                    lines.append(
                        template.format(sentence=sentence).replace(SPATIAL_TOKEN, "").replace(TEMPORAL_TOKEN, "")
                    )
    for _ in range(400):
        box = np.sort(rng.random(4).reshape(2, 2), axis=0).T.reshape(-1)  # x1 <= x2, y1 <= y2
        lines.append(", ".join(f"{v:.3f}" for v in box))
    lines += [f"Frame{i}: " for i in range(1, 33)]
    lines += ["user", "assistant", "system", "\n", " - ", "-", ": "]
    return lines


def build_tiny_tokenizer(seed: int = 0) -> Any:
    """A Qwen2Tokenizer (byte-level BPE, ChatML + InternVL image tokens) trained on `tiny_corpus`."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_BPE_VOCAB,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes: no unknown text
        special_tokens=[ENDOFTEXT],
        show_progress=False,
    )
    bpe.train_from_iterator(tiny_corpus(seed), trainer)
    state = json.loads(bpe.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=state["vocab"],
        merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]],
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        unk_token=None,
        extra_special_tokens=dict(IMAGE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
    )
    tokenizer.add_tokens(list(CHAT_TOKENS), special_tokens=True)
    tokenizer.eos_token = IM_END  # as the chat checkpoints: generation ends a turn
    return tokenizer


def tiny_internvl_config(tokenizer: Any) -> Any:
    """The tiny `InternVLConfig` for `tokenizer` (its vocabulary size and image token id)."""
    from transformers import InternVLConfig, InternVLVisionConfig, Qwen3Config

    vision = InternVLVisionConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        image_size=TINY_IMAGE_SIZE,
        patch_size=TINY_PATCH_SIZE,
        attention_bias=True,  # as InternViT-300M
    )
    text = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        intermediate_size=384,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
    )
    return InternVLConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKENS["context_image_token"]),
        image_seq_length=TINY_IMAGE_SEQ_LENGTH,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )


def build_tiny_processor(tokenizer: Any) -> Any:
    from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor

    size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    return InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False, max_patches=4),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer,
        image_seq_length=TINY_IMAGE_SEQ_LENGTH,
        chat_template=CHAT_TEMPLATE,
    )


def save_tiny_vlm(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny InternVL (weights, tokenizer, processor) to ``out_dir`` in the hub layout; return it."""
    from transformers import GenerationConfig, InternVLForConditionalGeneration

    out_dir = Path(out_dir)
    tokenizer = build_tiny_tokenizer(seed)
    config = tiny_internvl_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = InternVLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END), pad_token_id=tokenizer.pad_token_id
    )
    with staging_dir(out_dir.parent, out_dir.name) as stage:
        folder = stage / "vlm"
        model.save_pretrained(folder)
        build_tiny_processor(tokenizer).save_pretrained(folder)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(folder, out_dir)
    return out_dir


def tiny_model_config(vlm_dir: str | os.PathLike, **changes: Any) -> Sa2vaSTConfig:
    """`Sa2vaSTConfig` of the tiny preset: its folder, fp32, small LoRA, 32-d CLIP features, one tile."""
    base = Sa2vaSTConfig(
        vlm=os.fspath(vlm_dir),
        dtype="fp32",
        max_image_tiles=1,
        lora=LoraSettings(r=8, alpha=16, dropout=0.0),
        temporal=TemporalSettings(clip_dim=TINY_CLIP_DIM, num_tokens=100, depth=2),
    )
    return base.with_changes(**changes) if changes else base


def save_tiny_preset(out_dir: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """``out_dir/vlm`` (`save_tiny_vlm`), ``out_dir/sam2`` (`save_tiny_sam2`, 64 px) and ``out_dir/clip`` (the tiny open_clip model)."""
    from ..features.clip_model import save_tiny_clip
    from .sam2 import save_tiny_sam2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "vlm": save_tiny_vlm(out_dir / "vlm", seed),
        "sam2": save_tiny_sam2(out_dir / "sam2", seed),
        "clip": save_tiny_clip(out_dir / "clip", seed),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write (vlm/, sam2/ and clip/ inside)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vlm-only", action="store_true", help="write only the InternVL folder, to --out itself")
    args = parser.parse_args(argv)
    if args.vlm_only:
        print(save_tiny_vlm(args.out, args.seed))
    else:
        for name, path in save_tiny_preset(args.out, args.seed).items():
            print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
