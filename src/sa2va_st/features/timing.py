"""Which source frame each CLIP feature comes from: the rule, as pure functions.

The rule (everything else in the stage follows it):

1. **Frame times.** A frame's time is its presentation timestamp, ``pts * time_base``
   seconds, measured from the first frame shown: ``t_k = (pts_k - pts_0) * time_base``
   with frames in presentation order. Using every frame's own pts (never
   ``k / nominal_fps``) is what makes variable-frame-rate videos come out right.
2. **Duration.** ``duration = t_last + d_last``: the last frame stays on screen for
   its own duration (the packet duration the container stores). When a container
   does not store it, the median gap between frames stands in; a single frame with
   no duration lasts 0 s. (``t_last`` alone would drop the last frame's time;
   ``frame_count / fps`` is wrong for VFR.)
3. **Count.** ``T = #{i >= 0 : i / fps < duration}``, at least 1:
   ``T = max(1, ceil(duration * fps))`` up to the tolerance below. A video
   shorter than ``1 / fps`` therefore gets exactly one feature (of its first frame).
4. **Choice.** Feature ``i`` is the frame whose time is nearest to ``s_i = i / fps``;
   a tie goes to the earlier frame. Times past the last frame take the last frame.

Tolerance: times are compared with ``TIME_TOLERANCE_S`` (0.1 ms) of slack. Exact
ties are common (a 25 fps video sampled at 10 fps puts ``s = 0.1`` exactly between
frames at 0.08 and 0.12) and float rounding (decord reports float32 seconds) would
otherwise break them at random. So: the later frame wins only when it is closer by
more than 0.1 ms, and a sample time within 0.1 ms of the end is not counted. No real
frame rate puts two distinct frame times within 0.1 ms of a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

TIME_TOLERANCE_S = 1e-4
RULE_VERSION = 1  # recorded in every feature set's identity: a change of the rule must not mix with old features


def _check_fps(fps: float) -> None:
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")


def frame_times_from_pts(pts: Sequence[int], time_base: Fraction) -> np.ndarray:
    """Seconds from the first frame, in presentation order: (N,) float64.

    Computed from exact integers (pts are integers, the time base a fraction) so
    that a tie between two frames is an exact tie before it becomes a float.
    """
    ordered = sorted(int(p) for p in pts)
    if not ordered:
        return np.zeros(0, dtype=np.float64)
    first = ordered[0]
    return np.array([float((p - first) * time_base) for p in ordered], dtype=np.float64)


def stream_duration(frame_times_s: np.ndarray, last_frame_duration_s: float | None) -> float:
    """Rule 2: the end of the last frame, ``t_last + d_last`` (seconds from the first frame)."""
    times = np.asarray(frame_times_s, dtype=np.float64)  # (N,)
    if times.size == 0:
        raise ValueError("a video without frames has no duration")
    last = float(times[-1])
    if last_frame_duration_s is not None and last_frame_duration_s > 0:
        return last + float(last_frame_duration_s)
    if times.size >= 2:
        return last + float(np.median(np.diff(times)))
    return last


def feature_count(duration_s: float, fps: float) -> int:
    """Rule 3: T = number of i >= 0 with i/fps < duration (up to the tolerance), at least 1."""
    _check_fps(fps)
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration must be a finite number >= 0, got {duration_s!r}")
    # i counts iff i < (duration - tol) * fps, so T = ceil of that bound (an integer bound excludes itself).
    return max(1, math.ceil((duration_s - TIME_TOLERANCE_S) * fps))


def sample_times(duration_s: float, fps: float) -> np.ndarray:
    """The feature times i/fps, i = 0..T-1: (T,) float64 (each computed as i/fps, never summed)."""
    return np.arange(feature_count(duration_s, fps), dtype=np.float64) / fps


def nearest_frames(frame_times_s: np.ndarray, sample_times_s: np.ndarray) -> np.ndarray:
    """Rule 4: for each sample time, the index of the nearest frame, ties to the earlier: (T,) int64.

    `frame_times_s` must be in presentation order (non-decreasing).
    """
    times = np.asarray(frame_times_s, dtype=np.float64)  # (N,)
    samples = np.asarray(sample_times_s, dtype=np.float64)  # (T,)
    if times.size == 0:
        raise ValueError("cannot choose frames from a video without frames")
    if np.any(np.diff(times) < 0):
        raise ValueError("frame times must be in presentation order")
    after = np.searchsorted(times, samples, side="left")  # (T,) first frame at or after each sample
    before = np.clip(after - 1, 0, times.size - 1)  # (T,) the frame just before
    later = np.clip(after, 0, times.size - 1)
    gap_later = times[later] - samples
    gap_before = samples - times[before]
    take_later = (after < times.size) & ((after == 0) | (gap_later < gap_before - TIME_TOLERANCE_S))
    return np.where(take_later, later, before).astype(np.int64)


def choose_frames(frame_times_s: np.ndarray, duration_s: float, fps: float) -> np.ndarray:
    """Rules 3 and 4 together: the source frame index of every feature: (T,) int64."""
    return nearest_frames(frame_times_s, sample_times(duration_s, fps))
