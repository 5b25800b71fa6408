"""CLIP preprocessing on uint8 frames: resize and crop first, convert to float last.

open_clip's own preprocess works on PIL images: resize the shorter side to the
model's image size (bicubic; PIL always antialiases), centre-crop, convert to
float, normalise. Doing the same on a batch of uint8 tensors keeps every pixel
operation on small uint8 data: torch's antialiased bicubic kernel on uint8 uses
PIL's kernel (a = -0.5) and is several times faster than the float kernel, and a
480p frame shrinks to 224x224 before the (4x larger) float copy exists. We
measured that resizing in float at full resolution costs more than decoding.

The split follows the pipeline: `resize_crop_uint8` runs in the decode workers
(so only small uint8 crops cross process boundaries), `normalize` runs where the
model is (on the GPU when there is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from ..errors import FeatureError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
SUPPORTED_RESIZE_MODES = ("shortest", "squash")


@dataclass(frozen=True)
class PreprocessConfig:
    """The inference preprocess of one CLIP model (what open_clip's `PreprocessCfg` says)."""

    image_size: tuple[int, int]  # (H, W) of the model input
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    def __post_init__(self) -> None:
        if self.resize_mode not in SUPPORTED_RESIZE_MODES:
            raise FeatureError(
                f"resize_mode {self.resize_mode!r} is not supported by the uint8 preprocess",
                fix=f"use a model whose preprocess resize_mode is one of {SUPPORTED_RESIZE_MODES}",
            )
        if self.resize_mode == "shortest" and self.image_size[0] != self.image_size[1]:
            raise FeatureError(f"non-square image size {self.image_size} with resize_mode 'shortest' is not supported")
        if self.interpolation not in ("bicubic", "bilinear"):
            raise FeatureError(f"interpolation {self.interpolation!r} is not supported")

    @classmethod
    def from_open_clip(cls, cfg: Mapping[str, Any]) -> PreprocessConfig:
        """From open_clip's preprocess dict (`model.visual.preprocess_cfg`)."""
        size = cfg.get("size", 224)
        image_size = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
        mean, std = cfg.get("mean") or OPENAI_MEAN, cfg.get("std") or OPENAI_STD
        mean = tuple(float(m) for m in (mean if isinstance(mean, (list, tuple)) else (mean,) * 3))
        std = tuple(float(s) for s in (std if isinstance(std, (list, tuple)) else (std,) * 3))
        interpolation = cfg.get("interpolation") or "bicubic"
        if interpolation == "random":  # open_clip ignores "random" at inference and uses bicubic
            interpolation = "bicubic"
        return cls(image_size, mean, std, interpolation, cfg.get("resize_mode") or "shortest")


def resize_crop_uint8(frames: np.ndarray | torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """(n, H, W, 3) uint8 RGB pictures -> (n, 3, h, w) uint8 model-sized crops, as open_clip would cut them."""
    batch = torch.as_tensor(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected (n, H, W, 3) uint8 frames, got {tuple(batch.shape)} {batch.dtype}")
    batch = batch.permute(0, 3, 1, 2)  # (n, 3, H, W), channels-last in memory: the fast uint8 kernel's layout
    mode = InterpolationMode.BICUBIC if cfg.interpolation == "bicubic" else InterpolationMode.BILINEAR
    if cfg.resize_mode == "squash":
        resized = TF.resize(batch, list(cfg.image_size), interpolation=mode, antialias=True)
    else:  # "shortest": shorter side to the size (torchvision's rounding, as open_clip's Resize(int)), then crop
        resized = TF.resize(batch, [cfg.image_size[0]], interpolation=mode, antialias=True)
        resized = TF.center_crop(resized, list(cfg.image_size))
    return resized.contiguous()  # (n, 3, h, w) uint8


def normalize(
    crops: torch.Tensor,
    cfg: PreprocessConfig,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """(n, 3, h, w) uint8 crops -> (n, 3, h, w) model input: /255, minus mean, over std, in `dtype`."""
    x = crops.to(device, non_blocking=True).to(torch.float32).div_(255.0)
    mean = torch.tensor(cfg.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std).to(dtype)
