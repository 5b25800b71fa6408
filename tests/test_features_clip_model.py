"""Loading CLIP models (features.clip_model): the tiny local model offline, sources, precision, errors."""

from __future__ import annotations

import json

import open_clip
import pytest
import safetensors.torch
import torch

from sa2va_st.features import FeatureError
from sa2va_st.features.clip_model import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    effective_precision,
    embedding_dim,
    encode_images,
    load_clip,
    resolve_source,
)
from sa2va_st.features.preprocess import PreprocessConfig
from sa2va_st.testing.tiny import CLIP_MODEL_CFG as TINY_MODEL_CFG
from sa2va_st.testing.tiny import save_tiny_preset


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    return save_tiny_preset(tmp_path_factory.mktemp("clip") / "tiny", 0, ["clip"])["clip"]


def images(count: int = 4) -> torch.Tensor:
    return torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_tiny_model_layout_is_open_clips(tiny_dir):
    assert sorted(p.name for p in tiny_dir.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    config = json.loads((tiny_dir / "open_clip_config.json").read_text())
    assert config["model_cfg"] == TINY_MODEL_CFG
    assert config["preprocess_cfg"]["resize_mode"] == "shortest"


def test_tiny_model_loads_offline_with_identical_embeddings(tiny_dir, offline):
    model, cfg = load_clip("tiny", str(tiny_dir))
    assert cfg == PreprocessConfig((32, 32))
    assert not model.training
    parameters = sum(p.numel() for p in model.parameters())
    assert 100_000 < parameters < 1_000_000
    # the same weights put into a model built by hand from the saved config
    reference = open_clip.CLIP(**TINY_MODEL_CFG)
    reference.load_state_dict(safetensors.torch.load_file(str(tiny_dir / "open_clip_model.safetensors")))
    reference.eval()
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(reference.encode_image(images()), dim=-1)
    got = encode_images(model, images())
    assert torch.equal(got, expected)
    assert embedding_dim(model, cfg) == TINY_MODEL_CFG["embed_dim"]
    again, _ = load_clip("anything", str(tiny_dir))  # the folder's config decides the architecture
    assert torch.equal(encode_images(again, images()), got)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, tiny_dir):
    same = save_tiny_preset(tmp_path / "same", 0, ["clip"])["clip"]
    other = save_tiny_preset(tmp_path / "other", 1, ["clip"])["clip"]
    read = lambda d: safetensors.torch.load_file(str(d / "open_clip_model.safetensors"))  # noqa: E731
    base = read(tiny_dir)
    assert all(torch.equal(base[k], v) for k, v in read(same).items())
    assert not all(torch.equal(base[k], v) for k, v in read(other).items())


def test_checkpoint_file_path(tmp_path, tiny_dir, offline):
    """A bare checkpoint file goes with a model name open_clip knows (registered here from the config)."""
    config = tmp_path / "sa2va-tiny-test.json"
    config.write_text(json.dumps(TINY_MODEL_CFG))
    open_clip.add_model_config(config)
    model, cfg = load_clip("sa2va-tiny-test", str(tiny_dir / "open_clip_model.safetensors"))
    folder_model, _ = load_clip("tiny", str(tiny_dir))
    assert cfg.image_size == (32, 32)
    assert torch.equal(encode_images(model, images()), encode_images(folder_model, images()))


def test_resolve_source():
    assert resolve_source(DEFAULT_MODEL, DEFAULT_PRETRAINED) == ("ViT-H-14", "laion2b_s32b_b79k")
    assert resolve_source("hf-hub:org/repo", "ignored") == ("hf-hub:org/repo", None)
    assert resolve_source("local-dir:/x", None) == ("local-dir:/x", None)


def test_source_errors(tmp_path):
    with pytest.raises(FeatureError, match="not an open_clip tag"):
        resolve_source("ViT-H-14", "no_such_tag")
    with pytest.raises(FeatureError, match="not an open_clip model name"):
        resolve_source("ViT-Nope", "laion2b_s32b_b79k")
    with pytest.raises(FeatureError, match="checkpoint not found"):
        resolve_source("ViT-B-32", str(tmp_path / "missing.pt"))
    with pytest.raises(FeatureError, match="open_clip_config.json"):
        resolve_source("ViT-B-32", str(tmp_path))
    with pytest.raises(FeatureError, match="no weights"):
        resolve_source("ViT-B-32", None)


def test_load_failure_is_a_feature_error(tmp_path, tiny_dir, offline):
    """The tiny weights do not fit a wider architecture: open_clip's error comes back as a FeatureError."""
    wider = dict(TINY_MODEL_CFG, embed_dim=16)
    config = tmp_path / "sa2va-tiny-test-wider.json"
    config.write_text(json.dumps(wider))
    open_clip.add_model_config(config)
    with pytest.raises(FeatureError, match="could not load"):
        load_clip("sa2va-tiny-test-wider", str(tiny_dir / "open_clip_model.safetensors"))


def test_precision_is_fp32_on_cpu():
    assert effective_precision("cpu", "fp16") == "fp32"
    assert effective_precision("cuda", "bf16") == "bf16"
    with pytest.raises(FeatureError):
        effective_precision("cpu", "fp8")
