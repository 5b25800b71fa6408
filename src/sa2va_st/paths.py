"""Where each stage's outputs live: the folder names that several stages (and the rule files) agree on.

Everything is built here and nowhere else, as POSIX strings (so the same function builds a concrete
path or a Snakemake pattern: pass ``"{dataset}"`` as a name and get a pattern back):

    {data_root}/clip_features/{dataset}/{features_label}/fps{fps}/   <vid>.npy, index.parquet,
                                                                     shards/{shard}.parquet, identity.json
    special_jsons/{dataset}/{split}.json, special_jsons/report.json
    results/manifests/spatial/{dataset}/{split}.parquet, .../report.json
    results/manifests/temporal/{features_label}/fps{fps}/{dataset}/{split}.parquet, .../report.json
    results/train/{run}/model/, metrics.jsonl, training_answers.json  a run's declared outputs
    {work_dir}/checkpoints/step_{step:08d}/, metrics.jsonl, tensorboard/  the live run (undeclared)
    results/logs/...                                                 one log per job

A run is named by its work dir's last component (``work_dir: spatial_temporal_4b`` → run
``spatial_temporal_4b``), so two work dirs never share results.

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
TRAIN = f"{RESULTS}/train"
CHECKPOINTS = "checkpoints"
METRICS = f"{RESULTS}/metrics"
SUBMISSIONS = f"{RESULTS}/submissions"
REPORT_PAGE = f"{RESULTS}/report/index.html"


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


# ----------------------------------------------------------------------------- training


def run_name(work_dir: str | os.PathLike) -> str:
    """The run a work dir holds: its last component."""
    name = Path(work_dir).name
    if not name or name in (".", ".."):
        raise ValueError(f"work_dir {os.fspath(work_dir)!r} has no last component to name the run by")
    return name


def train_dir(run: str) -> str:
    return join(TRAIN, run)


def trained_model(run: str) -> str:
    """The exported model of a run (`sa2va_st.model.checkpoint.export`)."""
    return join(train_dir(run), "model")


def train_metrics(run: str) -> str:
    return join(train_dir(run), "metrics.jsonl")


def training_answers(run: str) -> str:
    return join(train_dir(run), "training_answers.json")


def checkpoints_dir(work_dir: str | os.PathLike) -> str:
    return join(work_dir, CHECKPOINTS)


def live_metrics(work_dir: str | os.PathLike) -> str:
    """The metrics a run appends to as it goes (copied to `train_metrics` when it ends)."""
    return join(work_dir, "metrics.jsonl")


def tensorboard_dir(work_dir: str | os.PathLike) -> str:
    return join(work_dir, "tensorboard")


def untrained_model(run: str) -> str:
    """The run's starting point (its seed's fresh trainable parts on the base model), exported like
    the trained one so that both are scored by one code path."""
    return join(train_dir(run), "untrained_model")


# ----------------------------------------------------------------------------- evaluation


def benchmark_name(dataset: str, split: str) -> str:
    """``<dataset>_<split>``: how metric and prediction files name a benchmark split."""
    return f"{dataset}_{split}"


def split_metrics(model: str, dataset: str, split: str) -> str:
    """``results/metrics/<model>/<dataset>_<split>.json``; ``model`` names what was scored."""
    return join(METRICS, model, f"{benchmark_name(dataset, split)}.json")


def split_predictions(model: str, dataset: str, split: str, shard: int | str, num_shards: int | str) -> str:
    """One shard's prediction records, next to the metrics they are scored into."""
    return join(METRICS, model, "predictions", f"{benchmark_name(dataset, split)}.{shard}-of-{num_shards}.jsonl")


def split_submission(model: str, dataset: str, split: str) -> str:
    """``results/submissions/<model>/<dataset>_<split>.zip``: the archive a split's server scores."""
    return join(SUBMISSIONS, model, f"{benchmark_name(dataset, split)}.zip")


# ----------------------------------------------------------------------------- logs


def log_file(*parts: str) -> str:
    """``results/logs/<parts...>``: one log per job (the last part names the file)."""
    return join(LOGS, *parts)
