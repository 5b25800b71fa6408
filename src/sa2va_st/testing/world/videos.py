"""Real MP4 videos (PyAV, libx264, yuv420p) whose events happen at known times.

Every video shows one shape gliding back and forth (so frames differ) and, for
each event, a coloured square in a corner that is visible exactly in the frames
whose presentation time t satisfies start <= t < end.  Times are exact
fractions: a frame's time is pts * time_base, never a rounded float.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from ..media import encode_video
from .shapes import PALETTE, RGB, indefinite_article, place_shape, rasterize

CORNERS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")
VFR_TIME_BASE = Fraction(1, 90_000)  # the MPEG-TS clock, common in variable-frame-rate phone videos


@dataclass(frozen=True)
class Event:
    """A square of one colour, visible in one corner during [start, end) seconds."""

    start: Fraction
    end: Fraction
    colour: str
    corner: str
    name_corner: bool = True  # False for rotated videos, where corners depend on the player

    @property
    def sentence(self) -> str:
        where = f" in the {self.corner} corner" if self.name_corner else ""
        return f"{indefinite_article(self.colour)} {self.colour} square appears{where}"

    def visible_at(self, t: Fraction) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class Mover:
    """The always-present shape, moving horizontally as a triangle wave."""

    kind: str
    colour: str
    period_s: float


@dataclass(frozen=True)
class VideoPlan:
    """Everything needed to render, encode and describe one video."""

    video_id: str
    width: int
    height: int
    nominal_fps: Fraction
    time_base: Fraction
    pts: tuple[int, ...]  # per frame, in time_base units
    end_pts: int  # end of the last frame (= duration in time_base units)
    vfr: bool
    rotation_degrees: int
    background: RGB
    mover: Mover
    events: tuple[Event, ...]

    @property
    def duration(self) -> Fraction:
        return self.end_pts * self.time_base

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    def frame_time(self, k: int) -> Fraction:
        return self.pts[k] * self.time_base

    def frame_duration(self, k: int) -> int:
        following = self.pts[k + 1] if k + 1 < len(self.pts) else self.end_pts
        return following - self.pts[k]


def cfr_timing(fps: Fraction, target_seconds: float) -> tuple[Fraction, tuple[int, ...], int]:
    """(time_base, pts, end_pts) for a constant frame rate: time_base 1/fps, pts 0, 1, 2, ..."""
    frames = max(1, round(target_seconds * fps))
    return 1 / fps, tuple(range(frames)), frames


def vfr_timing(rng: np.random.Generator, target_seconds: float) -> tuple[Fraction, tuple[int, ...], int]:
    """Irregular frame gaps of 1/30, 1/25 and 1/20 s on a 1/90000 clock (mean about 25 fps)."""
    gaps = (3000, 3600, 4500)
    pts = [0]
    target = round(target_seconds / VFR_TIME_BASE)
    while True:
        following = pts[-1] + gaps[int(rng.integers(len(gaps)))]
        if following >= target:
            return VFR_TIME_BASE, tuple(pts), following
        pts.append(following)


def tenth(value: float) -> Fraction:
    """A time rounded to 0.1 s, the resolution of Charades-STA."""
    return Fraction(round(value * 10), 10)


def sample_free_events(
    rng: np.random.Generator, duration: Fraction, count: int, colours: list[str], name_corner: bool
) -> list[Event]:
    """`count` events with distinct colours and corners, windows on a 0.1 s grid inside the video."""
    corners = [CORNERS[int(k)] for k in rng.permutation(len(CORNERS))[:count]]
    seconds = float(duration)
    events = []
    for colour, corner in zip(colours, corners, strict=True):
        length = float(rng.uniform(max(0.5, 0.1 * seconds), max(0.6, 0.45 * seconds)))
        start = tenth(float(rng.uniform(0, max(0.0, seconds - length))))
        end = min(tenth(float(start) + length), Fraction(math.floor(seconds * 10), 10))
        if end <= start:
            end = start + Fraction(1, 10)
        events.append(Event(start, end, colour, corner, name_corner))
    return sorted(events, key=lambda e: (e.start, e.end))


def event_colours(rng: np.random.Generator, count: int, mover_colour: str) -> list[str]:
    """Distinct colours for the events, none equal to the moving shape's."""
    choices = [c for c in PALETTE if c != mover_colour]
    return [choices[int(k)] for k in rng.permutation(len(choices))[:count]]


def mover_position(plan: VideoPlan, t: Fraction) -> tuple[float, float, float]:
    """(radius, cx, cy) of the moving shape at time t: a triangle wave across the middle row."""
    radius = plan.height / 8
    left, right = radius + 2, plan.width - radius - 2
    phase = (float(t) / plan.mover.period_s) % 1.0
    fraction = 2 * phase if phase < 0.5 else 2 - 2 * phase
    return radius, left + fraction * (right - left), plan.height / 2


def corner_box(corner: str, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of an event square: a third of the height, 2 px inside a corner of the centred
    height x height square, the part of a landscape frame that CLIP's centre crop keeps, so that every
    event is in the features (a square in the frame's own corner would be cut away)."""
    side = height // 3
    left = max(0, (width - height) // 2)
    x0 = left + 2 if "left" in corner else left + min(width, height) - 2 - side
    y0 = 2 if "top" in corner else height - 2 - side
    return x0, y0, x0 + side, y0 + side


def render_frame(plan: VideoPlan, k: int) -> np.ndarray:
    """RGB frame k: background, the moving shape, and the squares of the events under way."""
    t = plan.frame_time(k)
    frame = np.empty((plan.height, plan.width, 3), dtype=np.uint8)
    frame[:] = plan.background
    radius, cx, cy = mover_position(plan, t)
    shape = place_shape(plan.mover.kind, plan.mover.colour, radius, cx, cy)
    frame[rasterize(shape.polygon, plan.height, plan.width).astype(bool)] = PALETTE[plan.mover.colour]
    for event in plan.events:
        if event.visible_at(t):
            x0, y0, x1, y1 = corner_box(event.corner, plan.width, plan.height)
            frame[y0:y1, x0:x1] = PALETTE[event.colour]
    return frame


def encode_mp4(plan: VideoPlan) -> bytes:
    """H.264/yuv420p in MP4 with the plan's exact pts and frame durations."""
    return encode_video(
        lambda k: render_frame(plan, k),
        plan.pts,
        plan.time_base,
        plan.end_pts,
        width=plan.width,
        height=plan.height,
        nominal_fps=plan.nominal_fps,
        rotation_degrees=plan.rotation_degrees,
    )


def read_back_rotation(mp4: bytes) -> int:
    """The rotation a decoder reports for the first frame (0 when no display matrix survived)."""
    with av.open(io.BytesIO(mp4)) as container:
        for frame in container.decode(video=0):
            return int(round(frame.rotation))
    return 0


def fps_text(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def plan_record(plan: VideoPlan) -> dict:
    """The JSON ground truth of one video (path fields are added by the caller)."""
    return {
        "video_id": plan.video_id,
        "width": plan.width,
        "height": plan.height,
        "fps": round(float(plan.nominal_fps), 6),
        "fps_fraction": fps_text(plan.nominal_fps),
        "time_base": fps_text(plan.time_base),
        "duration": round(float(plan.duration), 6),
        "frame_count": plan.frame_count,
        "average_fps": round(plan.frame_count / float(plan.duration), 6),
        "vfr": plan.vfr,
        "pts": list(plan.pts) if plan.vfr else None,
        "rotation_degrees": plan.rotation_degrees,
        "mover": {"kind": plan.mover.kind, "colour": plan.mover.colour, "period_s": plan.mover.period_s},
        "events": [
            {
                "start": float(e.start),
                "end": float(e.end),
                "colour": e.colour,
                "rgb": list(PALETTE[e.colour]),
                "corner": e.corner,
                "box_xyxy_coded": list(corner_box(e.corner, plan.width, plan.height)),  # before any display rotation
                "sentence": e.sentence,
            }
            for e in plan.events
        ],
    }
