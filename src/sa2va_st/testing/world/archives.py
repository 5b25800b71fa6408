"""Byte-reproducible files: zips, split zips, JSON, pickles and HF-style .gitattributes."""

from __future__ import annotations

import fnmatch
import io
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import PurePosixPath

# A fixed timestamp: zip headers otherwise carry the wall clock.
ZIP_DATE_TIME = (2024, 1, 1, 0, 0, 0)
ZIP_COMPRESSLEVEL = 6
UNIX_CREATE_SYSTEM = 3  # ZipInfo's default depends on the platform that wrote it
FILE_MODE = 0o100644
DIR_MODE = 0o040755
MS_DOS_DIRECTORY_FLAG = 0x10

# Media does not shrink when deflated; storing it keeps generation fast.
STORED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".mp4", ".tar", ".bin"})

PICKLE_PROTOCOL = 4

# The Hugging Face default .gitattributes for a new dataset repository, plus the
# patterns Sa2VA-Training adds for split archives and pickles.
HF_DEFAULT_LFS_PATTERNS: tuple[str, ...] = (
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.lz4",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
    "*.mp3",
    "*.ogg",
    "*.wav",
    "*.mp4",
    "*.webm",
    "*.jpg",
    "*.jpeg",
    "*.png",
    "*.gif",
    "*.webp",
)
SPLIT_ARCHIVE_LFS_PATTERNS: tuple[str, ...] = ("*.z[0-9][0-9]", "*.p")


def gitattributes_text(patterns: tuple[str, ...]) -> str:
    """One 'PATTERN filter=lfs diff=lfs merge=lfs -text' line per pattern."""
    return "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in patterns)


def is_lfs_path(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether git-lfs would store this repository path (basename patterns, as git matches them)."""
    name = PurePosixPath(path).name
    return any(fnmatch.fnmatchcase(name, p) for p in patterns if "/" not in p)


def json_bytes(value: object, indent: int | None = None) -> bytes:
    """UTF-8 JSON; key order is the (deterministic) insertion order."""
    return (json.dumps(value, indent=indent, ensure_ascii=False) + ("\n" if indent else "")).encode("utf-8")


def pickle_bytes(value: object) -> bytes:
    """Protocol-4 pickle; callers pass builtin containers and scalars only."""
    return pickle.dumps(value, protocol=PICKLE_PROTOCOL)


def parent_directories(name: str) -> list[str]:
    """'a/b/c.jpg' -> ['a/', 'a/b/'] (zip directory entries, as `zip -r` writes them)."""
    parts = name.split("/")[:-1]
    return ["/".join(parts[: k + 1]) + "/" for k in range(len(parts))]


def zip_bytes(entries: Mapping[str, bytes]) -> bytes:
    """A zip of the entries plus their directory entries, sorted by name, with fixed metadata."""
    directories = {d for name in entries for d in parent_directories(name)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(directories | set(entries)):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.create_system = UNIX_CREATE_SYSTEM
            if name.endswith("/"):
                info.external_attr = (DIR_MODE << 16) | MS_DOS_DIRECTORY_FLAG
                info.compress_type = zipfile.ZIP_STORED
                archive.writestr(info, b"")
                continue
            info.external_attr = FILE_MODE << 16
            stored = PurePosixPath(name).suffix.lower() in STORED_SUFFIXES
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=None if stored else ZIP_COMPRESSLEVEL)
    return buffer.getvalue()


def split_into_parts(data: bytes, parts: int) -> list[bytes]:
    """Byte-split into `parts` nearly equal pieces whose concatenation is `data`."""
    if parts < 1 or len(data) < parts:
        raise ValueError(f"cannot split {len(data)} bytes into {parts} non-empty parts")
    bounds = [len(data) * k // parts for k in range(parts + 1)]
    return [data[bounds[k] : bounds[k + 1]] for k in range(parts)]


def split_archive_names(stem: str, parts: int) -> list[str]:
    """Names in concatenation order: stem.z01, stem.z02, ..., stem.zip (the last part)."""
    return [f"{stem}.z{k:02d}" for k in range(1, parts)] + [f"{stem}.zip"]
