"""Saving and loading: trainable weights (resume / share a run) and an inference export.

**Trainable checkpoint** (`save_trainable` / `load_trainable`), a folder of two files:

- ``trainable.safetensors``: every parameter that trains (LoRA, embeddings, lm_head, projectors),
  named as in ``Sa2vaSTModel.named_parameters()``;
- ``sa2va_st_model.json``: how to rebuild the rest: the `Sa2vaSTConfig`, the base model (id or
  folder, revision, and the commit a hub id resolved to, which reloading pins), the ids of the
  added tokens, the vocabulary size and the shape of every saved tensor.

Loading rebuilds the base model through `Sa2vaSTModel.from_config` (the same ``from_pretrained``
path), checks that the tokens got the same ids and that the file holds exactly the parameters the
config makes trainable, then copies them in.

**Export** (`export` / `load_exported`): a folder that loads for inference without training code::

    vlm/                            InternVL save_pretrained (LoRA merged in, or the base weights
                                    with trained embeddings/projector) + processor and tokenizer
                                    with the special tokens
    adapter/                        peft adapter (only when merge_lora=False)
    temporal_projector.safetensors
    sa2va_st_export.json            the config (vlm: "vlm"), tokens, merged or not

Weights are only ever written as safetensors; nothing is pickled, and nothing here calls
``torch.load`` (a ``.bin`` checkpoint of a base model is read by transformers, with
``weights_only=True``). Folders are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ..atomic import staging_dir
from ..errors import ModelError
from .config import Sa2vaSTConfig
from .modeling import Sa2vaSTModel, TemporalProjector, effective_dtype, quiet_peft
from .prompts import MODEL_TOKENS

FORMAT_VERSION = 1
TRAINABLE_WEIGHTS = "trainable.safetensors"
TRAINABLE_META = "sa2va_st_model.json"
EXPORT_META = "sa2va_st_export.json"
EXPORT_VLM = "vlm"
EXPORT_ADAPTER = "adapter"
EXPORT_TEMPORAL = "temporal_projector.safetensors"
_SNAPSHOT = re.compile(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]")


def resolved_commit(config: Sa2vaSTConfig) -> str | None:
    """The commit a hub id resolved to (from the cached snapshot path); None for a local folder."""
    source, is_local = config.source()
    if is_local:
        return None
    from transformers.utils.hub import cached_file

    try:
        path = cached_file(source, "config.json", **config.hub_kwargs())
    except OSError:
        return None
    match = _SNAPSHOT.search(os.fspath(path)) if path else None
    return match.group(1) if match else None


def _token_ids(model: Sa2vaSTModel) -> dict[str, int]:
    return {t: int(model.tokenizer.convert_tokens_to_ids(t)) for t in MODEL_TOKENS}


def _replace_folder(staged: Path, out_dir: Path) -> Path:
    """Move a complete staged folder to ``out_dir``, replacing what is there (old kept until the move)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
    os.replace(staged, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{what} not found", file=str(path), fix="pass a folder written by sa2va_st.model.checkpoint"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{what} is unreadable: {exc}", file=str(path), fix="write it again") from exc
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{what} has format_version {data.get('format_version')!r}, this code reads {FORMAT_VERSION}",
            file=str(path),
            key="format_version",
            fix="use the sa2va_st version that wrote it",
        )
    return data


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    import safetensors.torch

    if not path.is_file():
        raise ModelError("weights file not found", file=str(path), fix="save the checkpoint again")
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as error:  # safetensors raises its own error type for a truncated or foreign file
        raise ModelError(
            f"the weights file cannot be read ({type(error).__name__}: {error})",
            file=str(path),
            fix="the file is truncated or not a safetensors file: save or export the model again",
        ) from None


def _check_tokens(model: Sa2vaSTModel, saved: dict[str, int], file: Path) -> None:
    ours = _token_ids(model)
    if ours != {k: int(v) for k, v in saved.items()}:
        diff = {t: (saved.get(t), ours.get(t)) for t in MODEL_TOKENS if saved.get(t) != ours.get(t)}
        raise ModelError(
            f"the special tokens got other ids than in the checkpoint (saved, now): {diff}",
            file=str(file),
            key="tokens",
            fix="load with the base model (and revision) the checkpoint was trained from",
        )


# ---------------------------------------------------------------------------------- trainable


def save_trainable(
    model: Sa2vaSTModel,
    out_dir: str | os.PathLike,
    extra: dict[str, Any] | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the trainable weights + ``sa2va_st_model.json`` to ``out_dir`` (replaced atomically).

    ``state`` gives the weights when the model's own tensors are not whole (a trainer's fp32 master
    copies, or parameters sharded by ZeRO-3); by default they are read from the model.
    """
    import safetensors.torch

    out_dir = Path(out_dir)
    if state is None:
        state = {name: p.detach() for name, p in model.trainable_parameters().items()}
    state = {name: t.detach().to("cpu").contiguous() for name, t in state.items()}
    if not state:
        raise ModelError(
            "nothing in the model is trainable: nothing to save",
            key="model.train",
            fix="export the model instead (checkpoint.export)",
        )
    config = model.config
    meta = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "base": {"vlm": config.vlm, "revision": config.revision, "commit": resolved_commit(config)},
        "tokens": _token_ids(model),
        "vocab_size": len(model.tokenizer),
        "parameters": {
            name: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for name, t in state.items()
        },
        "counts": model.parameter_counts(),
        "extra": extra or {},
    }
    with staging_dir(out_dir.parent, out_dir.name) as stage:
        folder = stage / "checkpoint"
        folder.mkdir()
        safetensors.torch.save_file(state, str(folder / TRAINABLE_WEIGHTS), metadata={"format": "pt"})
        (folder / TRAINABLE_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return _replace_folder(folder, out_dir)


def load_trainable(
    folder: str | os.PathLike, *, vlm: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> Sa2vaSTModel:
    """Rebuild the model of a `save_trainable` folder and load its weights (in eval mode).

    ``vlm`` overrides the base model's location (the same checkpoint moved to a local folder).
    A hub id is loaded at the commit it resolved to when saved (pinned), if that was recorded.
    """
    folder = Path(folder)
    meta = _read_json(folder / TRAINABLE_META, "checkpoint description")
    config = Sa2vaSTConfig.from_dict(meta["config"])
    if vlm is not None:
        config = config.with_changes(vlm=os.fspath(vlm))
    elif meta.get("base", {}).get("commit") and not config.source()[1]:
        config = config.with_changes(revision=meta["base"]["commit"])
    model = Sa2vaSTModel.from_config(config, device=device)
    _check_tokens(model, meta["tokens"], folder / TRAINABLE_META)
    state = _load_safetensors(folder / TRAINABLE_WEIGHTS)
    params = dict(model.named_parameters())
    expected = model.expected_trainable_names()
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelError(
            f"the checkpoint's weights do not match what the config trains: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}",
            file=str(folder / TRAINABLE_WEIGHTS),
            key=(missing or unexpected)[0],
            fix="load it with the config it was saved with (sa2va_st_model.json), unchanged",
        )
    with torch.no_grad():
        for name, tensor in state.items():
            if tuple(tensor.shape) != tuple(params[name].shape):
                raise ModelError(
                    f"{name} has shape {tuple(tensor.shape)} in the checkpoint, {tuple(params[name].shape)} in the model",
                    file=str(folder / TRAINABLE_WEIGHTS),
                    key=name,
                    fix="load with the base model the checkpoint was trained from",
                )
            params[name].copy_(tensor.to(params[name].dtype))
    return model.eval()  # like a loaded export; a trainer calls .train()


# ---------------------------------------------------------------------------------- export


def export(model: Sa2vaSTModel, out_dir: str | os.PathLike, *, merge_lora: bool = True) -> Path:
    """Write an inference folder (see the module docstring); the live model is left unchanged.

    The VLM is copied before LoRA is merged or removed (``merge_and_unload`` works in place), so
    exporting needs memory for a second copy of the VLM.
    """
    import safetensors.torch

    out_dir = Path(out_dir)
    has_lora = hasattr(model.vlm, "get_base_model")
    with staging_dir(out_dir.parent, out_dir.name) as stage:
        folder = stage / "export"
        folder.mkdir()
        vlm = copy.deepcopy(model.vlm)
        if has_lora:
            if not merge_lora:
                # adapter weights + adapter_config.json; the (resized, trained) embeddings are in vlm/
                model.vlm.save_pretrained(folder / EXPORT_ADAPTER, save_embedding_layers=False)
            vlm = vlm.merge_and_unload() if merge_lora else vlm.unload()
        vlm.save_pretrained(folder / EXPORT_VLM)
        del vlm
        model.hf_processor.save_pretrained(folder / EXPORT_VLM)
        projector = {k: v.detach().to("cpu").contiguous() for k, v in model.temporal_projector.state_dict().items()}
        safetensors.torch.save_file(projector, str(folder / EXPORT_TEMPORAL), metadata={"format": "pt"})
        meta = {
            "format_version": FORMAT_VERSION,
            "config": model.config.with_changes(vlm=EXPORT_VLM, revision=None).to_dict(),
            "base": {
                "vlm": model.config.vlm,
                "revision": model.config.revision,
                "commit": resolved_commit(model.config),
            },
            "merged_lora": bool(has_lora and merge_lora),
            "adapter": bool(has_lora and not merge_lora),
            "tokens": _token_ids(model),
        }
        (folder / EXPORT_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return _replace_folder(folder, out_dir)


def load_exported(folder: str | os.PathLike, *, device: str | torch.device = "cpu") -> Sa2vaSTModel:
    """An `export` folder → a frozen, eval-mode `Sa2vaSTModel` (nothing goes online)."""
    from transformers import AutoProcessor, InternVLForConditionalGeneration

    folder = Path(folder)
    meta = _read_json(folder / EXPORT_META, "export description")
    config = Sa2vaSTConfig.from_dict(meta["config"]).with_changes(vlm=str(folder / EXPORT_VLM), local_files_only=True)
    dtype = effective_dtype(config, device)
    vlm_dir = folder / EXPORT_VLM
    missing = [name for name in ("config.json",) if not (vlm_dir / name).is_file()]
    if not any(vlm_dir.glob("*.safetensors")):
        missing.append("*.safetensors (the weights)")
    if missing:  # checked here: transformers would take a folder without them for a hub id and go online
        raise ModelError(
            f"the exported model's {EXPORT_VLM}/ has no {', '.join(missing)}",
            file=str(vlm_dir),
            fix="the folder is incomplete: run the rule that exported it again (train, or untrained_model)",
        )
    try:
        processor = AutoProcessor.from_pretrained(folder / EXPORT_VLM, local_files_only=True)
        vlm = InternVLForConditionalGeneration.from_pretrained(folder / EXPORT_VLM, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:  # what transformers raises for a missing or broken file
        raise ModelError(
            f"the exported model's {EXPORT_VLM}/ cannot be loaded ({type(error).__name__}: {str(error)[:300]})",
            file=str(folder / EXPORT_VLM),
            fix="the folder is incomplete or damaged: run the rule that exported it again (train, or untrained_model)",
        ) from None
    if meta.get("adapter"):
        from peft import PeftModel

        with quiet_peft():
            vlm = PeftModel.from_pretrained(vlm, folder / EXPORT_ADAPTER, is_trainable=False)
    hidden = (
        vlm.get_base_model().config.text_config.hidden_size
        if meta.get("adapter")
        else vlm.config.text_config.hidden_size
    )
    projector = TemporalProjector(config.temporal.clip_dim, hidden, config.temporal.dropout)
    projector.load_state_dict(_load_safetensors(folder / EXPORT_TEMPORAL))
    model = Sa2vaSTModel(config, vlm, processor, temporal_projector=projector)
    _check_tokens(model, meta["tokens"], folder / EXPORT_META)
    model.requires_grad_(False)
    return model.to(device).eval()
