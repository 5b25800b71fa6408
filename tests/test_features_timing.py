"""The frame rule (features.timing): exact references on real videos, and property tests."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sa2va_st.features import timing
from sa2va_st.features.decode import probe_video
from sa2va_st.testing import media as sv

FPS_VALUES = (1, 2.5, 5, 10, 24)


# ---------------------------------------------------------------- exact reference, from PyAV's own decoded frames


def decoded_frame_times(path: Path) -> tuple[list[Fraction], Fraction]:
    """Every decoded frame's exact time (pts * time_base, from the first frame) and the exact duration.

    Read from PyAV's decoder output (frame.pts, frame.time_base, frame.duration), not from
    the demuxed packets the probe reads, so the two are independent.
    """
    with av.open(str(path)) as container:
        frames = [(f.pts, f.time_base, f.duration) for f in container.decode(video=0)]
    frames.sort()
    first = frames[0][0]
    times = [Fraction(p - first) * tb for p, tb, _ in frames]
    last_pts, tb, last_duration = frames[-1]
    return times, Fraction(last_pts - first + last_duration) * tb


def exact_choice(times: list[Fraction], duration: Fraction, fps: float) -> list[int]:
    """The rule in exact arithmetic, by brute force: T = #{i : i/fps < duration}; nearest, ties to the earlier."""
    rate = Fraction(fps)
    count = max(1, math.ceil(duration * rate))  # i/fps < d  <=>  i < d * fps
    chosen = []
    for i in range(count):
        s = i / rate
        gaps = [abs(t - s) for t in times]
        chosen.append(gaps.index(min(gaps)))  # index() returns the first, i.e. the earlier frame on a tie
    return chosen


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("timing")
    return {
        "cfr25": sv.write_cfr(root / "cfr25.mp4", 25, 62),
        "cfr30": sv.write_cfr(root / "cfr30.mp4", 30, 47),
        "ntsc": sv.write_video(root / "ntsc.mp4", list(range(40)), Fraction(1001, 30000), 40),
        "vfr": sv.write_vfr(root / "vfr.mp4", [3000, 3600, 4500, 3000, 4500, 4500, 3600, 3000] * 8),
        "short": sv.write_cfr(root / "short.mp4", 30, 2),  # 66.7 ms: shorter than 1/fps for fps <= 10
        "single": sv.write_cfr(root / "single.mp4", 25, 1),
        "rotated": sv.write_cfr(root / "rotated.mp4", 24, 37, rotation_degrees=90),
        "offset": sv.write_video(root / "offset.mp4", list(range(12, 40)), Fraction(1, 24), 40),  # starts at 0.5 s
    }


@pytest.mark.parametrize("name", ["cfr25", "cfr30", "ntsc", "vfr", "short", "single", "rotated", "offset"])
@pytest.mark.parametrize("fps", FPS_VALUES)
def test_rule_matches_exact_reference_on_pyav_timestamps(videos, name, fps):
    times, duration = decoded_frame_times(videos[name])
    probe = probe_video(videos[name])
    assert probe.frame_count == len(times)
    assert probe.duration_s == pytest.approx(float(duration), abs=1e-9)
    np.testing.assert_allclose(probe.frame_times_s, [float(t) for t in times], atol=1e-9)
    chosen = timing.choose_frames(probe.frame_times_s, probe.duration_s, fps)
    assert chosen.tolist() == exact_choice(times, duration, fps)


def test_short_video_gets_one_feature(videos):
    probe = probe_video(videos["short"])
    assert probe.duration_s < 1 / 10
    assert timing.choose_frames(probe.frame_times_s, probe.duration_s, 10).tolist() == [0]


def test_vfr_uses_each_frames_own_time(videos):
    """On a VFR video the rule differs from the nominal-rate guess k = round(s * mean_fps)."""
    probe = probe_video(videos["vfr"])
    chosen = timing.choose_frames(probe.frame_times_s, probe.duration_s, 10)
    naive = np.minimum(np.round(np.arange(len(chosen)) / 10 * probe.source_fps), probe.frame_count - 1)
    assert (chosen != naive).any()
    times, duration = decoded_frame_times(videos["vfr"])
    assert chosen.tolist() == exact_choice(times, duration, 10)


def test_offset_first_pts_counts_from_the_first_frame(videos):
    probe = probe_video(videos["offset"])
    assert probe.frame_times_s[0] == 0.0
    assert probe.duration_s == pytest.approx(28 / 24)


def test_rotation_does_not_change_timing(videos):
    probe = probe_video(videos["rotated"])
    assert probe.rotation_degrees == 90
    assert probe.duration_s == pytest.approx(37 / 24)


# ---------------------------------------------------------------- the count and the tie rule, by example


@pytest.mark.parametrize(
    "duration, fps, expected",
    [
        (2.0, 10, 20),  # i/fps < duration: 1.9 is the last time, 2.0 is not
        (2.05, 10, 21),
        (1.4, 10, 14),  # 1.4 * 10 == 14.000000000000002 in floats: the tolerance keeps T = 14
        (9.009, 10, 91),
        (0.0999, 10, 1),
        (0.1, 10, 1),
        (0.0, 10, 1),
        (45.0, 2.5, 113),
        (1 / 30, 10, 1),
    ],
)
def test_feature_count_examples(duration, fps, expected):
    assert timing.feature_count(duration, fps) == expected


def test_exact_tie_goes_to_the_earlier_frame():
    frames = np.array([0.0, 0.04, 0.08, 0.12, 0.16])  # 25 fps
    assert timing.nearest_frames(frames, np.array([0.1])).tolist() == [2]  # 0.08 and 0.12 are equally near
    assert timing.nearest_frames(frames, np.array([0.1 + 2e-4])).tolist() == [3]  # beyond the tolerance: later


def test_float32_noise_does_not_break_ties():
    exact = np.arange(50) / 25
    noisy = exact.astype(np.float32).astype(np.float64)  # what decord reports
    samples = timing.sample_times(2.0, 10)
    assert timing.nearest_frames(noisy, samples).tolist() == timing.nearest_frames(exact, samples).tolist()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        timing.feature_count(1.0, 0)
    with pytest.raises(ValueError):
        timing.feature_count(float("nan"), 10)
    with pytest.raises(ValueError):
        timing.nearest_frames(np.array([]), np.array([0.0]))
    with pytest.raises(ValueError):
        timing.nearest_frames(np.array([0.0, 0.2, 0.1]), np.array([0.0]))


def test_duration_is_end_of_last_frame():
    times = np.array([0.0, 0.04, 0.1])
    assert timing.stream_duration(times, 0.05) == pytest.approx(0.15)
    assert timing.stream_duration(times, None) == pytest.approx(0.1 + 0.05)  # median gap stands in
    assert timing.stream_duration(np.array([0.0]), None) == 0.0


# ---------------------------------------------------------------- properties

gaps_ms = st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=60)  # frame gaps >= 1 ms
fps_values = st.sampled_from([0.5, 1, 2, 2.5, 3, 5, 7.5, 10, 12, 15, 24, 25, 29.97, 30, 60])


@settings(max_examples=300, deadline=None)
@given(gaps=gaps_ms, fps=fps_values, last_ms=st.integers(min_value=0, max_value=200))
def test_rule_properties(gaps, fps, last_ms):
    times = np.concatenate([[0.0], np.cumsum(gaps)[:-1] / 1000.0])  # (N,)
    duration = timing.stream_duration(times, last_ms / 1000.0)
    chosen = timing.choose_frames(times, duration, fps)
    samples = timing.sample_times(duration, fps)

    # T: every counted time is inside the video, the next one is not (up to the tolerance), at least one
    T = timing.feature_count(duration, fps)
    assert len(chosen) == len(samples) == T >= 1
    assert T == 1 or (T - 1) / fps < duration
    assert T / fps >= duration - timing.TIME_TOLERANCE_S - 1e-12
    # every index valid, indices never go back in time
    assert chosen.min() >= 0 and chosen.max() < len(times)
    assert np.all(np.diff(chosen) >= 0)
    # nearest frame, ties (within the tolerance) to the earlier one
    for s, c in zip(samples, chosen):
        gap = np.abs(times - s)
        assert gap[c] <= gap.min() + timing.TIME_TOLERANCE_S + 1e-9
        assert np.all(gap[:c] >= gap[c] + timing.TIME_TOLERANCE_S - 1e-9)


@settings(max_examples=200, deadline=None)
@given(duration=st.floats(min_value=0, max_value=600, allow_nan=False), fps=fps_values)
def test_count_formula(duration, fps):
    T = timing.feature_count(duration, fps)
    assert T == max(1, sum(1 for i in range(T + 2) if i / fps < duration - timing.TIME_TOLERANCE_S))
