"""Training: checkpoints that rotate and survive kills, resume on the same or another number of ranks,
refusal of a changed config, a non-finite loss that stops the run by name, a dead rank reported.

The integration tests run the real thing on the CPU: torchrun (c10d), DeepSpeed ZeRO-2 over gloo,
the tiny preset, the synthetic world's manifests (`synthetic_build`), `scripts/train.py run`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import yaml

from conftest import SYNTHETIC_LABEL
from helpers import small_tmpfs
from sa2va_st import paths
from sa2va_st.config import validate_config
from sa2va_st.errors import TrainingError
from sa2va_st.training import checkpointing as ckpt
from sa2va_st.training.launch import describe_failure, rank_banner, torchrun_command
from sa2va_st.training.metrics_log import read_metrics
from sa2va_st.training.progress import Progress

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train.py"
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


# ----------------------------------------------------------------------------- checkpoints (no training)


def write_files(folder: Path, step: int) -> None:
    (folder / "engine").mkdir()
    (folder / "engine" / "weights.bin").write_bytes(os.urandom(4096))
    (folder / ckpt.PROGRESS).write_text(json.dumps({"step": step}))


def test_rotation_keeps_exactly_the_newest_complete_checkpoints(tmp_path):
    manager = ckpt.CheckpointManager(tmp_path, keep=2, rank=0, barrier=lambda: None)
    for step in (10, 20, 30, 40):
        manager.save(step, lambda folder, s=step: write_files(folder, s), {"layout": {}})
        steps = [c.step for c in manager.complete()]
        assert steps == [s for s in (10, 20, 30, 40) if s <= step][-2:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000030", "step_00000040"]
    # a listed file that lost bytes (a disk that lied) makes the checkpoint incomplete, so it is skipped
    (tmp_path / "step_00000040" / "engine" / "weights.bin").write_bytes(b"short")
    assert manager.latest().step == 30


KILLED_SAVE = """
import os, signal, sys
from pathlib import Path
from sa2va_st.training.checkpointing import CheckpointManager

def write(folder):
    (folder / "engine").mkdir()
    (folder / "engine" / "part.bin").write_bytes(b"x" * 1000)
    if sys.argv[2] == "during":
        os.kill(os.getpid(), signal.SIGKILL)      # killed half way through writing

manager = CheckpointManager(Path(sys.argv[1]), keep=1, rank=0, barrier=lambda: None)
if sys.argv[2] == "rotation":                     # killed after the rename, while the old one is deleted
    import shutil
    real = shutil.rmtree
    def dying(path, *a, **k):
        if ".removing." in str(path) and Path(path).exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *a, **k)
    shutil.rmtree = dying
manager.save(int(sys.argv[3]), write, {"layout": {}})
"""


@pytest.mark.parametrize("when", ["during", "rotation"])
def test_a_kill_during_a_save_never_loses_the_newest_complete_checkpoint(tmp_path, when):
    manager = ckpt.CheckpointManager(tmp_path, keep=1, rank=0, barrier=lambda: None)
    manager.save(100, lambda folder: write_files(folder, 100), {"layout": {}})
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(tmp_path), when, "200"], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    latest = manager.latest()
    if when == "during":  # the new one never became complete: the old one is still there, whole
        assert latest.step == 100 and [c.step for c in manager.complete()] == [100]
        assert (tmp_path / ".step_00000200.partial").is_dir()
    else:  # the new one was complete before the old one was touched
        assert latest.step == 200
        assert not (tmp_path / "step_00000100").exists()
    assert manager.clean_stale()  # the next start removes what the kill left
    assert sorted(p.name for p in tmp_path.iterdir()) == [latest.path.name]


def test_rng_states_round_trip_through_json(tmp_path):
    import random

    import torch

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    ckpt.write_rng_state(tmp_path, 0)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt.set_rng_state(json.loads((tmp_path / "rng" / "rank_00000.json").read_text()))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_progress_is_read_back_under_fixed_keys_only():
    progress = Progress(step=5, samples=40, tokens=900, elapsed_s=1.5)
    assert Progress.from_dict(progress.to_dict(), "p.json") == progress
    with pytest.raises(TrainingError, match="keys"):
        Progress.from_dict({**progress.to_dict(), "extra": 1}, "p.json")
    with pytest.raises(TrainingError, match="negative"):
        Progress.from_dict({**progress.to_dict(), "step": -1}, "p.json")


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    from sa2va_st.testing.tiny import save_tiny_preset

    return save_tiny_preset(tmp_path_factory.mktemp("tiny"), 0, ["vlm"])["vlm"]


def run_config(tiny_vlm: Path, **training) -> dict:
    """config.yaml with the tiny model and a small, quick mix: 3 datasets, ~9 steps a pass of 4 samples."""
    from sa2va_st.testing.tiny import TINY_CLIP_DIM

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["model"].update(vlm=str(tiny_vlm), dtype="fp32", max_image_tiles=1)
    config["model"]["lora"].update(r=8, alpha=16)
    config["model"]["temporal"]["clip_dim"] = TINY_CLIP_DIM
    repeats = dict.fromkeys(config["training"]["repeats"], 0)
    repeats.update(refcoco=1, mevis=1, charades=1)
    config["training"].update(
        repeats=repeats,
        epochs=4,
        passes_per_epoch=1,
        batch_size=2,
        gradient_accumulation=2,
        lr=1e-3,
        warmup_epochs=0.5,
        save_steps=6,
        save_total_limit=2,
        log_steps=1,
        num_workers=0,
        group_window=2,
        held_out_samples=2,
        processes=1,
    )
    config["training"].update(training)
    return validate_config(config, SCHEMA)


def command(config: dict, build: dict, work: Path, processes: int, *extra: str, manifests: Path | None = None):
    manifests = manifests or build["tmp"] / "manifests"
    return [
        *shlex.split(torchrun_command(TORCHRUN, processes, str(work / "ranks"), "test")),
        str(SCRIPT), "run",
        "--config-json", json.dumps({k: config[k] for k in ("training", "model", "clip")}),
        "--spatial-manifests", str(manifests / "spatial"),
        "--temporal-manifests", str(manifests / "temporal" / SYNTHETIC_LABEL / "fps10"),
        "--work-dir", str(work / "work"),
        "--out-dir", str(work / "out"),
        "--deepspeed-config", str(REPO / "workflow" / "deepspeed" / "zero2.json"),
        *extra,
    ]  # fmt: skip


ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}


def train(config, build, work, processes=1, *extra, check=True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command(config, build, work, processes, *extra, **kwargs), capture_output=True, text=True, env=ENV
    )
    (work / "stderr.txt").write_text(done.stderr)  # the whole story, for a failing test
    if check:
        errors = [line for line in done.stderr.splitlines() if "Error" in line or "error:" in line]
        assert done.returncode == 0, "\n".join(errors[-20:]) or done.stderr[-4000:]
    return done


def train_and_kill_after(config, build, work, processes: int, step: int) -> None:
    """Start a run and SIGKILL the whole launcher group once the checkpoint of ``step`` is complete."""
    process = subprocess.Popen(
        command(config, build, work, processes),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    manager = ckpt.CheckpointManager(work / "work" / paths.CHECKPOINTS, keep=99, rank=0, barrier=lambda: None)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            latest = manager.latest()
            if latest is not None and latest.step >= step:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher's group; its ranks die with it (PR_SET_PDEATHSIG)
        process.wait()
    folder = work / "work" / paths.CHECKPOINTS
    before = sorted(p.name for p in folder.iterdir())
    time.sleep(2.0)
    assert sorted(p.name for p in folder.iterdir()) == before, "a rank outlived its launcher and kept training"


def final_weights(work: Path) -> dict:
    latest = ckpt.CheckpointManager(work / "work" / paths.CHECKPOINTS, keep=2, rank=0, barrier=lambda: None).latest()
    return safetensors.torch.load_file(str(latest.path / ckpt.TRAINABLE / "trainable.safetensors"))


def losses_by_step(work: Path) -> dict[int, dict[str, float]]:
    return {r["step"]: r["loss"] for r in read_metrics(work / "work" / "metrics.jsonl") if r["event"] == "train"}


@pytest.fixture(scope="module")
def uninterrupted(tiny_vlm, synthetic_build, tmp_path_factory) -> dict:
    """One rank, start to end, never killed: the reference of the resume tests."""
    config = run_config(tiny_vlm)
    work = tmp_path_factory.mktemp("uninterrupted")
    done = train(config, synthetic_build, work)
    return {"config": config, "work": work, "stderr": done.stderr}


def test_a_run_trains_exports_and_rotates(uninterrupted):
    work = uninterrupted["work"]
    manager = ckpt.CheckpointManager(work / "work" / paths.CHECKPOINTS, keep=2, rank=0, barrier=lambda: None)
    records = read_metrics(work / "out" / "metrics.jsonl")
    steps = [r["step"] for r in records if r["event"] == "train"]
    total = steps[-1]
    assert steps == list(range(1, total + 1)) and total >= 24
    assert [c.step for c in manager.complete()] == [total - 6 if total % 6 == 0 else total - total % 6, total]
    assert sorted(p.name for p in (work / "work" / paths.CHECKPOINTS).iterdir()) == [
        c.path.name for c in manager.complete()
    ]  # nothing else is left: no partial folder, no removed one
    assert (work / "out" / "model" / "sa2va_st_export.json").is_file()
    held_out = [r for r in records if r["event"] == "held_out"]
    assert held_out[0]["step"] == 0 and held_out[-1]["step"] == total
    for task, first in held_out[0]["loss"].items():
        assert held_out[-1]["loss"][task] < first, (task, first, held_out[-1]["loss"][task])
    assert "resuming" not in uninterrupted["stderr"]


def test_a_finished_run_started_again_does_nothing(uninterrupted, synthetic_build):
    done = train(uninterrupted["config"], synthetic_build, uninterrupted["work"])
    assert "the run is complete" in done.stderr


def test_a_run_killed_and_then_out_of_disk_resumes_to_the_same_weights(uninterrupted, synthetic_build, tmp_path):
    """Two faults in one run, each checked where it happens. SIGKILL once step 6 is saved; the restart
    runs with its work dir on a tmpfs with room for about one checkpoint more, so a later save does not
    fit: a DiskFullError with the numbers, no partial folder, the checkpoints before it intact. Copied to
    a larger disk, the run resumes and ends with the uninterrupted run's weights and losses."""
    config = uninterrupted["config"]
    train_and_kill_after(config, synthetic_build, tmp_path / "killed", processes=1, step=6)
    manager = ckpt.CheckpointManager(
        tmp_path / "killed" / "work" / paths.CHECKPOINTS, keep=2, rank=0, barrier=lambda: None
    )
    manager.clean_stale()  # a save the kill interrupted (its partial folder would count against the small disk)
    size = sum(manager.latest().meta["files"].values())
    with small_tmpfs(tmp_path / "disk", int(2.5 * size)) as disk:
        shutil.copytree(tmp_path / "killed" / "work", disk / "work")
        before = {c.step for c in manager.complete()}
        done = train(config, synthetic_build, disk, check=False)
        assert done.returncode != 0 and "resuming from" in done.stderr
        assert "DiskFullError: the disk is full" in done.stderr, done.stderr[-3000:]
        assert f"bytes free of {shutil.disk_usage(disk).total:,}" in done.stderr
        on_disk = ckpt.CheckpointManager(disk / "work" / paths.CHECKPOINTS, keep=2, rank=0, barrier=lambda: None)
        latest = on_disk.latest()
        taken = sum(latest.meta["files"].values())
        assert f"did not fit (step {latest.step}'s takes {taken:,} bytes" in done.stderr, done.stderr[-3000:]
        assert not on_disk.clean_stale(), "the failed save left its partial folder"
        assert max(before) <= latest.step
        shutil.copytree(disk / "work", tmp_path / "moved" / "work")
    done = train(config, synthetic_build, tmp_path / "moved")
    assert "resuming from" in done.stderr
    expected, got = final_weights(uninterrupted["work"]), final_weights(tmp_path / "moved")
    assert expected.keys() == got.keys()
    worst = max(float((expected[k] - got[k]).abs().max()) for k in expected)
    assert worst <= 1e-6, worst
    assert losses_by_step(tmp_path / "moved") == losses_by_step(uninterrupted["work"])  # the same samples, step by step


def test_a_run_saved_on_two_ranks_resumes_on_one_with_the_same_losses(uninterrupted, synthetic_build, tmp_path):
    config = uninterrupted["config"]
    two = tmp_path / "two"
    train(config, synthetic_build, two, 2)  # 2 ranks x accumulation 2: 4 micro-batches a step
    moved = tmp_path / "moved"
    train_and_kill_after(config, synthetic_build, moved, processes=2, step=6)
    done = train(config, synthetic_build, moved, 1)  # accumulation becomes 4: the same 4 micro-batches a step
    assert "universal checkpoint" in done.stderr
    reference, resumed = losses_by_step(two), losses_by_step(moved)
    assert reference.keys() == resumed.keys()
    for step in reference:
        for task, loss in reference[step].items():
            assert resumed[step][task] == pytest.approx(loss, rel=1e-4, abs=1e-5), (step, task)
    expected, got = final_weights(two), final_weights(moved)
    assert max(float((expected[k] - got[k]).abs().max()) for k in expected) <= 1e-4


def test_a_changed_config_is_refused_unless_the_user_starts_over(uninterrupted, synthetic_build, tmp_path):
    shutil.copytree(uninterrupted["work"] / "work", tmp_path / "work")
    changed = run_config(Path(uninterrupted["config"]["model"]["vlm"]), lr=2e-3, epochs=1)
    done = train(changed, synthetic_build, tmp_path, check=False)
    assert done.returncode == 1
    assert "another config" in done.stderr and "lr: 0.001 → 0.002" in done.stderr, done.stderr[-3000:]
    assert "start_over=true" in done.stderr
    done = train(changed, synthetic_build, tmp_path, 1, "--start-over")
    assert "start over" in done.stderr
    steps = [r["step"] for r in read_metrics(tmp_path / "work" / "metrics.jsonl") if r["event"] == "train"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < 12  # one epoch of the new config, from 0


def test_a_non_finite_feature_stops_the_run_naming_the_step_and_samples(tiny_vlm, synthetic_build, tmp_path):
    from sa2va_st.manifests import build_temporal_manifests

    root = tmp_path / "data"
    shutil.copytree(synthetic_build["root"] / "clip_features", root / "clip_features")
    features = root / "clip_features" / "charades" / SYNTHETIC_LABEL / "fps10"
    for npy in features.glob("*.npy"):  # every Charades video: the first temporal step meets one
        table = np.load(npy)
        table[:] = np.nan
        np.save(npy, table)
    shutil.copytree(synthetic_build["tmp"] / "manifests" / "spatial", tmp_path / "manifests" / "spatial")
    shutil.copytree(synthetic_build["root"] / "temporal", root / "temporal")
    build_temporal_manifests(
        synthetic_build["tmp"] / "special_jsons", root, SYNTHETIC_LABEL, 10.0, tmp_path / "manifests"
    )
    done = train(run_config(tiny_vlm), synthetic_build, tmp_path, check=False, manifests=tmp_path / "manifests")
    assert done.returncode != 0
    assert "TrainingError: a non-finite loss or gradient at step" in done.stderr, done.stderr[-3000:]
    assert "charades/train:" in done.stderr  # the samples of that step, by manifest id
    assert not (tmp_path / "out" / "model").exists()


def test_a_dead_rank_is_named_with_its_last_lines(tiny_vlm, synthetic_build, tmp_path):
    config = run_config(tiny_vlm, epochs=50)
    log = tmp_path / "torchrun.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command(config, synthetic_build, tmp_path, 2), env=ENV, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 300
        victim = None
        while time.monotonic() < deadline and victim is None and process.poll() is None:
            if "step 2:" in log.read_text():  # both ranks are training
                children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
                pids = [int(p) for p in children.stdout.split()]
                for pid in pids:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                    if b"RANK=1" in environ:
                        victim = pid
            time.sleep(0.1)
        assert victim is not None, log.read_text()[-3000:]
        os.kill(victim, signal.SIGKILL)
        assert process.wait(timeout=300) != 0
    report = describe_failure(log, tmp_path / "ranks")
    assert "rank 1 died: killed by SIGKILL" in report, report
    assert "its last lines" in report and "(no log found)" not in report


def test_on_several_nodes_a_dead_rank_is_named_with_its_own_nodes_lines(tmp_path):
    """Two nodes of two ranks: each node's torchrun writes its own folder, and both have a local rank 0.
    The dead global rank 2 (node B's local rank 0) is quoted from node B's log even when node A's is newer."""
    ranks = tmp_path / "ranks"
    logs = {}
    for node, (first_rank, host) in enumerate([(2, "node-b"), (0, "node-a")]):  # node A's written last
        for local_rank in (0, 1):
            path = ranks / f"42_{node}abc/attempt_0/{local_rank}/stderr.log"
            path.parent.mkdir(parents=True)
            rank = first_rank + local_rank
            path.write_text(f"INFO sa2va_st.train: {rank_banner(rank, 4, local_rank, host)}\nwork of rank {rank}\n")
            os.utime(path, (1000 + node, 1000 + node))
            logs[rank] = path
    torchrun_log = tmp_path / "train.log"
    torchrun_log.write_text(
        "Root Cause (first observed failure):\n[0]:\n  time      : 2026-12-02_00:00:00\n  host      : node-b\n"
        "  rank      : 2 (local_rank: 0)\n  exitcode  : -9 (pid: 123)\n"
    )
    report = describe_failure(torchrun_log, ranks)
    assert "rank 2 died: killed by SIGKILL" in report and "work of rank 2" in report and str(logs[2]) in report
    assert "work of rank 0" not in report
