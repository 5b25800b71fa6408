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

The tiny random model of tests and the demo (`sa2va_st.testing.tiny`) is saved in the
local-folder layout, so it loads through the very path a real downloaded model takes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import FeatureError
from .identity import is_local_weights
from .preprocess import PreprocessConfig

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-H-14"
DEFAULT_PRETRAINED = "laion2b_s32b_b79k"
PRECISIONS = ("fp32", "fp16", "bf16")
SCHEMAS = ("hf-hub:", "local-dir:")


def resolve_source(model_name: str, pretrained: str | None) -> tuple[str, str | None]:
    """(open_clip model_name, open_clip pretrained) for `create_model`; errors name the fix."""
    import open_clip

    if model_name.startswith(SCHEMAS):
        return model_name, None
    if not pretrained:
        raise FeatureError(
            f"no weights given for {model_name}", fix="pass an open_clip tag or a local checkpoint file or folder"
        )
    if is_local_weights(pretrained):
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
