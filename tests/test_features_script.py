"""scripts/extract_clip_features.py: kill -9 and resume, shards + merge, clean failure exit."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sa2va_st.features.clip_model import load_clip
from sa2va_st.features.pipeline import OK, extract_shard, read_index
from sa2va_st.features.sharding import list_videos
from sa2va_st.testing import media as sv
from sa2va_st.testing.tiny import save_tiny_preset

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "extract_clip_features.py"
FPS = "10"


@pytest.fixture(scope="module")
def world_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder, _ = sv.synthetic_world_videos(tmp_path_factory.getbasetemp() / "features_world")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_preset(tmp_path_factory.mktemp("script_model") / "tiny", 0, ["clip"])["clip"]


def extract_args(videos: Path, out: Path, index: Path, tiny: Path, *extra: str) -> list[str]:
    """The script's flags, as the rule passes them (`extra` may override --max-failed-fraction)."""
    failed = [] if "--max-failed-fraction" in extra else ["--max-failed-fraction", "0"]
    return [
        "--videos", str(videos), "--shard", "0", "--shards", "1", "--fps", FPS,
        "--out-dir", str(out), "--index", str(index), "--identity", str(out / "identity.json"),
        "--model", "tiny", "--pretrained", str(tiny),
        "--batch-size", "8", "--precision", "fp32", "--device", "cpu", *failed, *extra,
    ]  # fmt: skip


def run_script(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    runpy.run_path(str(SCRIPT), run_name="__main__")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.npy")}


@pytest.mark.slow
def test_sigkill_then_rerun_redoes_only_unfinished_videos(world_folder, tiny, tmp_path):
    out, index = tmp_path / "features", tmp_path / "index.parquet"
    command = [sys.executable, str(SCRIPT), *extract_args(world_folder, out, index, tiny, "--num-workers", "0")]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    videos = list_videos(world_folder)

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("*.npy"))):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no feature file appeared"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    finished = snapshot(out)
    assert 1 <= len(finished) < len(videos), "the run was not interrupted part-way; the test proves nothing"
    assert not index.exists()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = snapshot(out)
    assert sorted(after) == sorted(f"{v.vid}.npy" for v in videos)
    assert {name: after[name] for name in finished} == finished  # finished files were not rewritten
    assert f"{len(finished)} already done" in rerun.stderr
    assert not [p for p in out.iterdir() if p.suffix != ".npy" and p.name != "identity.json"]  # no temporaries left

    # the same as one uninterrupted run
    reference = tmp_path / "reference"
    rows = extract_shard(
        videos,
        reference,
        float(FPS),
        load_clip("tiny", str(tiny)),
        batch_size=8,
        num_workers=0,
        max_failed_fraction=0.0,
        progress=False,
    )
    assert read_index(index) == rows
    for video in videos:
        np.testing.assert_allclose(
            np.load(out / f"{video.vid}.npy").astype(np.float32),
            np.load(reference / f"{video.vid}.npy").astype(np.float32),
            atol=2e-3,
        )


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    for k, fps in enumerate([24, 25, 30, 25, 24, 30]):
        sv.write_cfr(folder / f"clip{k}.mp4", fps, 20 + 7 * k)
    sv.write_audio_only(folder / "clip9_audio.mp4")
    return folder


def test_shards_then_merge(small_folder, tiny, tmp_path, monkeypatch):
    out = tmp_path / "features"
    shard_indexes = []
    for shard in range(2):
        index = tmp_path / f"shard{shard}.parquet"
        args = extract_args(small_folder, out, index, tiny, "--num-workers", "1", "--max-failed-fraction", "0.5")
        args[args.index("--shard") + 1], args[args.index("--shards") + 1] = str(shard), "2"
        run_script(monkeypatch, args)
        shard_indexes.append(index)
    run_script(monkeypatch, ["merge", "--out", str(tmp_path / "index.parquet"), *map(str, shard_indexes)])
    merged = read_index(tmp_path / "index.parquet")
    assert [r.vid for r in merged] == [v.vid for v in list_videos(small_folder)]
    assert {r.vid for r in merged if r.status != OK} == {"clip9_audio"}
    assert sorted(p.stem for p in out.glob("*.npy")) == [f"clip{k}" for k in range(6)]


def test_too_many_failures_exit_1_without_an_index(tmp_path, tiny, monkeypatch, capsys):
    folder = tmp_path / "videos"
    sv.write_audio_only(folder / "a.mp4")
    sv.write_cfr(folder / "b.mp4", 25, 10)
    index = tmp_path / "index.parquet"
    with pytest.raises(SystemExit) as caught:
        run_script(monkeypatch, extract_args(folder, tmp_path / "out", index, tiny, "--num-workers", "0"))
    assert caught.value.code == 1
    error = capsys.readouterr().err
    assert "error: FeatureError: 1 of 2 videos failed" in error and "a: no video stream" in error
    assert not index.exists()
    assert (tmp_path / "out" / "b.npy").exists()
