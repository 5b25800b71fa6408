"""How jobs learn their hardware and their Python: GPU claims (sa2va_st.devices), the gpu resource the
rules declare, and `--sdm conda` running the jobs with the env's interpreter."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sa2va_st.devices import Gpu, claim_gpu, cuda_visible_devices, visible_gpu_count, visible_gpus

REPO = Path(__file__).resolve().parent.parent

CLAIM_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from sa2va_st.devices import claim_device
    with claim_device("auto", device_count=int(sys.argv[1])) as device:
        print(device, time.time(), flush=True)
        time.sleep(float(sys.argv[2]))
        print("released", time.time(), flush=True)
    """
)


def start_claim(env: dict, count: int, hold_s: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM_SCRIPT, str(count), str(hold_s)], env=env, stdout=subprocess.PIPE, text=True
    )


def test_cuda_visible_devices_decides_what_a_job_sees(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert cuda_visible_devices() == ["3", "5"] and visible_gpu_count() == 2
    assert visible_gpus(device_count=2) == [Gpu(0, "3"), Gpu(1, "5")]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpu_count() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpu_count() == 0


@pytest.mark.slow
def test_two_concurrent_jobs_on_a_two_gpu_node_get_different_gpus_and_a_third_waits(tmp_path):
    """A simulated node with CUDA_VISIBLE_DEVICES=0,1: three shard-like processes start together; two hold
    cuda:0 and cuda:1 at once, the third gets a GPU only when one of them has released it."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="0,1", SA2VA_ST_GPU_LOCK_DIR=str(tmp_path / "locks"))
    first, second = start_claim(env, 2, 4.0), start_claim(env, 2, 4.0)
    held = [p.stdout.readline().split() for p in (first, second)]  # both hold their GPU now
    third = start_claim(env, 2, 0.1)
    outputs = [h + p.communicate(timeout=120)[0].split() for h, p in zip(held, (first, second))]
    outputs.append(third.communicate(timeout=120)[0].split())
    assert all(p.returncode == 0 for p in (first, second, third))
    (d1, t1, _, r1), (d2, t2, _, r2), (d3, t3, _, _) = outputs
    assert {d1, d2} == {"cuda:0", "cuda:1"}  # never both on cuda:0
    released_at = {d1: float(r1), d2: float(r2)}
    # The third holds a GPU only after that GPU's holder let it go. "released" is printed just before the lock
    # is dropped, so when both holders finish within a few milliseconds either may be the one it gets.
    assert float(t3) >= released_at[d3]


def test_a_killed_job_releases_its_gpu(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="0", SA2VA_ST_GPU_LOCK_DIR=str(tmp_path / "locks"))
    holder = start_claim(env, 1, 60.0)
    assert holder.stdout.readline().split()[0] == "cuda:0"
    holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the flock
    holder.wait()
    with claim_gpu([Gpu(0, "0")], tmp_path / "locks", timeout_s=10) as gpu:
        assert gpu.index == 0


def test_a_claim_times_out_when_every_gpu_stays_held(tmp_path):
    with claim_gpu([Gpu(0, "x")], tmp_path) as gpu:
        assert gpu.key == "x"
        with pytest.raises(TimeoutError, match="stayed claimed"):
            with claim_gpu([Gpu(0, "x")], tmp_path, timeout_s=0.1):
                pass


# ----------------------------------------------------------------------------- what the rules declare


def dry_run(tmp_path: Path, *args: str, env: dict | None = None) -> str:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "-n", "-p", *args]
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env or dict(os.environ)
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def shard_resources(output: str) -> list[str]:
    blocks = output.split("rule clip_features_shard:")[1:]
    return [re.search(r"resources: (.*)", block).group(1) for block in blocks]


@pytest.mark.slow
def test_shards_ask_for_a_gpu_only_where_the_node_has_gpus(tmp_path):
    cpu = dry_run(tmp_path, "extract_clip_features", env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    gpus = dry_run(tmp_path, "extract_clip_features", env=dict(os.environ, CUDA_VISIBLE_DEVICES="0,1"))
    assert shard_resources(cpu) and all("gpu=0" in r for r in shard_resources(cpu))
    assert shard_resources(gpus) and all("gpu=1" in r for r in shard_resources(gpus))
    assert all("mem_mb=16000" in r and "runtime=240" in r for r in shard_resources(gpus))
    assert "--device auto" in gpus  # each shard claims its own GPU


def train_block(output: str) -> tuple[str, str]:
    """The train job's resources and shell command in a dry run."""
    block = output.split("rule train:")[1]
    resources = re.search(r"resources: (.*)", block).group(1)
    command = re.search(r"^Shell command: (.*)$", block, flags=re.M).group(1)
    return resources, command


@pytest.mark.slow
@pytest.mark.parametrize(
    ("visible", "processes", "gpus"),
    [("", "1", "0"), ("0,1,2,3,4,5,6,7", "8", "8"), ("1", "1", "1")],
)
def test_train_runs_torchrun_with_one_process_per_visible_gpu(tmp_path, visible, processes, gpus):
    """`snakemake -n train` on the default config: torchrun (c10d) starts one rank per GPU the node shows
    (CUDA_VISIBLE_DEVICES=1: that GPU only), and the job asks for as many GPUs; a CPU-only node runs one."""
    output = dry_run(tmp_path, "train", env=dict(os.environ, CUDA_VISIBLE_DEVICES=visible))
    resources, command = train_block(output)
    assert "torchrun --nnodes 1 --nproc-per-node " + processes + " --rdzv-backend c10d" in command
    assert f"gpu={gpus}" in resources and "nodes=1" in resources and "runtime=" in resources
    assert "scripts/train.py run" in command and "deepspeed/zero2.json" in command
    assert '"lr": 4e-05' in command and '"gradient_accumulation": 4' in command  # every hyper-parameter
    assert "--start-over" not in command


@pytest.mark.slow
def test_train_processes_and_start_over_from_the_config(tmp_path):
    output = dry_run(
        tmp_path,
        "train",
        "--config",
        "start_over=true",
        "training={processes: 3, deepspeed: zero3}",  # nested values reach the schema as strings
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    _, command = train_block(output)
    assert "--nproc-per-node 3" in command and "deepspeed/zero3.json" in command and "--start-over" in command


# ----------------------------------------------------------------------------- one way to run a job's Python

FAKE_CONDA = """#!/bin/sh
# Stands in for conda where none can be installed (no conda channel is reachable here): it answers the
# three questions Snakemake asks before a dry run; it creates no environment.
case "$1 $2" in
  "info --json") echo '{"conda_prefix": "%(root)s", "root_prefix": "%(root)s", "platform": "linux-64", "envs_dirs": ["%(root)s/envs"], "pkgs_dirs": ["%(root)s/pkgs"]}';;
  "--version "*) echo "conda 24.9.2";;
  "config --get") echo '{"get": {"channel_priority": "strict"}}';;
  *) echo "fake conda: $*" >&2; exit 1;;
esac
"""


def shell_commands(output: str) -> list[str]:
    """The shell commands of a dry run (`-p`); target rules without a command print None."""
    return [cmd for cmd in re.findall(r"^Shell command: (.*)$", output, flags=re.M) if cmd != "None"]


@pytest.mark.slow
def test_sdm_conda_runs_every_job_with_the_envs_python(tmp_path):
    """Without --sdm conda a job runs the interpreter Snakemake runs in; with it, `python` of the job's PATH,
    which Snakemake's activation of envs/spatial.yaml puts first. Every rule names that env."""
    plain = shell_commands(dry_run(tmp_path, "manifests"))
    assert plain and all(cmd.startswith(sys.executable + " ") for cmd in plain), plain[:2]

    fake = tmp_path / "conda_root"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "conda").write_text(FAKE_CONDA % {"root": fake})
    (fake / "bin" / "conda").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake / 'bin'}{os.pathsep}{os.environ['PATH']}")
    conda = shell_commands(dry_run(tmp_path, "manifests", "--sdm", "conda", env=env))
    assert conda and all(cmd.startswith("python ") for cmd in conda), conda[:2]
    assert len(conda) == len(plain)

    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    shell_rules = len(re.findall(r"^rule \w+:\n(?:(?!^rule ).)*?^    shell:", rules, flags=re.M | re.S))
    assert rules.count("conda:\n        CONDA_ENV") == shell_rules
    spec = (REPO / "envs" / "spatial.yaml").read_text()
    assert "-r ../requirements.txt" in spec and json.dumps("python=3.11")[1:-1] in spec
