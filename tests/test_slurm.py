"""The SLURM profile at the scale it is written for: `train` on 2 nodes x 8 GPUs planned through the real
profile and the executor plugin's own sbatch builder (no cluster needed). The run on a real one-node
cluster is in test_workflow.py (it reuses the demo's data)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"


class Resources(dict):
    """A job's resources as the plugin reads them: ``resources.nodes`` and ``resources.get("nodes")``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def parse_resources(line: str) -> Resources:
    values = Resources()
    for item in line.split(":", 1)[1].split(", "):
        key, _, value = item.strip().partition("=")
        values[key] = int(value) if re.fullmatch(r"\d+", value) else value
    return values


@pytest.fixture(scope="module")
def two_node_plan(tmp_path_factory) -> str:
    """`snakemake -n -p train` with the repository's SLURM profile set to 2 nodes (as its comment says)."""
    profile = tmp_path_factory.mktemp("profile") / "slurm"
    shutil.copytree(PROFILE, profile)
    config = yaml.safe_load((profile / "config.yaml").read_text())
    config["set-resources"]["train"]["nodes"] = 2
    (profile / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--profile", str(profile), "--slurm-no-account", "train"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=os.environ | {"CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def train_block(plan: str) -> str:
    return plan[plan.index("rule train:") :].split("\n\n", 1)[0]


def test_two_nodes_of_eight_gpus_run_one_torchrun_per_node_through_the_rules_own_srun(two_node_plan):
    block = train_block(two_node_plan)
    shell = next(
        line for line in two_node_plan[two_node_plan.index("rule train:") :].splitlines() if "torchrun" in line
    )
    launcher = shell.removeprefix("Shell command: ").split("/scripts/train.py")[0]
    assert launcher.startswith("srun --nodes=2 --ntasks=2 --ntasks-per-node=1 ")
    assert "--nnodes 2 --nproc-per-node 8 --rdzv-backend c10d" in launcher
    assert "--cpus-per-task=64" in launcher  # the 8 tasks x 8 CPUs the job holds on each node
    assert (
        '--rdzv-endpoint "$(scontrol show hostnames "$(squeue -h -j "$SLURM_JOB_ID" -o %N)" | head -n 1)":29500'
        in launcher
    )
    assert '--rdzv-id "$SLURM_JOB_ID"' in launcher
    resources = parse_resources(next(line for line in block.splitlines() if line.strip().startswith("resources:")))
    assert resources["mpi"] == "srun" and resources["nodes"] == 2 and resources["tasks_per_node"] == 8
    assert resources["gres"] == "gpu:8"


def test_the_plugins_sbatch_line_asks_for_two_whole_gpu_nodes(two_node_plan):
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    block = train_block(two_node_plan)
    resources = parse_resources(next(line for line in block.splitlines() if line.strip().startswith("resources:")))
    job = SimpleNamespace(resources=resources, threads=1, name="train", is_group=lambda: False)
    params = {
        "run_uuid": "uuid", "slurm_logfile": "train.log", "comment_str": "rule_train", "account": "",
        "partition": "", "workdir": "/work",
    }  # fmt: skip
    call = get_submit_command(job, params) + set_gres_string(job)
    assert "--nodes=2" in call and "--ntasks-per-node=8" in call and "--gres=gpu:8" in call
    assert "--cpus-per-task=8" in call and "--mem 480000" in call and "-t 4320" in call
    assert "--gpus" not in call  # GPUs per node come from gres, not a job-wide count


def test_feature_shards_are_one_gpu_job_each(two_node_plan):
    for rule in ("clip_features_shard",):
        blocks = [b for b in two_node_plan.split("\n\n") if f"rule {rule}:" in b]
        assert len(blocks) == 16  # 8 shards x 2 temporal datasets, each its own job
        for b in blocks:
            assert "gpu=1" in next(line for line in b.splitlines() if line.strip().startswith("resources:"))


def test_without_slurm_resources_train_is_one_local_torchrun():
    from sa2va_st.training.launch import launch_command

    local = launch_command("torchrun", 2, "logs", "run", Resources(gpu=0, nodes=1))
    assert local.startswith("torchrun --nnodes 1 --nproc-per-node 2 --rdzv-backend c10d --rdzv-endpoint localhost:0")
    slurm = launch_command("torchrun", 2, "logs", "run", Resources(mpi="srun", nodes=3, tasks_per_node=4))
    assert (
        slurm.startswith("srun --nodes=3 --ntasks=3 --ntasks-per-node=1") and "--nnodes 3 --nproc-per-node 4" in slurm
    )


def test_the_one_node_cluster_config_names_this_machine():
    from sa2va_st.testing.slurm import slurm_conf

    text = slurm_conf(Path("/scratch"), "node1", 2, 20000)
    assert "NodeName=node1 NodeAddr=127.0.0.1 CPUs=2 RealMemory=20000" in text
    assert "AccountingStorageType=accounting_storage/none" in text and "ProctrackType=proctrack/linuxproc" in text
    assert "StateSaveLocation=/scratch/state" in text
