"""Where each stage's outputs live: the folder names that several stages (and the rule files) agree on.

Everything is built here and nowhere else, as POSIX strings (so the same function builds a concrete
path or a Snakemake pattern: pass ``"{dataset}"`` as a name and get a pattern back):

    {data_root}/clip_features/{dataset}/{features_label}/fps{fps}/   <vid>.npy, index.parquet,
                                                                     shards/{shard}.parquet, identity.json
    special_jsons/{dataset}/{split}.json, special_jsons/report.json
    results/manifests/spatial/{dataset}/{split}.parquet, .../report.json
    results/manifests/temporal/{features_label}/fps{fps}/{dataset}/{split}.parquet, .../report.json
    results/logs/...                                                 one log per job

``fps{fps}`` writes the rate with ``:g`` (``fps10``, ``fps2.5``), so one fps has one folder name.
A relative root stays relative (to the folder Snakemake runs in); ``.`` joins as nothing.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

RESULTS = "results"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
MANIFESTS = f"{RESULTS}/manifests"
SPECIAL_JSONS = "special_jsons"
REPORT_JSON = "report.json"
FEATURES = "clip_features"
FEATURE_INDEX = "index.parquet"
FEATURE_IDENTITY = "identity.json"


def path_prefix(root: str | os.PathLike) -> str:
    """A root as written, POSIX ('' for '.')."""
    text = Path(root).as_posix()
    return "" if text == "." else text


def join(prefix: str | os.PathLike, *parts: str) -> str:
    """POSIX join that keeps a relative root relative and drops a '.' root."""
    prefix = path_prefix(prefix)
    return posixpath.join(prefix, *parts) if prefix else posixpath.join(*parts)


def fps_label(fps: float | str) -> str:
    """``fps10`` for 10 or 10.0, ``fps2.5`` for 2.5; a pattern (``"{fps}"``) is kept as it is."""
    return f"fps{fps}" if isinstance(fps, str) else f"fps{float(fps):g}"


# ----------------------------------------------------------------------------- CLIP features


def features_dir(data_root: str | os.PathLike, dataset: str, features_label: str, fps: float | str) -> str:
    """The folder of one feature set: one dataset, one CLIP model (`features_label`), one fps."""
    return join(data_root, FEATURES, dataset, features_label, fps_label(fps))


def feature_index(features: str) -> str:
    return join(features, FEATURE_INDEX)


def feature_shard_index(features: str, shard: int | str) -> str:
    return join(features, "shards", f"{shard}.parquet")


def feature_identity(features: str) -> str:
    return join(features, FEATURE_IDENTITY)


# ----------------------------------------------------------------------------- special_jsons and manifests


def special_jsons_report(special_jsons: str = SPECIAL_JSONS) -> str:
    return join(special_jsons, REPORT_JSON)


def spatial_manifests_dir(manifests: str | os.PathLike = MANIFESTS) -> str:
    return join(manifests, "spatial")


def temporal_manifests_dir(manifests: str | os.PathLike, features_label: str, fps: float | str) -> str:
    return join(manifests, "temporal", features_label, fps_label(fps))


def manifest(folder: str, dataset: str, split: str) -> str:
    """One manifest table of a spatial or temporal manifests folder."""
    return join(folder, dataset, f"{split}.parquet")


def manifests_report(folder: str) -> str:
    return join(folder, REPORT_JSON)


# ----------------------------------------------------------------------------- logs


def log_file(*parts: str) -> str:
    """``results/logs/<parts...>``: one log per job (the last part names the file)."""
    return join(LOGS, *parts)
