"""The tiny presets: random models small enough to train and run on a CPU, saved exactly like hub checkpoints.

`save_tiny_preset(out_dir, seed)` is the one writer. It writes, each with the library's own
``save_pretrained`` (or open_clip's hub layout), under a temporary name then renamed:

- ``vlm/``: a folder that ``from_pretrained`` loads as it loads ``OpenGVLab/InternVL3_5-4B-HF`` (the
  same files: ``config.json``, ``model.safetensors``, ``generation_config.json``, ``tokenizer.json`` +
  ``tokenizer_config.json``, ``chat_template.jinja``, ``processor_config.json``):

  - **model** `InternVLForConditionalGeneration` with a tiny `InternVLVisionConfig` (64 px input,
    8 px patches → 64 patches → 16 tokens per tile after InternVL's 0.5 pixel shuffle) and a tiny
    Qwen3 text model (the 4B default's text family), untied lm_head as in the 4B;
  - **tokenizer** a byte-level BPE (Qwen2's pre-tokenizer: digits split one by one, as in Qwen) trained
    here with the ``tokenizers`` library on a corpus of the prompts, the synthetic world's vocabulary
    (colours, shapes, motions, corners) and box numbers, wrapped as transformers' ``Qwen2Tokenizer``
    with ChatML tokens and InternVL's image tokens (``<img>``, ``</img>``, ``<IMG_CONTEXT>``,
    ``<video>``, named as `InternVLProcessor` expects). The Sa2VA special tokens are NOT in it: like
    the hub checkpoint, the base model lacks them and the model build adds them;
  - **processor** `InternVLProcessor` with `GotOcr2ImageProcessor` and `InternVLVideoProcessor` at 64 px.

- ``sam2/``: a random SAM2 (image + video parts in one ``sam2_video`` checkpoint) at 64 px, ~0.9 M parameters;
- ``clip/``: a random open_clip ViT (32x32 input, 32-d embeddings) in open_clip's local-folder layout,
  whose features the tiny temporal projector takes (`TINY_CLIP_DIM`).

Same seed → identical files (the corpus, the BPE training and the weights are deterministic).
`tiny_model_config` is the `Sa2vaSTConfig` that goes with ``vlm/``. CLI:
``python -m sa2va_st.testing tiny --out DIR [--seed 0]``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ..atomic import staging_dir
from ..features.preprocess import OPENAI_MEAN, OPENAI_STD
from ..formats.tokens import SPATIAL_TOKEN, TEMPORAL_TOKEN
from ..model.config import LoraSettings, Sa2vaSTConfig, TemporalSettings
from ..model.prompts import IM_END, IM_START, IMAGE_QUESTION, TEMPORAL_QUESTION, VIDEO_QUESTION
from .world.shapes import PALETTE, SHAPE_KINDS

PARTS = ("vlm", "sam2", "clip")

# ----------------------------------------------------------------------------- vlm

VLM_IMAGE_SIZE = 64
TINY_PATCH_SIZE = 8
TINY_IMAGE_SEQ_LENGTH = (VLM_IMAGE_SIZE // TINY_PATCH_SIZE) ** 2 // 4  # 16: pixel shuffle 0.5 → a quarter
TINY_BPE_VOCAB = 640
TINY_CLIP_DIM = 32  # the tiny open_clip model's embed_dim (CLIP_MODEL_CFG)

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

COLOURS = tuple(PALETTE)
SHAPES = SHAPE_KINDS
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
        image_size=VLM_IMAGE_SIZE,
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

    size = {"height": VLM_IMAGE_SIZE, "width": VLM_IMAGE_SIZE}
    return InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False, max_patches=4),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer,
        image_seq_length=TINY_IMAGE_SEQ_LENGTH,
        chat_template=CHAT_TEMPLATE,
    )


def _save_vlm(out_dir: Path, seed: int) -> Path:
    """The tiny InternVL (weights, tokenizer, processor) in the hub layout."""
    from transformers import GenerationConfig, InternVLForConditionalGeneration

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
        temporal=TemporalSettings(clip_dim=TINY_CLIP_DIM, num_tokens=100),
    )
    return base.with_changes(**changes) if changes else base


# ----------------------------------------------------------------------------- clip

# A few hundred thousand parameters (most of them the text tower's 49408-token embedding,
# kept so open_clip's default tokenizer stays valid); image input 32x32, 32-d embeddings.
CLIP_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 8, "heads": 1, "layers": 1},
}


def _save_clip(out_dir: Path, seed: int) -> Path:
    """A tiny random open_clip ViT in open_clip's local-dir/hf-hub layout (load it with
    ``load_clip("tiny", str(out_dir))``)."""
    import open_clip
    import safetensors.torch
    from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME
    from open_clip.push_to_hf_hub import save_config_for_hf

    with staging_dir(out_dir.parent, out_dir.name) as stage:
        folder = stage / "model"
        folder.mkdir()
        preprocess = {
            "mean": list(OPENAI_MEAN),
            "std": list(OPENAI_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        }
        (folder / HF_CONFIG_NAME).write_text(json.dumps({"model_cfg": CLIP_MODEL_CFG, "preprocess_cfg": preprocess}))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # open_clip builds it from the folder's config, as it will when loading; no weights yet
            # (it warns that the model is random: that is the point here)
            logging.disable(logging.WARNING)
            try:
                model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
            finally:
                logging.disable(logging.NOTSET)
        save_config_for_hf(model, folder / HF_CONFIG_NAME, CLIP_MODEL_CFG)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(state, str(folder / HF_SAFE_WEIGHTS_NAME))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(folder, out_dir)
    return out_dir


# ----------------------------------------------------------------------------- sam2

# 64 px input -> patch stride 4 -> a 3-stage Hiera at 16x16, 8x8, 4x4 (SAM2 needs three feature
# levels: two high-resolution skips for the mask decoder + the 4x4 embedding). Constraints the
# transformers implementation imposes on a small config, found by building it:
# - a query-pooling block (first block of stages 2..) must use windowed attention, so with one
#   block per stage there are no global-attention blocks; the last stage's window (8 -> 4 after
#   pooling) covers its whole 4x4 map instead;
# - the memory attention's image cross-attention takes 64-d memories (hard-coded), so
#   ``memory_encoder_output_channels`` stays 64;
# - object pointers are split into mem_dim-sized tokens only when hidden > mem_dim; with
#   hidden == mem_dim (64) propagation fails on a 4-d/3-d concat, so the hidden size is 128.
SAM2_IMAGE_SIZE = 64
# The random object-score head gives logits of about +-0.01, so SAM2's "is the object on this
# frame" gate (logit > 0) would flip at random and many frames would come back empty. The tiny
# model sets that head's output bias to +2 ("the object is there"), so its masks are non-trivial
# and the propagation path (memory, pointers) is exercised on every frame.
TINY_OBJECT_SCORE_BIAS = 2.0


def tiny_sam2_config():
    """A ``Sam2VideoConfig`` for a random SAM2 at ``SAM2_IMAGE_SIZE`` px (the image part is its subset)."""
    from transformers import Sam2VideoConfig

    size = SAM2_IMAGE_SIZE
    grid = size // 4  # patch stride 4: the first (highest-resolution) feature map
    hidden = 128  # FPN / prompt encoder / mask decoder / memory attention width
    return Sam2VideoConfig(
        vision_config={
            "model_type": "sam2_vision_model",
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": 16,
                "image_size": [size, size],
                "blocks_per_stage": [1, 1, 1],
                "embed_dim_per_stage": [16, 32, 64],
                "num_attention_heads_per_stage": [1, 1, 2],
                "window_size_per_stage": [4, 8, 8],
                "global_attention_blocks": [],
                "num_query_pool_stages": 2,
                "window_positional_embedding_background_size": [4, 4],
                "mlp_ratio": 2.0,
            },
            "backbone_channel_list": [64, 32, 16],  # low -> high resolution
            "backbone_feature_sizes": [[grid, grid], [grid // 2, grid // 2], [grid // 4, grid // 4]],
            "fpn_hidden_size": hidden,
            "fpn_top_down_levels": [1, 2],
            "num_feature_levels": 3,
        },
        prompt_encoder_config={"hidden_size": hidden, "image_size": size, "patch_size": 16, "mask_input_channels": 8},
        mask_decoder_config={
            "hidden_size": hidden,
            "mlp_dim": 256,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "iou_head_hidden_dim": 64,
        },
        image_size=size,
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=256,
        memory_attention_rope_feat_sizes=[grid // 4, grid // 4],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=hidden,
        mask_downsampler_stride=4,
        memory_fuser_num_layers=1,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=256,
    )


def tiny_sam2_processor():
    """The ``Sam2VideoProcessor`` matching `tiny_sam2_config` (images, videos and box coordinates at 64 px)."""
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor, Sam2VideoVideoProcessor

    size = {"height": SAM2_IMAGE_SIZE, "width": SAM2_IMAGE_SIZE}
    mask_size = {"height": SAM2_IMAGE_SIZE // 4, "width": SAM2_IMAGE_SIZE // 4}
    return Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=size, mask_size=mask_size),
        video_processor=Sam2VideoVideoProcessor(size=size),
        target_size=SAM2_IMAGE_SIZE,
    )


def _save_sam2(out_dir: Path, seed: int) -> Path:
    """A tiny random SAM2 (image + video, one checkpoint) and its processor.

    Written with ``save_pretrained`` in the hub layout (``config.json``, ``model.safetensors``,
    ``processor_config.json``), atomically. Same seed, same bytes. Load it with ``load_sam2(out_dir)``.
    """
    from transformers import Sam2VideoModel

    with staging_dir(out_dir.parent, out_dir.name) as stage:
        folder = stage / "model"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Sam2VideoModel(tiny_sam2_config())
        with torch.no_grad():
            model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(TINY_OBJECT_SCORE_BIAS)
        model.save_pretrained(folder)  # config.json + model.safetensors
        tiny_sam2_processor().save_pretrained(folder)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(folder, out_dir)
    return out_dir


# ----------------------------------------------------------------------------- the writer

WRITERS: dict[str, Callable[[Path, int], Path]] = {"vlm": _save_vlm, "sam2": _save_sam2, "clip": _save_clip}


def save_tiny_preset(out_dir: str | os.PathLike, seed: int = 0, parts: Iterable[str] = PARTS) -> dict[str, Path]:
    """Write ``out_dir/<part>`` for each of `parts` (``vlm``, ``sam2``, ``clip``); return {part: folder}.

    A part whose folder is already complete (its config file is there: folders are renamed into place
    only when whole) is kept, so a second call costs nothing.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for part in parts:
        if part not in WRITERS:
            raise ValueError(f"unknown tiny part {part!r}; known: {PARTS}")
        folder = out_dir / part
        marker = folder / ("open_clip_config.json" if part == "clip" else "config.json")
        written[part] = folder if marker.is_file() else WRITERS[part](folder, seed)
    return written
