"""What made a feature set: its identity, recorded beside the features, and the folder name derived from it.

Definitions:

- **Weights id.** An open_clip tag (``laion2b_s32b_b79k``) stands for itself: open_clip pins the file
  a tag downloads. A local checkpoint stands for its bytes: ``sha256:<hex>`` of the file, or of a
  folder (the sha256 of the list of its files' relative names and sha256s). Hashes are cached by
  (real path, size, mtime) in ``$SA2VA_ST_CACHE`` (default ``~/.cache/sa2va_st``), so a 4 GB
  checkpoint is read once, not at every Snakemake start.
- **Label** (the feature folder's name, `features_label`): ``{model}_{tag}`` for a tag;
  ``{model}_{name}-{sha[:12]}`` for a local checkpoint (``name``: the file's stem or the folder's
  name). Two different checkpoints therefore never share a folder, whatever their file names.
- **Identity** (`FeatureIdentity`, ``identity.json`` in the feature folder): model, weights id,
  preprocess, fps and the version of the frame rule (`sa2va_st.features.timing.RULE_VERSION`).
  The first shard job of a folder writes it; every later job compares its own and refuses a
  mismatch, naming both (a folder made by other weights, another preprocess or another frame rule
  is never extended with features that do not match it). Where the weights came from
  (``weights_source``) is recorded but not compared: a checkpoint may move.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, sha256_file
from ..errors import FeatureError
from . import timing

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
CACHE_ENV = "SA2VA_ST_CACHE"
IDENTITY_FORMAT = 1


def cache_file() -> Path:
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sa2va_st")
    return root / "weights_sha256.json"


def is_local_weights(pretrained: str) -> bool:
    """A path, not an open_clip tag: it exists, or it is spelled like a path or a checkpoint file."""
    return (
        os.path.exists(pretrained)
        or os.sep in pretrained
        or pretrained.startswith((".", "~"))
        or pretrained.endswith(CHECKPOINT_SUFFIXES)
    )


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _folder_sha256(folder: Path, file_hash) -> str:
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        lines.append(f"{path.relative_to(folder).as_posix()} {file_hash(path)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint file or folder (see the module docstring), through the cache."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FeatureError("checkpoint not found", file=str(path), key="clip.pretrained", fix="check the path")
    store = cache_file()
    try:
        cache = json.loads(store.read_text())
    except (OSError, ValueError):
        cache = {}
    changed = False

    def file_hash(file: Path) -> str:
        nonlocal changed
        key = _stat_key(file)
        if key not in cache:
            cache[key] = sha256_file(file)
            changed = True
        return cache[key]

    digest = _folder_sha256(path, file_hash) if path.is_dir() else file_hash(path)
    if changed:
        try:
            atomic_write_json(store, cache, clean_stale=False)  # shared by every job hashing at once
        except OSError:  # a read-only home only costs a re-hash next time
            pass
    return digest


def weights_id(pretrained: str) -> str:
    """The tag itself, or ``sha256:<hex>`` of a local checkpoint."""
    return f"sha256:{checkpoint_sha256(pretrained)}" if is_local_weights(pretrained) else pretrained


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "x"


def features_label(model: str, pretrained: str) -> str:
    """The folder name of the feature set `model` + `pretrained` make (see the module docstring)."""
    if not is_local_weights(pretrained):
        return _safe(f"{model}_{pretrained}")
    path = Path(pretrained).expanduser()
    name = path.name if path.is_dir() else path.stem
    return _safe(f"{model}_{name}") + f"-{checkpoint_sha256(path)[:12]}"


@dataclass(frozen=True)
class FeatureIdentity:
    """What a feature folder's features were made with; equal identities mean interchangeable features."""

    model: str
    weights: str  # weights_id
    preprocess: dict[str, Any]  # image_size, mean, std, interpolation, resize_mode
    fps: float
    frame_rule: int
    weights_source: str = ""  # as configured; recorded, not compared

    def compared(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("weights_source")
        return json.loads(json.dumps(data))  # tuples as lists, as they come back from the file

    @classmethod
    def of(cls, model: str, pretrained: str, preprocess: Any, fps: float) -> FeatureIdentity:
        cfg = asdict(preprocess) if not isinstance(preprocess, dict) else dict(preprocess)
        return cls(model, weights_id(pretrained), cfg, float(fps), timing.RULE_VERSION, pretrained)


def check_identity(
    features_dir: str | os.PathLike, identity: FeatureIdentity, identity_file: str | os.PathLike
) -> None:
    """Record `identity` in `identity_file` (the folder's ``identity.json``) or refuse a folder made otherwise."""
    path = Path(identity_file)
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise FeatureError(
                f"the feature folder's identity file is unreadable ({error})",
                file=str(path),
                fix="delete the feature folder and extract it again",
            ) from None
        theirs = {k: v for k, v in recorded.items() if k not in ("format", "weights_source")}
        if theirs != identity.compared():
            differ = sorted(
                k for k in set(theirs) | set(identity.compared()) if theirs.get(k) != identity.compared().get(k)
            )
            raise FeatureError(
                f"{features_dir} holds features of another model set-up (differs in {', '.join(differ)}): "
                f"the folder has {json.dumps({k: theirs.get(k) for k in differ})} "
                f"(from {recorded.get('weights_source', '?')}), this job would write "
                f"{json.dumps({k: identity.compared().get(k) for k in differ})} (from {identity.weights_source})",
                file=str(path),
                key="clip.pretrained",
                fix="point clip.pretrained at the checkpoint that made this folder, or delete the folder to re-extract",
            )
        return
    # every shard of the folder may get here at once: none may sweep another's temporary (the last rename
    # wins, and all of them write the same identity)
    atomic_write_json(path, {"format": IDENTITY_FORMAT, **asdict(identity)}, clean_stale=False)
