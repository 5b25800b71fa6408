# Path helpers and input functions shared by the rule files. The config is validated here, at
# parse time, so a wrong key fails before any job runs.
import json
import re
import shlex
import sys
from pathlib import Path

from sa2va_st.config import validate_config


validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

PYTHON = sys.executable  # the interpreter snakemake runs in: the project's environment
SCRIPTS = Path(workflow.basedir) / "scripts"

DATA_ROOT = config["data_root"]
DOWNLOAD_DIR = config["download_dir"]
HUB = config["sa2va_training"]
HUB_FILES = HUB["files"]
SOURCES = sorted(config["sources"])
LOGS = "results/logs"

RECEIPT = f"{DOWNLOAD_DIR}/receipts/{{archive}}.json"
UNPACKED = f"{DATA_ROOT}/.unpacked/{{archive}}.json"
SOURCE_MARKER = f"{DATA_ROOT}/.sources/{{source}}.json"
INVENTORY = "results/data/inventory.json"
SPECIAL_JSONS_REPORT = "special_jsons/report.json"


wildcard_constraints:
    archive="|".join(re.escape(name) for name in HUB_FILES),
    source="|".join(re.escape(name) for name in SOURCES) or "(?!)",


def data_root_of(marker):
    """data_root from a marker path ({data_root}/.unpacked/x.json or {data_root}/.sources/x.json)."""
    return str(Path(marker).parent.parent)


def gigabytes(key):
    return int(float(config["unpack"].get(key, 1)) * (1 << 30))


def unpack_limits():
    """The unpack limits as command-line options of scripts/unpack.py and scripts/fetch_source.py."""
    unpack = config["unpack"]
    return (
        f"--max-members {unpack.get('max_members', 5_000_000)} "
        f"--max-total-bytes {gigabytes('max_total_gb')} "
        f"--reserve-bytes {int(float(unpack.get('reserve_gb', 1)) * (1 << 30))}"
    )


def source_spec(wildcards):
    return json.dumps(config["sources"][wildcards.source], sort_keys=True)


# ----------------------------------------------------------------------------- CLIP features
CLIP = config["clip"]
TEMPORAL_DATASETS = sorted(config["temporal_datasets"])


def clip_label():
    """The folder name of a feature set: model and weights, so different models never mix."""
    weights = Path(CLIP["pretrained"]).name  # a tag stays itself; a local path gives its last part
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", f"{CLIP['model']}_{weights}")


FEATURES = f"{DATA_ROOT}/clip_features/{{dataset}}/{clip_label()}/fps{config['fps']:g}"
FEATURE_SHARD_INDEX = f"{FEATURES}/shards/{{shard}}.parquet"
FEATURE_INDEX = f"{FEATURES}/index.parquet"


def videos_source_marker(wildcards):
    source = config["temporal_datasets"][wildcards.dataset]["videos_source"]
    return SOURCE_MARKER.format(source=source)


def videos_folder(wildcards, input):
    """The dataset's videos, from the marker of the source that placed them."""
    marker = json.loads(Path(input.videos).read_text())
    return str(Path(data_root_of(input.videos)) / marker["dest"])


# ----------------------------------------------------------------------------- manifests
MANIFESTS = "results/manifests"
SPATIAL_MANIFESTS_REPORT = f"{MANIFESTS}/spatial/report.json"
TEMPORAL_MANIFESTS_REPORT = f"{MANIFESTS}/temporal/{clip_label()}/fps{config['fps']:g}/report.json"


def temporal_video_markers(wildcards):
    return {name: SOURCE_MARKER.format(source=spec["videos_source"]) for name, spec in sorted(config["temporal_datasets"].items())}


def temporal_folder_options(wildcards, input):
    """--videos and --features of scripts/build_manifests.py: each temporal dataset's folders."""
    videos = []
    for name in TEMPORAL_DATASETS:
        marker = input[f"videos_{name}"]
        dest = json.loads(Path(marker).read_text())["dest"]
        videos.append(f"{name}={Path(data_root_of(marker)) / dest}")
    features = [f"{name}={Path(index).parent}" for name, index in zip(TEMPORAL_DATASETS, input.features)]
    return " ".join(["--videos", *map(shlex.quote, videos), "--features", *map(shlex.quote, features)]) if videos else ""
