"""The config is validated at parse time: a wrong key fails before any job runs, naming the key."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sa2va_st.config import validate_config
from sa2va_st.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def with_change(path: str, value) -> dict:
    config = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


def test_default_config_is_valid():
    assert validate_config(copy.deepcopy(DEFAULT), SCHEMA) is not None


def test_stable_keys_are_present():
    assert {"data_root", "fps", "work_dir", "sa2va_training"} <= set(DEFAULT)
    assert {"repo_id", "revision", "files", "local_mirror"} <= set(DEFAULT["sa2va_training"])
    assert DEFAULT["data_root"] == "resources/datasets" and DEFAULT["fps"] == 10
    assert len(DEFAULT["sa2va_training"]["files"]) == 5


@pytest.mark.parametrize(
    "path, value, key",
    [
        ("fps", 0, "fps"),
        ("fps", -2.5, "fps"),
        ("fps", "ten", "fps"),
        ("fpss", 5, "fpss"),
        ("sa2va_training.filez", [], "sa2va_training.filez"),
        ("sa2va_training.files", "ref_seg_coco.zip", "sa2va_training.files"),
        ("sa2va_training.repo_id", "no-slash", "sa2va_training.repo_id"),
        ("sources.revos.kind", "ftp", "sources.revos.kind"),
        ("unpack.reserve_gb", -1, "unpack.reserve_gb"),
    ],
)
def test_bad_values_name_their_key(path, value, key):
    with pytest.raises(ConfigError) as error:
        validate_config(with_change(path, value), SCHEMA)
    assert error.value.key == key
    assert f"{key}:" in str(error.value) and "fix:" in str(error.value)


def test_missing_required_key_is_named():
    config = copy.deepcopy(DEFAULT)
    del config["sa2va_training"]["repo_id"]
    with pytest.raises(ConfigError) as error:
        validate_config(config, SCHEMA)
    assert error.value.key == "sa2va_training.repo_id"


def test_url_source_needs_urls():
    with pytest.raises(ConfigError, match="urls"):
        validate_config(with_change("sources.charades_sta.urls", []), SCHEMA)


# ----------------------------------------------------------------------------- through snakemake


def snakemake(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run snakemake on this repo's workflow in `run_dir`, with every network attempt doomed."""
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(run_dir),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_dry_run_plans_exactly_the_configured_archives_offline(run_dir):
    result = snakemake(run_dir, "-n", "prepare_data")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    assert counts["download"] == 5 and counts["unpack"] == 5
    assert counts["fetch_source"] == len(DEFAULT["sources"])
    assert set(counts) == {"download", "unpack", "fetch_source", "inventory", "prepare_data", "total"}
    planned = set(re.findall(r"wildcards: archive=(\S+)", result.stdout + result.stderr))
    assert planned == set(DEFAULT["sa2va_training"]["files"])
    assert not (run_dir / "resources").exists(), "a dry run must not create outputs"


@pytest.mark.parametrize("override, key", [("fps=0", "fps"), ("bogus_key=1", "bogus_key")])
def test_snakemake_refuses_bad_config_before_any_job(run_dir, override, key):
    result = snakemake(run_dir, "-n", "prepare_data", "--config", override)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"key: {key}" in output
    assert "Job stats" not in output


def test_lint_is_clean(run_dir):
    result = snakemake(run_dir, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_defaults_come_from_the_schema():
    config = copy.deepcopy(DEFAULT)
    del config["clip"]["shards"]
    del config["sources"]["charades_sta"]["layout"]
    validate_config(config, SCHEMA)
    assert config["clip"]["shards"] == 8 and config["sources"]["charades_sta"]["layout"] == "files"


def test_temporal_dataset_must_name_an_existing_source():
    with pytest.raises(ConfigError) as error:
        validate_config(with_change("temporal_datasets.charades.videos_source", "nope"), SCHEMA)
    assert error.value.key == "temporal_datasets.charades.videos_source"


def test_training_repeats_default_to_upstream_and_overrides_are_checked():
    from sa2va_st.catalog import upstream_repeats
    from sa2va_st.datasets.sampler import repeats_from_config

    UPSTREAM_REPEATS = upstream_repeats()

    assert repeats_from_config(validate_config(copy.deepcopy(DEFAULT), SCHEMA)) == UPSTREAM_REPEATS
    bare = copy.deepcopy(DEFAULT)
    del bare["training"]
    assert repeats_from_config(validate_config(bare, SCHEMA)) == UPSTREAM_REPEATS
    assert repeats_from_config(validate_config(with_change("training.repeats", {"mevis": 2}), SCHEMA))["mevis"] == 2.0
    for value, key in (({"mevis": -1}, "training.repeats.mevis"), ({"ref_ytvos": 4}, "training.repeats.ref_ytvos")):
        with pytest.raises(ConfigError) as error:
            validate_config(with_change("training.repeats", value), SCHEMA)
        assert error.value.key == key, str(error.value)


def test_nested_command_line_values_are_read_as_the_schema_wants():
    """Snakemake passes `--config training='{processes: 3}' start_over=true` as strings: they are read as
    YAML where the schema wants a number or a boolean, and stay strings where it wants a string."""
    config = copy.deepcopy(DEFAULT)
    config["start_over"] = "true"
    config["training"] = {**config["training"], "processes": "3", "lr": "1e-4", "betas": ["0.8", "0.9"]}
    config["work_dir"] = "123"
    validated = validate_config(config, SCHEMA)
    assert validated["start_over"] is True and validated["training"]["processes"] == 3
    assert validated["training"]["lr"] == 1e-4 and validated["training"]["betas"] == [0.8, 0.9]
    assert validated["work_dir"] == "123"
    config["training"]["processes"] = "three"
    with pytest.raises(ConfigError, match="training.processes"):
        validate_config(config, SCHEMA)
