"""Probing and reading frames (features.decode): world videos, rotation, decord vs PyAV, broken files."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sa2va_st.features import FeatureError, timing
from sa2va_st.features.decode import decord, probe_video, read_frames, upright
from sa2va_st.testing import media as sv

needs_decord = pytest.mark.skipif(decord is None, reason="decord is not installed")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    _, records = sv.synthetic_world_videos(tmp_path_factory.getbasetemp() / "features_world")
    return records


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("decode")
    made = {
        "cfr25": sv.write_cfr(root / "cfr25.mp4", 25, 60),
        "vfr": sv.write_vfr(root / "vfr.mp4", [3000, 3600, 4500, 4500, 3000, 3600] * 10),
        "short": sv.write_cfr(root / "short.mp4", 30, 2),
        "audio": sv.write_audio_only(root / "audio.mp4"),
        "zero": sv.write_zero_frames(root / "zero.avi"),
        "truncated": sv.truncate(sv.write_cfr(root / "truncated.mp4", 25, 60), 0.5),
        "truncated_faststart": sv.truncate(sv.write_cfr(root / "truncated_fs.mp4", 25, 60, faststart=True), 0.6),
    }
    for degrees in (90, 180, 270):
        made[f"rot{degrees}"] = sv.write_cfr(root / f"rot{degrees}.mp4", 25, 20, rotation_degrees=degrees)
        made[f"rot{degrees}_big"] = sv.write_cfr(
            root / f"rot{degrees}_big.mp4", 25, 20, width=128, height=96, rotation_degrees=degrees
        )
    garbage = root / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    made["garbage"] = garbage
    return made


def chosen(probe, fps: float = 10) -> np.ndarray:
    return np.unique(timing.choose_frames(probe.frame_times_s, probe.duration_s, fps))


# ---------------------------------------------------------------- probe


def test_probe_matches_the_world_description(world):
    for video in world:
        probe = probe_video(video["file"])
        assert probe.frame_count == video["frame_count"], video["video_id"]
        assert probe.duration_s == pytest.approx(video["duration"], abs=1e-5), video["video_id"]
        assert probe.rotation_degrees == video["rotation_degrees"] % 360
        if video["vfr"]:
            time_base = Fraction(video["time_base"])
            expected = [float(p * time_base) for p in video["pts"]]
            np.testing.assert_allclose(probe.frame_times_s, expected, atol=1e-9)
            assert probe.source_fps == pytest.approx(video["frame_count"] / video["duration"], rel=1e-5)


def test_world_has_the_cases_we_need(world):
    assert any(v["vfr"] for v in world)
    assert any(v["rotation_degrees"] for v in world)
    assert len({v["fps"] for v in world}) >= 3


# ---------------------------------------------------------------- decord and PyAV agree


@needs_decord
def test_decord_and_pyav_agree_on_world_videos(world):
    for video in world:
        probe = probe_video(video["file"])
        wanted = chosen(probe)
        a = read_frames(probe, wanted, backend="decord")
        b = read_frames(probe, wanted, backend="pyav")
        assert (a.backend, b.backend) == ("decord", "pyav")
        assert a.frames.shape == b.frames.shape == (len(wanted), *probe.display_size, 3)
        assert np.abs(a.frames.astype(np.int16) - b.frames).mean() < 0.5, video["video_id"]
        # decord's own (float32) timestamps give the same frame choice as the exact probe
        reader = decord.VideoReader(video["file"])
        stamps = reader.get_frame_timestamp(np.arange(len(reader)))[:, 0].astype(np.float64)
        own = timing.choose_frames(stamps - stamps[0], probe.duration_s, 10)
        assert np.array_equal(own, timing.choose_frames(probe.frame_times_s, probe.duration_s, 10))


@pytest.mark.parametrize("name", ["cfr25", "vfr", "short"])
@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_the_chosen_frames_are_the_ones_read(samples, name, backend):
    """Each frame shows its own number: what comes back is exactly the frames the rule chose."""
    probe = probe_video(samples[name])
    for fps in (3, 10):
        wanted = chosen(probe, fps)
        frames = read_frames(probe, wanted, backend=backend).frames
        assert [sv.read_frame_number(f) for f in frames] == wanted.tolist()


def test_chunks_and_transform(samples):
    probe = probe_video(samples["cfr25"])
    wanted = chosen(probe)
    whole = read_frames(probe, wanted, backend="pyav").frames
    halves = read_frames(probe, wanted, backend="pyav", chunk_size=5, transform=lambda c: c[:, ::2, ::2]).frames
    assert np.array_equal(halves, whole[:, ::2, ::2])


# ---------------------------------------------------------------- rotation


def pyav_upright(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k == index:
                return np.rot90(frame.to_ndarray(format="rgb24"), k=round(frame.rotation / 90))
    raise AssertionError("frame not found")


def test_rotated_world_video_is_upright(world):
    video = next(v for v in world if v["rotation_degrees"] == 90)
    probe = probe_video(video["file"])
    assert (probe.width, probe.height) == (video["width"], video["height"])  # coded 128x96
    assert probe.display_size == (video["width"], video["height"])  # shown 96 wide, 128 high
    frames = read_frames(probe, chosen(probe)[:3], backend="pyav").frames
    assert frames.shape[1:] == (video["width"], video["height"], 3)


@pytest.mark.parametrize("degrees", [90, 180, 270])
@pytest.mark.parametrize("size", ["", "_big"])
def test_rotation_applied_counter_clockwise(samples, degrees, size):
    path = samples[f"rot{degrees}{size}"]
    probe = probe_video(path)
    assert probe.rotation_degrees == degrees
    wanted = np.array([0, 7])
    frames = read_frames(probe, wanted, backend="auto").frames
    assert frames.shape == (2, *probe.display_size, 3)
    for frame, k in zip(frames, wanted):
        assert np.abs(frame.astype(np.int16) - pyav_upright(path, int(k))).mean() < 0.5
        # undo the display rotation: the coded picture, with its white top-left marker and frame number
        coded = np.rot90(frame, k=-degrees // 90)
        height, width = coded.shape[:2]
        assert coded[: height // 2 - 2, : width // 4 - 2].mean() > 200
        assert sv.read_frame_number(coded) == k


@needs_decord
def test_decord_rotation_matches_ours_where_decord_copes(samples):
    """decord 0.6 rotates by itself; on 128x96 its pixels equal ours, on 64x48 it fails and PyAV takes over."""
    for degrees in (90, 180, 270):
        probe = probe_video(samples[f"rot{degrees}_big"])
        a = read_frames(probe, np.array([0, 5]), backend="decord")
        b = read_frames(probe, np.array([0, 5]), backend="pyav")
        assert np.abs(a.frames.astype(np.int16) - b.frames).mean() < 0.5
    small = probe_video(samples["rot90"])
    assert read_frames(small, np.array([0, 5]), backend="auto").backend == "pyav"
    with pytest.raises(FeatureError):
        read_frames(small, np.array([0, 5]), backend="decord")


def test_upright_is_np_rot90():
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    assert upright(image, 0) is image
    assert np.array_equal(upright(image, 90), np.rot90(image))
    assert upright(image, 270).shape == (4, 2, 3)


# ---------------------------------------------------------------- broken inputs


@pytest.mark.parametrize(
    "name, message",
    [
        ("audio", "no video stream"),
        ("zero", "zero frames"),
        ("truncated", "cannot read the video container"),
        ("truncated_faststart", "truncated"),
        ("garbage", "cannot read the video container"),
    ],
)
def test_broken_inputs_raise_feature_error_naming_the_file(samples, name, message):
    with pytest.raises(FeatureError) as caught:
        probe_video(samples[name])
    assert message in str(caught.value)
    assert str(samples[name]) in str(caught.value)


def test_frames_over_the_size_limit_are_refused_before_any_is_decoded(tmp_path):
    """A real 8256x8200 video (one black frame): refused from its header, with the size and the fix."""
    from sa2va_st.features.decode import MAX_FRAME_PIXELS

    width, height = 8256, 8200
    assert width * height > MAX_FRAME_PIXELS
    path = sv.encode_video_file(
        tmp_path / "huge.mp4", lambda k: np.zeros((height, width, 3), np.uint8), [0], Fraction(1, 25), 1,
        width=width, height=height,
    )  # fmt: skip
    with pytest.raises(FeatureError) as caught:
        probe_video(path)
    assert "8256x8200" in str(caught.value) and str(path) in str(caught.value) and "ffmpeg" in str(caught.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_still_image_under_a_video_name_is_refused(tmp_path, fmt):
    """FFmpeg would read a picture as a one-frame "video" of 0.04 s; the file's name says .mp4."""
    from PIL import Image

    path = tmp_path / "clip.mp4"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(path, format=fmt)
    with pytest.raises(FeatureError, match="a still image") as caught:
        probe_video(path)
    assert str(path) in str(caught.value)


def test_a_video_under_another_extension_is_read_by_its_content(samples, tmp_path):
    renamed = tmp_path / "clip.webm"
    shutil.copy(samples["cfr25"], renamed)
    a, b = probe_video(samples["cfr25"]), probe_video(renamed)
    assert a.pts == b.pts and a.display_size == b.display_size
    wanted = np.array([0, 3, 7])
    assert np.array_equal(read_frames(a, wanted).frames, read_frames(b, wanted).frames)


def test_missing_file(tmp_path):
    with pytest.raises(FeatureError, match="not found"):
        probe_video(tmp_path / "absent.mp4")


def test_truncated_file_that_still_probes_fails_to_read(samples, tmp_path):
    """A file cut inside its last frames: the header survives, the missing frames are reported, not invented."""
    path = sv.write_cfr(tmp_path / "cut.mp4", 25, 60, faststart=True)
    probe = probe_video(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])  # lose the data of the last frames
    wanted = chosen(probe)
    with pytest.raises(FeatureError) as caught:
        read_frames(probe, wanted, backend="pyav")
    assert str(path) in str(caught.value)


def test_indices_must_be_increasing(samples):
    probe = probe_video(samples["cfr25"])
    for bad in ([], [3, 3], [5, 2], [0, probe.frame_count]):
        with pytest.raises(ValueError):
            read_frames(probe, np.array(bad, dtype=np.int64))
    with pytest.raises(ValueError):
        read_frames(probe, np.array([0]), backend="ffmpeg")


def test_corrupted_frame_data_is_an_error_not_a_guess(tmp_path):
    """Garbage in the middle of the frame data: the header is intact, decoding fails, both backends refuse."""
    path = sv.write_cfr(tmp_path / "corrupt.mp4", 25, 100, width=128, height=96, faststart=True)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    probe = probe_video(path)
    with pytest.raises(FeatureError) as caught:
        read_frames(probe, np.arange(0, 100, 2), backend="auto")
    assert str(path) in str(caught.value)


@needs_decord
def test_decord_failing_part_way_hands_the_rest_to_pyav(samples, monkeypatch):
    from sa2va_st.features import decode

    real = decode._decord_chunks

    def first_chunk_then_fail(*args, **kwargs):
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise RuntimeError("decord gave up")

    probe = probe_video(samples["vfr"])
    wanted = chosen(probe)
    expected = read_frames(probe, wanted, backend="pyav").frames
    monkeypatch.setattr(decode, "_decord_chunks", first_chunk_then_fail)
    result = read_frames(probe, wanted, backend="auto", chunk_size=4)
    assert result.backend == "decord+pyav"
    assert [sv.read_frame_number(f) for f in result.frames] == wanted.tolist()
    assert np.abs(result.frames.astype(np.int16) - expected).mean() < 0.5
