"""uint8 CLIP preprocessing (features.preprocess) against open_clip's own PIL preprocess.

Tolerance: on the normalised model input, mean |ours - open_clip| < 1e-3 and every
value within 2.5 uint8 levels (2.5 / 255 / min(std) = 0.037). Both resize uint8
pixels with PIL's bicubic kernel, so they differ only in rounding: we measured a mean
of about 1e-4 and at most 2 levels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image, ImageFilter

from sa2va_st.features import FeatureError
from sa2va_st.features.preprocess import OPENAI_STD, PreprocessConfig, normalize, resize_crop_uint8

MEAN_TOLERANCE = 1e-3
MAX_TOLERANCE = 2.5 / 255 / min(OPENAI_STD)


def textured_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(count, H, W, 3) uint8: blurred noise, with detail at every scale the resize has to filter."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        noise = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        frames.append(np.asarray(noise.filter(ImageFilter.GaussianBlur(1.0))))
    return np.stack(frames)


def open_clip_reference(frames: np.ndarray, size: int, resize_mode: str) -> torch.Tensor:
    transform = image_transform_v2(PreprocessCfg(size=size, resize_mode=resize_mode), is_train=False)
    return torch.stack([transform(Image.fromarray(frame)) for frame in frames])


@pytest.mark.parametrize("height, width", [(480, 640), (640, 480), (360, 480), (96, 128), (33, 47)])
@pytest.mark.parametrize("size", [224, 32])
@pytest.mark.parametrize("resize_mode", ["shortest", "squash"])
def test_matches_open_clip_pil_preprocess(height, width, size, resize_mode):
    frames = textured_frames(3, height, width)
    cfg = PreprocessConfig((size, size), resize_mode=resize_mode)
    crops = resize_crop_uint8(frames, cfg)
    assert crops.dtype == torch.uint8 and crops.shape == (3, 3, size, size)
    ours = normalize(crops, cfg)
    theirs = open_clip_reference(frames, size, resize_mode)
    assert ours.shape == theirs.shape
    difference = (ours - theirs).abs()
    assert difference.mean().item() < MEAN_TOLERANCE
    assert difference.max().item() < MAX_TOLERANCE


def test_crop_is_central():
    frame = np.zeros((1, 64, 128, 3), dtype=np.uint8)
    frame[:, :, 32:96] = 255  # the middle half is white: exactly what a centre crop of a 2:1 frame keeps
    crops = resize_crop_uint8(frame, PreprocessConfig((32, 32)))
    assert crops.float().mean().item() > 250


def test_normalize_dtype_and_values():
    cfg = PreprocessConfig((4, 4))
    crops = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize(crops, cfg, dtype=torch.float16)
    assert out.dtype == torch.float16 and out.shape == (2, 3, 4, 4)
    expected = (1 - torch.tensor(cfg.mean)) / torch.tensor(cfg.std)
    assert torch.allclose(out[0, :, 0, 0].float(), expected, atol=1e-2)


def test_from_open_clip_config():
    cfg = PreprocessConfig.from_open_clip(
        {"size": 224, "mean": [0.5, 0.5, 0.5], "std": 0.5, "interpolation": "random", "resize_mode": "squash"}
    )
    assert cfg == PreprocessConfig((224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", "squash")
    assert PreprocessConfig.from_open_clip({"size": (336, 336)}).image_size == (336, 336)


def test_unsupported_settings_are_refused():
    with pytest.raises(FeatureError, match="longest"):
        PreprocessConfig((224, 224), resize_mode="longest")
    with pytest.raises(FeatureError):
        PreprocessConfig((224, 256))
    with pytest.raises(ValueError):
        resize_crop_uint8(np.zeros((1, 8, 8, 3), dtype=np.float32), PreprocessConfig((4, 4)))
