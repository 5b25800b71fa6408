"""Load an open_clip image encoder by name + tag, by checkpoint file, or from a local folder.

`pretrained` decides where the weights come from, always through open_clip 3.3's
own `create_model` (so a local model is built and loaded exactly like a hub one):

- an open_clip tag (``laion2b_s32b_b79k``): ``create_model(name, pretrained=tag)``,
  which fetches through huggingface_hub's cache (works offline once cached);
- a checkpoint file (``.safetensors``, ``.pt``/``.pth``/``.bin`` state dicts, read with
  ``weights_only=True``): ``create_model(name, pretrained=file)``;
- a folder in open_clip's HF-hub layout (``open_clip_config.json`` + weights, as a
  downloaded ``hf-hub:`` repo looks): ``create_model("local-dir:<folder>")``, the
  schema open_clip 3.x added for exactly this; the architecture then comes from the
  folder's config and `model_name` is only a label.

A `model_name` that already carries a schema (``hf-hub:org/repo``, ``local-dir:/x``) is
passed through unchanged. fp16/bf16 apply on a GPU; on the CPU the model runs in fp32.

`save_tiny_clip` writes a tiny random ViT-CLIP in the same folder layout (written
by open_clip's own ``save_config_for_hf`` + safetensors), so tests and the demo load
it through the very path a real downloaded model takes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..atomic import staging_dir
from ..errors import FeatureError
from .preprocess import OPENAI_MEAN, OPENAI_STD, PreprocessConfig

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-H-14"
DEFAULT_PRETRAINED = "laion2b_s32b_b79k"
PRECISIONS = ("fp32", "fp16", "bf16")
SCHEMAS = ("hf-hub:", "local-dir:")
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")

# A few hundred thousand parameters (most of them the text tower's 49408-token embedding,
# kept so open_clip's default tokenizer stays valid); image input 32x32, 32-d embeddings.
TINY_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 8, "heads": 1, "layers": 1},
}


def _is_local_path(pretrained: str) -> bool:
    """A path, not a tag: it exists, or it is spelled like a path or a checkpoint file."""
    return (
        os.path.exists(pretrained)
        or os.sep in pretrained
        or pretrained.startswith((".", "~"))
        or pretrained.endswith(CHECKPOINT_SUFFIXES)
    )


def resolve_source(model_name: str, pretrained: str | None) -> tuple[str, str | None]:
    """(open_clip model_name, open_clip pretrained) for `create_model`; errors name the fix."""
    import open_clip

    if model_name.startswith(SCHEMAS):
        return model_name, None
    if not pretrained:
        raise FeatureError(
            f"no weights given for {model_name}", fix="pass an open_clip tag or a local checkpoint file or folder"
        )
    if _is_local_path(pretrained):
        path = Path(pretrained).expanduser()
        if path.is_dir():
            if not (path / "open_clip_config.json").is_file():
                raise FeatureError(
                    "a local model folder needs open_clip_config.json next to its weights",
                    file=str(path),
                    fix="download the whole hf-hub repository of the model, or pass the checkpoint file itself",
                )
            return f"local-dir:{path.resolve()}", None
        if path.is_file():
            _check_model_name(model_name)
            return model_name, str(path.resolve())
        raise FeatureError("checkpoint not found", file=str(path), fix="check the path given as pretrained")
    _check_model_name(model_name)
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        raise FeatureError(
            f"{pretrained!r} is not an open_clip tag of {model_name}",
            key="pretrained",
            fix=f"use one of {tags} or a local checkpoint path",
        )
    return model_name, pretrained


def _check_model_name(model_name: str) -> None:
    import open_clip

    if model_name not in open_clip.list_models():
        raise FeatureError(
            f"{model_name!r} is not an open_clip model name",
            key="model",
            fix="see open_clip.list_models(), or pass 'local-dir:<folder>' / 'hf-hub:<repo>'",
        )


def effective_precision(device: str | torch.device, precision: str) -> str:
    """The precision actually used: as asked on a GPU, fp32 on the CPU (half precision there is slow or unsupported)."""
    if precision not in PRECISIONS:
        raise FeatureError(f"precision must be one of {PRECISIONS}, got {precision!r}", key="precision")
    if torch.device(device).type == "cpu" and precision != "fp32":
        log.warning("precision %s requested on the CPU; using fp32", precision)
        return "fp32"
    return precision


def load_clip(
    model_name: str = DEFAULT_MODEL,
    pretrained: str | None = DEFAULT_PRETRAINED,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> tuple[torch.nn.Module, PreprocessConfig]:
    """An eval-mode open_clip model on `device` and its inference preprocess."""
    import open_clip

    name, weights = resolve_source(model_name, pretrained)
    precision = effective_precision(device, precision)
    try:
        model = open_clip.create_model(
            name, pretrained=weights, precision=precision, device=device, require_pretrained=True
        )
    except Exception as error:  # open_clip raises RuntimeError, ValueError, OSError, AssertionError, KeyError...
        raise FeatureError(
            f"open_clip could not load {model_name} / {pretrained}: {error}",
            fix="if the machine is offline, download the weights once elsewhere (or pass a local checkpoint path)",
        ) from error
    model.eval()
    return model, PreprocessConfig.from_open_clip(model.visual.preprocess_cfg)


def input_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype images must have: that of the image tower's first conv/linear weights.

    Not simply the first parameter: open_clip's fp16/bf16 conversion leaves the class and
    position embeddings in fp32 and casts them to the input's dtype in `forward`.
    """
    for module in model.visual.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            return module.weight.dtype
    return next(model.visual.parameters()).dtype


@torch.inference_mode()
def encode_images(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(n, 3, h, w) normalised input -> (n, D) float32 unit-length image embeddings."""
    return F.normalize(model.encode_image(pixels).float(), dim=-1)


@torch.inference_mode()
def embedding_dim(model: torch.nn.Module, cfg: PreprocessConfig) -> int:
    """D, found by encoding one blank image (works for every open_clip tower type)."""
    device = next(model.visual.parameters()).device
    blank = torch.zeros((1, 3, *cfg.image_size), dtype=input_dtype(model), device=device)
    return int(model.encode_image(blank).shape[-1])


def save_tiny_clip(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random open_clip ViT to `out_dir` in open_clip's local-dir/hf-hub layout; return the folder.

    Same seed, same weights. Load it with ``load_clip("tiny", str(out_dir))``.
    """
    import open_clip
    import safetensors.torch
    from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME
    from open_clip.push_to_hf_hub import save_config_for_hf

    out_dir = Path(out_dir)
    with staging_dir(out_dir.parent, out_dir.name) as stage:
        folder = stage / "model"
        folder.mkdir()
        preprocess = {
            "mean": list(OPENAI_MEAN),
            "std": list(OPENAI_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        }
        (folder / HF_CONFIG_NAME).write_text(json.dumps({"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": preprocess}))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # open_clip builds it from the folder's config, as it will when loading; no weights yet
            # (it warns that the model is random: that is the point here)
            logging.disable(logging.WARNING)
            try:
                model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
            finally:
                logging.disable(logging.NOTSET)
        save_config_for_hf(model, folder / HF_CONFIG_NAME, TINY_MODEL_CFG)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(state, str(folder / HF_SAFE_WEIGHTS_NAME))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(folder, out_dir)
    return out_dir
