"""The model's config: the `model:` section of config.yaml (schema, defaults) and `Sa2vaSTConfig`."""

from __future__ import annotations

import copy

import pytest
import yaml

from sa2va_st.config import validate_config
from sa2va_st.errors import ConfigError, ModelError
from sa2va_st.model.config import (
    DEFAULT_TARGET_MODULES,
    DEFAULT_VLM,
    Sa2vaSTConfig,
    clip_embedding_dim,
)
from test_config import DEFAULT, SCHEMA, with_change  # the pipeline config and its schema, as test_config reads them


def test_defaults_are_upstreams_recipe():
    config = Sa2vaSTConfig.from_pipeline_config(validate_config(copy.deepcopy(DEFAULT), SCHEMA))
    assert config.vlm == DEFAULT_VLM == "OpenGVLab/InternVL3_5-4B-HF"
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (128, 256, 0.05)
    assert config.lora.target_modules == DEFAULT_TARGET_MODULES
    assert (config.temporal.num_tokens, config.temporal.clip_dim) == (100, 1024)  # ViT-H-14's width
    assert config.dtype == "bf16"
    assert all(vars(config.train).values())
    assert DEFAULT["model"]["sam2"] == "facebook/sam2.1-hiera-large"


def test_a_config_without_a_model_section_gets_the_schema_defaults():
    config = copy.deepcopy(DEFAULT)
    del config["model"]
    filled = validate_config(config, SCHEMA)
    assert filled["model"] == validate_config(copy.deepcopy(DEFAULT), SCHEMA)["model"]
    assert Sa2vaSTConfig.from_pipeline_config(filled) == Sa2vaSTConfig.from_pipeline_config(
        validate_config(copy.deepcopy(DEFAULT), SCHEMA)
    )


@pytest.mark.parametrize(
    "path, value, key",
    [
        ("model.lora.r", 0, "model.lora.r"),
        ("model.lora.dropout", 1.5, "model.lora.dropout"),
        ("model.lora.target_modules", [], "model.lora.target_modules"),
        ("model.lora.rank", 8, "model.lora.rank"),
        ("model.temporal.num_tokens", 101, "model.temporal.num_tokens"),
        ("model.temporal.dropout", 1.5, "model.temporal.dropout"),
        ("model.train.vision_tower", True, "model.train.vision_tower"),
        ("model.train.projector", "yes", "model.train.projector"),
        ("model.dtype", "int8", "model.dtype"),
        ("model.vlm", "", "model.vlm"),
    ],
)
def test_bad_model_values_name_their_key(path, value, key):
    with pytest.raises(ConfigError) as error:
        validate_config(with_change(path, value), SCHEMA)
    assert error.value.key == key
    assert f"{key}:" in str(error.value) and "fix:" in str(error.value)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"lora": {"r": 0}}, "model.lora.r"),
        ({"lora": {"target_modules": ["q_proj", "not a name"]}}, "model.lora.target_modules"),
        ({"temporal": {"num_tokens": 0}}, "model.temporal.num_tokens"),
        ({"temporal": {"clip_dim": 1.5}}, "model.temporal.clip_dim"),
        ({"train": {"lm_head": 1}}, "model.train.lm_head"),
        ({"train": {"everything": True}}, "model.train.everything"),
        ({"bogus": 1}, "model.bogus"),
        ({"max_image_tiles": 0}, "model.max_image_tiles"),
        ({"dtype": "fp8"}, "model.dtype"),
    ],
)
def test_sa2vast_config_names_the_bad_key(data, key):
    with pytest.raises(ModelError) as error:
        Sa2vaSTConfig.from_dict(data)
    assert error.value.key == key and "fix:" in str(error.value)


def test_config_round_trips_through_json():
    config = Sa2vaSTConfig.from_dict(
        {
            "vlm": "org/x",
            "lora": {"r": 4, "target_modules": ["q_proj"]},
            "temporal": {"clip_dim": 32, "dropout": 0.0},
            "train": {"lm_head": False},
        }
    )
    assert Sa2vaSTConfig.from_dict(yaml.safe_load(config.to_json())) == config


def test_clip_width_comes_from_the_clip_section(tmp_path):
    from sa2va_st.testing.tiny import save_tiny_preset

    assert clip_embedding_dim("ViT-H-14") == 1024
    assert clip_embedding_dim("ViT-B-32") == 512
    folder = save_tiny_preset(tmp_path / "clip", 0, ["clip"])["clip"]
    assert clip_embedding_dim("tiny", str(folder)) == 32
    config = validate_config(copy.deepcopy(DEFAULT), SCHEMA)
    config["clip"]["pretrained"] = str(folder)
    assert Sa2vaSTConfig.from_pipeline_config(config).temporal.clip_dim == 32
    config["model"]["temporal"]["clip_dim"] = 64  # an explicit width wins
    assert Sa2vaSTConfig.from_pipeline_config(config).temporal.clip_dim == 64
    with pytest.raises(ModelError) as error:
        clip_embedding_dim("no-such-model")
    assert error.value.key == "model.temporal.clip_dim"
