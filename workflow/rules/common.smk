# Path helpers and input functions shared by the rule files. The config is validated here, at
# parse time, so a wrong key fails before any job runs. Folder names come from sa2va_st.paths, the
# datasets from sa2va_st.catalog: nothing here re-derives them.
import json
import re
import shlex
import sys
from pathlib import Path

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from sa2va_st import catalog, devices, paths
from sa2va_st.config import validate_config
from sa2va_st.data.archives import ExtractLimits
from sa2va_st.evaluation.benchmarks import select_benchmarks
from sa2va_st.features.identity import features_label
from sa2va_st.training import launch as training_launch
from sa2va_st.training import settings as training_settings


validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

# One way to run a job's Python: the interpreter Snakemake runs in (the project's .venv or an
# activated `spatial` env), or, with `--sdm conda`, the `python` of envs/spatial.yaml, which
# Snakemake puts first on the job's PATH.
IN_CONDA_ENV = workflow.deployment_settings is not None and (
    DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
)
PYTHON = "python" if IN_CONDA_ENV else sys.executable
CONDA_ENV = "../../envs/spatial.yaml"
SCRIPTS = Path(workflow.basedir) / "scripts"

# GPUs (sa2va_st.devices): a job that uses one declares gpu=1 when this node has GPUs, and the
# node's GPU count becomes the global `gpu` resource unless --resources says otherwise; the job
# itself claims a free GPU. A CPU-only machine declares and registers nothing.
LOCAL_GPUS = devices.visible_gpu_count()
if LOCAL_GPUS and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", LOCAL_GPUS)
GPU_JOB = 1 if LOCAL_GPUS else 0

DATA_ROOT = config["data_root"]
DOWNLOAD_DIR = config["download_dir"]
HUB = config["sa2va_training"]
HUB_FILES = HUB["files"]
SOURCES = sorted(config["sources"])
FPS = config["fps"]

RECEIPT = f"{DOWNLOAD_DIR}/receipts/{{archive}}.json"
UNPACKED = f"{DATA_ROOT}/.unpacked/{{archive}}.json"
SOURCE_MARKER = f"{DATA_ROOT}/.sources/{{source}}.json"
INVENTORY = "results/data/inventory.json"
SPECIAL_JSONS_REPORT = paths.special_jsons_report()


wildcard_constraints:
    archive="|".join(re.escape(name) for name in HUB_FILES),
    source="|".join(re.escape(name) for name in SOURCES) or "(?!)",


def log_path(*parts):
    return paths.log_file(*parts)


def data_root_of(marker):
    """data_root from a marker path ({data_root}/.unpacked/x.json or {data_root}/.sources/x.json)."""
    return str(Path(marker).parent.parent)


def unpack_limits():
    """The unpack limits (config key `unpack`) as the options of scripts/unpack.py and scripts/fetch_source.py."""
    limits = ExtractLimits.from_config(config["unpack"])
    return (
        f"--max-members {limits.max_members} --max-total-bytes {limits.max_total_bytes}"
        f" --max-ratio {limits.max_ratio} --reserve-bytes {limits.reserve_bytes}"
    )


def source_spec(wildcards):
    return json.dumps(config["sources"][wildcards.source], sort_keys=True)


# ----------------------------------------------------------------------------- CLIP features
CLIP = config["clip"]
TEMPORAL_DATASETS = sorted(config["temporal_datasets"])
FEATURES_LABEL = features_label(CLIP["model"], CLIP["pretrained"])  # model + weights (a checkpoint's hash)
FEATURES = paths.features_dir(DATA_ROOT, "{dataset}", FEATURES_LABEL, FPS)
FEATURE_SHARD_INDEX = paths.feature_shard_index(FEATURES, "{shard}")
FEATURE_INDEX = paths.feature_index(FEATURES)
FEATURE_LOGS = f"clip_features/{{dataset}}/{FEATURES_LABEL}/{paths.fps_label(FPS)}"


def videos_source_marker(wildcards):
    source = config["temporal_datasets"][wildcards.dataset]["videos_source"]
    return SOURCE_MARKER.format(source=source)


def videos_folder(wildcards, input):
    """The dataset's videos, from the marker of the source that placed them."""
    marker = json.loads(Path(input.videos).read_text())
    return str(Path(data_root_of(input.videos)) / marker["dest"])


# ----------------------------------------------------------------------------- manifests
MANIFESTS = paths.MANIFESTS
SPATIAL_MANIFESTS_REPORT = paths.manifests_report(paths.spatial_manifests_dir(MANIFESTS))
TEMPORAL_MANIFESTS = paths.temporal_manifests_dir(MANIFESTS, FEATURES_LABEL, FPS)
TEMPORAL_MANIFESTS_REPORT = paths.manifests_report(TEMPORAL_MANIFESTS)


def temporal_video_markers(wildcards):
    return {
        name: SOURCE_MARKER.format(source=spec["videos_source"])
        for name, spec in sorted(config["temporal_datasets"].items())
    }


def temporal_folder_options(wildcards, input):
    """--videos and --features of scripts/build_manifests.py: each temporal dataset's folders."""
    videos = []
    for name in TEMPORAL_DATASETS:
        marker = input[f"videos_{name}"]
        dest = json.loads(Path(marker).read_text())["dest"]
        videos.append(f"{name}={Path(data_root_of(marker)) / dest}")
    features = [f"{name}={Path(index).parent}" for name, index in zip(TEMPORAL_DATASETS, input.features)]
    return (
        " ".join(["--videos", *map(shlex.quote, videos), "--features", *map(shlex.quote, features)]) if videos else ""
    )


# ----------------------------------------------------------------------------- train
WORK_DIR = config["work_dir"]
RUN = paths.run_name(WORK_DIR)
TRAINED_MODEL = paths.trained_model(RUN)
TRAIN_METRICS = paths.train_metrics(RUN)
TRAINING_ANSWERS = paths.training_answers(RUN)
RANK_LOGS = log_path("train", RUN, "ranks")
TRAINING = config["training"]
DEEPSPEED_JSON = Path(workflow.basedir) / "workflow" / "deepspeed" / f"{TRAINING['deepspeed']}.json"
# one process per GPU this node shows (CUDA_VISIBLE_DEVICES narrows it), unless training.processes says
TRAIN_PROCESSES = TRAINING["processes"] or LOCAL_GPUS or 1
TRAIN_GPUS = TRAIN_PROCESSES if LOCAL_GPUS else 0
TRAIN_MEM_MB = 64000 * max(1, TRAIN_GPUS)
TRAIN_RUNTIME_MIN = 72 * 60
# torchrun beside the interpreter (the .venv's), or the conda env's on its PATH
TORCHRUN_EXE = "torchrun" if IN_CONDA_ENV else str(Path(sys.executable).with_name("torchrun"))


def train_launcher(wildcards, resources):
    """torchrun on this node, or srun + torchrun on every node of a SLURM allocation (resources.mpi)."""
    return training_launch.launch_command(TORCHRUN_EXE, TRAIN_PROCESSES, RANK_LOGS, RUN, resources)

# every value the run reads: a change in any of them re-trains, a re-run with none changed does nothing
CLIP_IDENTITY = {"model": CLIP["model"], "pretrained": CLIP["pretrained"]}
TRAIN_SETTINGS = json.dumps(
    {
        "training": TRAINING,
        "model": config["model"],
        "clip": CLIP_IDENTITY,
    },
    sort_keys=True,
)
START_OVER_FLAG = "--start-over" if config["start_over"] else ""


def temporal_manifests_of(wildcards, input):
    """The temporal manifests folder, from its report (no temporal datasets: a folder that holds none)."""
    return str(Path(input.temporal).parent) if TEMPORAL_DATASETS else TEMPORAL_MANIFESTS


# ----------------------------------------------------------------------------- evaluate
EVALUATION = config["evaluation"]
UNTRAINED_MODEL = paths.untrained_model(RUN)
SCORED_MODELS = {"trained": TRAINED_MODEL, "untrained": UNTRAINED_MODEL}
# what the untrained model is made of (not the recipe: changing the learning rate keeps it)
UNTRAINED_SETTINGS = json.dumps(
    {"training": {"seed": TRAINING["seed"]}, "model": config["model"], "clip": CLIP_IDENTITY},
    sort_keys=True,
)
MIX_DATASETS = [
    name
    for name in training_settings.TrainingSettings.from_config(TRAINING).repeats
    if catalog.dataset(name).task != catalog.TEMPORAL_GROUNDING or name in TEMPORAL_DATASETS
]
# splits a server scores (MeViS valid, Ref-YouTube-VOS valid) are not scored here: their archive of
# SAM2 masks is written instead, so only where evaluation.masks is on
SELECTED_BENCHMARKS = select_benchmarks(EVALUATION["benchmarks"], MIX_DATASETS)
BENCHMARKS = [b for b in SELECTED_BENCHMARKS if b.scored_here]
SERVER_BENCHMARKS = [b for b in SELECTED_BENCHMARKS if not b.scored_here] if EVALUATION["masks"] else []
EVAL_SHARDS = EVALUATION["shards"] or LOCAL_GPUS or 1
EVAL_VIDEO_FRAMES = EVALUATION["video_frames"] or TRAINING["video_frames"]
# SAM2 for the image answers' masks (cIoU / gIoU): the flags of `evaluate.py predict`, or none
EVAL_MASK_ARGS = (
    f"--sam2 {shlex.quote(str(config['model']['sam2']))} --data-root {shlex.quote(DATA_ROOT)}"
    + (f" --sam2-revision {shlex.quote(config['model']['sam2_revision'])}" if config["model"].get("sam2_revision") else "")
    if EVALUATION["masks"]
    else ""
)
SPLIT_PREDICTIONS = paths.split_predictions("{model}", "{dataset}", "{split}", "{shard}", EVAL_SHARDS)
SPLIT_METRICS = paths.split_metrics("{model}", "{dataset}", "{split}")
SPLIT_SUBMISSION = paths.split_submission("{model}", "{dataset}", "{split}")


# rule-level in evaluate.smk (a global `dataset` constraint of features.smk names temporal datasets only)
EVAL_WILDCARDS = {
    "model": "|".join(SCORED_MODELS),
    "dataset": "|".join(re.escape(name) for name in catalog.NAMES),
    "split": "[A-Za-z_]+",
    "shard": r"\d+",
}


def benchmark_manifests(wildcards):
    """The manifests report of the split's task (its folder holds the split's table)."""
    if catalog.dataset(wildcards.dataset).task == catalog.TEMPORAL_GROUNDING:
        return TEMPORAL_MANIFESTS_REPORT
    return SPATIAL_MANIFESTS_REPORT


def evaluation_metrics(models=None):
    """Every metrics file of `evaluate`: each scored model on each benchmark split."""
    return [
        paths.split_metrics(model, b.dataset, b.split)
        for model in (models or EVALUATION["models"])
        for b in BENCHMARKS
    ]


def evaluation_submissions(models=None):
    """Every submission archive of `evaluate`: each scored model on each split a server scores."""
    return [
        paths.split_submission(model, b.dataset, b.split)
        for model in (models or EVALUATION["models"])
        for b in SERVER_BENCHMARKS
    ]


# ----------------------------------------------------------------------------- report
REPORT_PAGE = paths.REPORT_PAGE
# the config as validated (what the run used), for the provenance section
REPORT_SETTINGS = json.dumps(config, sort_keys=True, default=str)
