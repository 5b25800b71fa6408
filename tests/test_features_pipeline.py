"""The extraction loop (features.pipeline) on the synthetic world with the tiny CLIP."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from sa2va_st.features import FeatureError, timing
from sa2va_st.features.clip_model import load_clip
from sa2va_st.features.pipeline import (
    FAILED,
    OK,
    IndexRow,
    extract_shard,
    merge_indexes,
    read_index,
    write_index,
)
from sa2va_st.features.sharding import VideoSource, list_videos, select_shard
from sa2va_st.testing import media as sv
from sa2va_st.testing.tiny import save_tiny_preset

FPS = 5.0
DIM = 32  # the tiny model's embedding size


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    folder, records = sv.synthetic_world_videos(tmp_path_factory.getbasetemp() / "features_world")
    return folder, {r["video_id"]: r for r in records}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_preset(tmp_path_factory.mktemp("model") / "tiny", 0, ["clip"])["clip"]


@pytest.fixture(scope="module")
def clip(tiny_dir: Path):
    return load_clip("tiny", str(tiny_dir))


@pytest.fixture(scope="module")
def full_run(world, clip, tmp_path_factory: pytest.TempPathFactory):
    """Every world video, two decode workers, batches of 7 frames (so batches straddle videos)."""
    out = tmp_path_factory.mktemp("features")
    rows = extract_shard(
        list_videos(world[0]), out, FPS, clip, batch_size=7, num_workers=2, max_failed_fraction=0.0, progress=False
    )
    return out, rows


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.npy")}


# ---------------------------------------------------------------- outputs


def test_every_video_has_unit_float16_features(world, full_run):
    out, rows = full_run
    records = world[1]
    assert [r.vid for r in rows] == sorted(records)  # shard order
    for row in rows:
        video = records[row.vid]
        assert row.status == OK and row.error is None
        assert row.T == timing.feature_count(video["duration"], FPS)
        assert row.duration == pytest.approx(video["duration"], abs=1e-5)
        assert row.source_frames == video["frame_count"]
        assert row.source_fps == pytest.approx(video["frame_count"] / video["duration"], rel=1e-6)
        assert row.fps == FPS
        features = np.load(out / f"{row.vid}.npy", allow_pickle=False)
        assert features.dtype == np.float16 and features.shape == (row.T, DIM)
        norms = np.linalg.norm(features.astype(np.float32), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=2e-3)  # fp16 keeps about 3 decimals
    assert not [p for p in out.iterdir() if p.suffix != ".npy"]  # no temporaries, no pickles


def reference_features(path: str, model, fps: float) -> np.ndarray:
    """One frame at a time, another road: PyAV frames, PyAV's rotation, open_clip's own PIL preprocess."""
    with av.open(path) as container:
        decoded = [(f.pts, f.time_base, f.duration, f) for f in container.decode(video=0)]
        first = decoded[0][0]
        times = np.array([float((p - first) * tb) for p, tb, _, _ in decoded])
        last_pts, tb, last_duration, _ = decoded[-1]
        duration = float((last_pts - first + last_duration) * tb)
        chosen = timing.choose_frames(times, duration, fps)
        pictures = {}
        for k in np.unique(chosen):
            frame = decoded[k][3]
            pictures[k] = np.rot90(frame.to_ndarray(format="rgb24"), k=round(frame.rotation / 90))
    transform = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    rows = []
    with torch.inference_mode():
        for k in chosen:
            pixels = transform(Image.fromarray(np.ascontiguousarray(pictures[k])))[None]  # (1, 3, h, w)
            rows.append(torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)[0].numpy())
    return np.stack(rows)


def test_batched_across_videos_equals_one_frame_at_a_time(world, full_run, clip):
    out, _ = full_run
    records = world[1]
    vfr = next(v for v in records.values() if v["vfr"])
    rotated = next(v for v in records.values() if v["rotation_degrees"])
    ntsc = next(v for v in records.values() if v["fps_fraction"] == "30000/1001" and not v["rotation_degrees"])
    shortest = min(records.values(), key=lambda v: v["duration"])
    for video in (vfr, rotated, ntsc, shortest):
        expected = reference_features(video["file"], clip[0], FPS)
        got = np.load(out / f"{video['video_id']}.npy").astype(np.float32)
        assert got.shape == expected.shape
        cosine = (got * expected).sum(axis=1) / np.linalg.norm(got, axis=1)
        assert cosine.min() >= 0.999, video["video_id"]


def test_no_workers_and_other_batches_give_the_same_features(world, full_run, clip, tmp_path):
    out, _ = full_run
    videos = list_videos(world[0])[:5]
    extract_shard(videos, tmp_path, FPS, clip, batch_size=64, num_workers=0, max_failed_fraction=0.0, progress=False)
    for video in videos:
        a = np.load(out / f"{video.vid}.npy").astype(np.float32)
        b = np.load(tmp_path / f"{video.vid}.npy").astype(np.float32)
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_low_precision_model(world, full_run, clip, tiny_dir, tmp_path):
    """bf16 weights through open_clip's own conversion (what fp16/bf16 do on a GPU): inputs follow the weights."""
    import open_clip

    preprocess = clip[1]
    low = open_clip.create_model(f"local-dir:{tiny_dir}", precision="bf16").eval()
    videos = list_videos(world[0])[:3]
    extract_shard(
        videos, tmp_path, FPS, (low, preprocess), batch_size=16, num_workers=0, max_failed_fraction=0.0, progress=False
    )
    for video in videos:
        a = np.load(tmp_path / f"{video.vid}.npy").astype(np.float32)
        b = np.load(full_run[0] / f"{video.vid}.npy").astype(np.float32)
        assert (a * b).sum(axis=1).min() > 0.99


def test_short_video_and_fps_above_the_source_rate(clip, tmp_path):
    videos = [
        VideoSource("short", sv.write_cfr(tmp_path / "v" / "short.mp4", 30, 2)),  # 67 ms < 1/fps
        VideoSource("cfr25", sv.write_cfr(tmp_path / "v" / "cfr25.mp4", 25, 12)),
    ]
    rows = extract_shard(
        videos, tmp_path / "out", 40.0, clip, batch_size=4, num_workers=0, max_failed_fraction=0.0, progress=False
    )
    assert [r.T for r in rows] == [timing.feature_count(2 / 30, 40), timing.feature_count(12 / 25, 40)]
    short = np.load(tmp_path / "out" / "short.npy")
    assert short.shape == (3, DIM)
    assert np.array_equal(short[1], short[2])  # times 0, 25, 50 ms take frames 0, 1, 1 (at 0 and 33 ms)
    dense = np.load(tmp_path / "out" / "cfr25.npy")
    chosen = timing.choose_frames(np.arange(12) / 25, 12 / 25, 40.0)
    for i, j in zip(range(len(chosen) - 1), range(1, len(chosen))):
        if chosen[i] == chosen[j]:
            assert np.array_equal(dense[i], dense[j])  # a repeated source frame is encoded once and copied


def test_one_feature_when_shorter_than_a_sample(clip, tmp_path):
    video = VideoSource("tiny", sv.write_cfr(tmp_path / "tiny.mp4", 30, 2))
    rows = extract_shard(
        [video], tmp_path / "out", 10.0, clip, batch_size=8, num_workers=0, max_failed_fraction=0.0, progress=False
    )
    assert rows[0].T == 1
    assert np.load(tmp_path / "out" / "tiny.npy").shape == (1, DIM)


# ---------------------------------------------------------------- failures


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    sv.write_cfr(folder / "a_good.mp4", 25, 30)
    sv.write_audio_only(folder / "b_audio.mp4")
    sv.write_zero_frames(folder / "c_zero.avi")
    sv.truncate(sv.write_cfr(folder / "d_truncated.mp4", 25, 40), 0.5)
    sv.truncate(sv.write_cfr(folder / "e_truncated_fs.mp4", 25, 40, faststart=True), 0.6)
    (folder / "f_garbage.mp4").write_bytes(b"\x00not a video" * 100)
    sv.write_vfr(folder / "g_good.mp4", [3000, 4500, 3600] * 10)
    return folder


def test_broken_videos_are_recorded_and_the_shard_goes_on(clip, mixed_folder, tmp_path):
    videos = list_videos(mixed_folder)
    rows = extract_shard(
        videos, tmp_path, FPS, clip, batch_size=8, num_workers=2, max_failed_fraction=1.0, progress=False
    )
    status = {r.vid: r.status for r in rows}
    assert status == {
        "a_good": OK, "b_audio": FAILED, "c_zero": FAILED, "d_truncated": FAILED,
        "e_truncated_fs": FAILED, "f_garbage": FAILED, "g_good": OK,
    }  # fmt: skip
    for row, video in zip(rows, videos):
        if row.status == FAILED:
            assert str(video.path) in row.error
            assert row.T is None and not (tmp_path / f"{row.vid}.npy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_good.npy", "g_good.npy"]


def test_max_failed_fraction_is_enforced_after_writing_what_worked(clip, mixed_folder, tmp_path):
    videos = list_videos(mixed_folder)  # 5 of 7 fail
    with pytest.raises(FeatureError, match="5 of 7 videos failed") as caught:
        extract_shard(videos, tmp_path, FPS, clip, batch_size=8, num_workers=0, max_failed_fraction=0.5, progress=False)
    assert (tmp_path / "a_good.npy").exists() and (tmp_path / "g_good.npy").exists()
    assert len(caught.value.rows) == 7
    # at the limit it passes: 5/7 = 0.714
    extract_shard(videos, tmp_path, FPS, clip, batch_size=8, num_workers=0, max_failed_fraction=5 / 7, progress=False)


# ---------------------------------------------------------------- resuming


def test_rerun_skips_complete_files_and_redoes_the_rest(world, full_run, clip, tmp_path):
    source, _ = full_run
    videos = list_videos(world[0])[:6]
    for video in videos:
        shutil.copy2(source / f"{video.vid}.npy", tmp_path / f"{video.vid}.npy")
    (tmp_path / videos[0].path.with_suffix(".npy").name).unlink()  # never finished
    np.save(tmp_path / f"{videos[1].vid}.npy", np.zeros((3, DIM), np.float16))  # wrong shape: redone
    stale = tmp_path / f".{videos[2].vid}.npy.abcd1234.tmp"  # what a killed write leaves (mkstemp's 8 characters)
    stale.write_bytes(b"half")
    before = snapshot(tmp_path)
    rows = extract_shard(
        videos, tmp_path, FPS, clip, batch_size=7, num_workers=2, max_failed_fraction=0.0, progress=False
    )
    after = snapshot(tmp_path)
    assert all(r.status == OK for r in rows)
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed == {f"{videos[0].vid}.npy", f"{videos[1].vid}.npy"}
    assert not stale.exists()
    for video in videos:
        np.testing.assert_allclose(
            np.load(tmp_path / f"{video.vid}.npy").astype(np.float32),
            np.load(source / f"{video.vid}.npy").astype(np.float32),
            atol=2e-3,
        )


def test_rerun_of_a_finished_shard_touches_nothing(world, full_run, clip):
    out, rows = full_run
    before = snapshot(out)
    again = extract_shard(
        list_videos(world[0]), out, FPS, clip, batch_size=7, num_workers=2, max_failed_fraction=0.0, progress=False
    )
    assert again == rows
    assert snapshot(out) == before


# ---------------------------------------------------------------- index


def test_index_roundtrip(full_run, tmp_path):
    _, rows = full_run
    failed = IndexRow("broken", None, FPS, None, None, None, FAILED, "no video stream\n  file: x.mp4")
    path = write_index([*rows, failed], tmp_path / "index.parquet")
    assert read_index(path) == [*rows, failed]
    table = pd.read_parquet(path)
    assert list(table.columns) == ["vid", "T", "fps", "duration", "source_fps", "source_frames", "status", "error"]
    assert table["T"].iloc[0] == rows[0].T and pd.isna(table["T"].iloc[-1])
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary left


def test_merge_shard_indexes(world, full_run, tmp_path):
    _, rows = full_run
    videos = list_videos(world[0])
    paths = []
    for shard in range(3):
        mine = {v.vid for v in select_shard(videos, shard, 3)}
        paths.append(write_index([r for r in rows if r.vid in mine], tmp_path / f"shard{shard}.parquet"))
    merged = merge_indexes(paths, tmp_path / "all.parquet")
    assert merged == sorted(rows, key=lambda r: r.vid)
    assert read_index(tmp_path / "all.parquet") == merged
    with pytest.raises(FeatureError, match="two shard indexes"):
        merge_indexes([paths[0], paths[0]], tmp_path / "dup.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nope")
    with pytest.raises(FeatureError, match="cannot read"):
        read_index(tmp_path / "bad.parquet")
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(FeatureError, match="not a features index"):
        read_index(tmp_path / "other.parquet")


# ---------------------------------------------------------------- small things


def test_arguments_are_checked(clip, tmp_path):
    ok = {"batch_size": 8, "num_workers": 0, "max_failed_fraction": 0.0}
    with pytest.raises(FeatureError):
        extract_shard([], tmp_path, 0.0, clip, **ok)
    with pytest.raises(FeatureError):
        extract_shard([], tmp_path, 1.0, clip, **(ok | {"batch_size": 0}))
    with pytest.raises(FeatureError):
        extract_shard([], tmp_path, 1.0, clip, **ok, backend="ffmpeg")
    assert extract_shard([], tmp_path, 1.0, clip, **ok, progress=False) == []
    assert os.listdir(tmp_path) == []
