"""The spatial-temporal grounding model: an HF-native InternVL + LoRA + temporal projector (+ SAM2 for masks).

One concept per module:

- `config`      `Sa2vaSTConfig` (from the pipeline config's ``model:`` section; JSON in checkpoints)
- `prompts`     `Sa2vaSTProcessor`: dataset items → chat prompts, labels on answers, padded batches;
                the added tokens (`MODEL_TOKENS`, placeholder ``<TEMPORAL_CONTEXT>``)
- `modeling`    `Sa2vaSTModel` (forward → loss and per-task losses; greedy generation) and
                `TemporalProjector`
- `inference`   `ground_boxes`, `ground_window` and their batched versions
- `checkpoint`  trainable-weight checkpoints (safetensors + JSON) and the inference export
- `sam2`        SAM2 as a frozen box-prompted segmenter

Importing this package is cheap: transformers, peft and open_clip load with the modules that
need them (attribute access below imports on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Sa2vaSTConfig": "config",
    "LoraSettings": "config",
    "TemporalSettings": "config",
    "TrainSettings": "config",
    "Sa2vaSTProcessor": "prompts",
    "MODEL_TOKENS": "prompts",
    "TEMPORAL_CONTEXT_TOKEN": "prompts",
    "Sa2vaSTModel": "modeling",
    "Sa2vaSTOutput": "modeling",
    "TemporalProjector": "modeling",
    "ground_boxes": "inference",
    "ground_boxes_batch": "inference",
    "ground_window": "inference",
    "ground_window_batch": "inference",
    "save_trainable": "checkpoint",
    "load_trainable": "checkpoint",
    "export": "checkpoint",
    "load_exported": "checkpoint",
    "load_sam2": "sam2",
    "Sam2Segmenter": "sam2",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
