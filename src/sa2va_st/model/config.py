"""`Sa2vaSTConfig`: everything needed to rebuild the grounding model, as one JSON-serialisable object.

It is built from the pipeline config's ``model:`` section (`Sa2vaSTConfig.from_pipeline_config`,
defaults filled by the schema in ``workflow/schemas/config.schema.yaml``) and written into every
checkpoint (``sa2va_st_model.json``), so a checkpoint says how to rebuild its model. Fields:

- ``vlm`` / ``revision``: a hub id (``OpenGVLab/InternVL3_5-4B-HF``) or a local folder in the
  hub layout (``config.json`` + weights + tokenizer/processor files), loaded with
  ``from_pretrained`` either way. ``local_files_only`` ``None`` means: True for a folder (nothing
  goes online for it), the client's default for a hub id.
- ``lora``: LoRA on the language model only (the vision tower has ``q_proj`` too; it stays frozen).
- ``temporal``: the temporal projector (upstream's architecture, sized by the LLM width), CLIP width
  ``clip_dim`` → LLM width, ``dropout`` in its expansion; ``num_tokens`` CLIP features (=
  placeholder tokens) per video.
- ``train``: which non-LoRA parts train (upstream: projector, token embeddings, lm_head, temporal
  projector); everything else (vision tower, LLM weights) is frozen.
- ``max_image_tiles``: InternVL's dynamic tiling of still images (1 = one tile); video frames are
  always one tile each.
- ``dtype``: weights on a GPU (``bf16`` as upstream); the CPU always runs fp32.

Invalid values raise `ModelError` naming the key (``model.lora.r``) and the fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ModelError

DEFAULT_VLM = "OpenGVLab/InternVL3_5-4B-HF"
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = ("fp32", "bf16", "fp16")
KEY_PREFIX = "model"  # config keys are named as in config.yaml: model.lora.r


def _fail(key: str, what: str, fix: str) -> ModelError:
    return ModelError(what, key=f"{KEY_PREFIX}.{key}", fix=fix)


def _int(value: object, key: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise _fail(key, f"must be an integer {bound}, got {value!r}", f"set {KEY_PREFIX}.{key} to an integer {bound}")
    return value


def _number(value: object, key: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value < hi:
        raise _fail(key, f"must be a number in [{lo}, {hi}), got {value!r}", f"set {KEY_PREFIX}.{key} in [{lo}, {hi})")
    return float(value)


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, got {value!r}", f"set {KEY_PREFIX}.{key} to true or false")
    return value


def _check_keys(data: Mapping[str, Any], cls: type, prefix: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        key = ".".join(filter(None, [prefix, unknown[0]]))
        raise _fail(key, f"unknown key {unknown[0]!r}", f"use one of {sorted(known)}")


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the language model's linear layers (peft); upstream: r 128, alpha 256, dropout 0.05."""

    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES

    def __post_init__(self) -> None:
        _int(self.r, "lora.r", 1)
        _int(self.alpha, "lora.alpha", 1)
        _number(self.dropout, "lora.dropout", 0.0, 1.0)
        modules = tuple(self.target_modules) if not isinstance(self.target_modules, str) else ()
        if not modules or not all(isinstance(m, str) and m.isidentifier() for m in modules):
            raise _fail(
                "lora.target_modules",
                f"must be a non-empty list of module names, got {self.target_modules!r}",
                f"list linear layer names of the language model, e.g. {list(DEFAULT_TARGET_MODULES)}",
            )
        object.__setattr__(self, "target_modules", modules)


@dataclass(frozen=True)
class TemporalSettings:
    """The temporal projector: ``num_tokens`` CLIP features (width ``clip_dim``) → as many LLM tokens."""

    clip_dim: int = 1024  # ViT-H-14's embedding width (upstream's CLIP)
    num_tokens: int = 100  # two-digit frame tokens can address at most 100 features
    dropout: float = 0.1  # upstream's, after the projector's expansion

    def __post_init__(self) -> None:
        _int(self.clip_dim, "temporal.clip_dim", 1)
        _int(self.num_tokens, "temporal.num_tokens", 1, 100)
        _number(self.dropout, "temporal.dropout", 0.0, 1.0)


@dataclass(frozen=True)
class TrainSettings:
    """Which parts besides LoRA train. Everything not listed (vision tower, LLM base weights) is frozen."""

    projector: bool = True  # InternVL's multimodal projector (vision → LLM)
    embeddings: bool = True  # the whole input embedding matrix, new special-token rows included
    lm_head: bool = True
    temporal_projector: bool = True
    lora: bool = True  # False: no LoRA adapters at all (the LLM stays exactly the base model)

    def __post_init__(self) -> None:
        for f in fields(self):
            _bool(getattr(self, f.name), f"train.{f.name}")


@dataclass(frozen=True)
class Sa2vaSTConfig:
    """How to build (and rebuild) the spatial-temporal grounding model; see the module docstring."""

    vlm: str = DEFAULT_VLM
    revision: str | None = None
    local_files_only: bool | None = None
    dtype: str = "bf16"
    max_image_tiles: int = 12
    lora: LoraSettings = field(default_factory=LoraSettings)
    temporal: TemporalSettings = field(default_factory=TemporalSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        if not isinstance(self.vlm, (str, os.PathLike)) or not os.fspath(self.vlm):
            raise _fail("vlm", f"must be a hub id or a folder, got {self.vlm!r}", "set model.vlm")
        object.__setattr__(self, "vlm", os.fspath(self.vlm))
        if self.revision is not None and (not isinstance(self.revision, str) or not self.revision):
            raise _fail("revision", f"must be a branch, tag or commit, got {self.revision!r}", "set it or use null")
        if self.local_files_only is not None:
            _bool(self.local_files_only, "local_files_only")
        if self.dtype not in DTYPES:
            raise _fail("dtype", f"must be one of {DTYPES}, got {self.dtype!r}", "bf16 on a GPU (as upstream)")
        _int(self.max_image_tiles, "max_image_tiles", 1, 40)

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lora"]["target_modules"] = list(self.lora.target_modules)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sa2vaSTConfig:
        """The inverse of `to_dict`; unknown keys and bad values raise `ModelError` naming the key."""
        if not isinstance(data, Mapping):
            raise ModelError(f"a model config must be a mapping, got {type(data).__name__}", key=KEY_PREFIX)
        _check_keys(data, cls, "")
        parts: dict[str, Any] = dict(data)
        for name, sub in (("lora", LoraSettings), ("temporal", TemporalSettings), ("train", TrainSettings)):
            value = parts.get(name, {})
            if isinstance(value, sub):
                continue
            if not isinstance(value, Mapping):
                raise _fail(name, f"must be a mapping, got {value!r}", f"see {sub.__name__}")
            _check_keys(value, sub, name)
            parts[name] = sub(**value)
        return cls(**parts)

    @classmethod
    def from_pipeline_config(cls, config: Mapping[str, Any], *, clip_dim: int | None = None) -> Sa2vaSTConfig:
        """From a validated pipeline config (``config.yaml``): its ``model:`` section, CLIP width from ``clip:``.

        ``model.temporal.clip_dim: null`` (the default) takes the embedding width of the ``clip:``
        section's model (`clip_embedding_dim`); ``clip_dim`` given here overrides both.
        """
        section = dict(config.get("model") or {})
        section.pop("sam2", None)  # SAM2 is loaded by its own module (model.sam2)
        section.pop("sam2_revision", None)
        temporal = dict(section.get("temporal") or {})
        if clip_dim is None:
            clip_dim = temporal.get("clip_dim")
        if clip_dim is None:
            clip = config.get("clip") or {}
            clip_dim = clip_embedding_dim(clip.get("model", "ViT-H-14"), clip.get("pretrained"))
        temporal["clip_dim"] = clip_dim
        section["temporal"] = temporal
        return cls.from_dict(section)

    def with_changes(self, **changes: Any) -> Sa2vaSTConfig:
        return replace(self, **changes)

    # ------------------------------------------------------------------ where the weights come from

    def source(self) -> tuple[str, bool]:
        """(what ``from_pretrained`` gets, is it a local folder), see `resolve_source`."""
        return resolve_source(self.vlm, "model.vlm")

    def hub_kwargs(self) -> dict[str, Any]:
        """``revision`` and ``local_files_only`` for every ``from_pretrained`` of the VLM."""
        source, is_local = self.source()
        local = is_local if self.local_files_only is None else self.local_files_only
        return {"revision": None if is_local else self.revision, "local_files_only": local}


def resolve_source(id_or_folder: str | os.PathLike, key: str, example: str = DEFAULT_VLM) -> tuple[str, bool]:
    """``(source for from_pretrained, is_local)``: an existing folder (needs ``config.json``) or a hub id.

    Something spelled like a path (``./x``, ``/x``, ``~/x``, ``a/b/c``) that does not exist is an
    error, not a hub id: ``from_pretrained`` would otherwise try the network with it.
    """
    text = os.fspath(id_or_folder)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                "a local model folder needs config.json next to its weights",
                file=str(path),
                key=key,
                fix="download the whole hub repository into it (`hf download <id> --local-dir DIR`), "
                "or write the tiny preset with `python -m sa2va_st.testing tiny --out DIR`",
            )
        return str(path.resolve()), True
    # a hub id is `name` or `org/name`; anything else spelled like a path is meant as a folder
    spelled_as_path = text.startswith((".", "/", "~")) or text.count("/") > 1 or (os.sep != "/" and os.sep in text)
    if spelled_as_path or path.exists():
        raise ModelError(
            "model folder not found" if not path.exists() else "the model source is a file, not a folder",
            file=str(path),
            key=key,
            fix=f"point {key} at a folder holding config.json + weights, or give a hub id such as {example}",
        )
    return text, False


def clip_embedding_dim(model_name: str, pretrained: str | None = None) -> int:
    """The embedding width of an open_clip model, read from its config (no weights are loaded).

    A local open_clip folder (``open_clip_config.json``) is read directly; a name is looked up in
    open_clip's model configs (``ViT-H-14`` → 1024).
    """
    if pretrained and Path(pretrained).expanduser().is_dir():
        cfg_file = Path(pretrained).expanduser() / "open_clip_config.json"
        try:
            return int(json.loads(cfg_file.read_text())["model_cfg"]["embed_dim"])
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelError(
                f"cannot read the CLIP embedding width ({exc})",
                file=str(cfg_file),
                key="model.temporal.clip_dim",
                fix="set model.temporal.clip_dim to the width of the CLIP features",
            ) from exc
    import open_clip

    name = model_name.split(":", 1)[-1] if model_name.startswith("hf-hub:") else model_name
    cfg = open_clip.get_model_config(name)
    if not cfg or "embed_dim" not in cfg:
        raise ModelError(
            f"open_clip has no config for {model_name!r}, so the CLIP feature width is unknown",
            key="model.temporal.clip_dim",
            fix="set model.temporal.clip_dim to the width of the CLIP features",
        )
    return int(cfg["embed_dim"])
