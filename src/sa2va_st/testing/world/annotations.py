"""Temporal grounding annotations: Charades-STA text and DiDeMo JSON, over planned videos.

Charades-STA lines are `VID START END##sentence.` with one-decimal seconds.
Like the real files, some lines are wrong on purpose: a window ending after
the video, a window whose start is after its end.  Every such line is listed
(with the true window) so tests can check that consumers repair and count them.

DiDeMo entries give each of 4 annotators' window as 5-second chunk indices
[s, e]; the majority window is exactly the event ([5s, min(5(e+1), duration)]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from .archives import json_bytes
from .scale import WorldScale
from .shapes import BACKGROUNDS, PALETTE, SHAPE_KINDS
from .videos import CORNERS, Event, Mover, VideoPlan, cfr_timing, event_colours, sample_free_events, vfr_timing

NTSC_FPS = Fraction(30000, 1001)
CHUNK_SECONDS = 5
DIDEMO_ANNOTATORS = 4
VIDEO_SIZES: tuple[tuple[int, int], ...] = ((96, 64), (128, 96))  # (width, height), even for yuv420p

CHARADES_DIR = "static/charades"
CHARADES_ZIP = f"{CHARADES_DIR}/Charades_v1_480.zip"
CHARADES_MEMBER_DIR = "Charades_v1_480"
CHARADES_STA_FILES = {
    "train": f"{CHARADES_DIR}/charades_sta_train.txt",
    "test": f"{CHARADES_DIR}/charades_sta_test.txt",
}
DIDEMO_VIDEO_DIR = "manual/didemo_videos"
DIDEMO_SPLIT_FILES = {"train": "train_data.json", "val": "val_data.json", "test": "test_data.json"}


@dataclass(frozen=True)
class CharadesSpec:
    """One Charades video to make: length, rate, split and what is special about it."""

    target_seconds: float
    fps: Fraction
    split: str | None  # None: in the video archive but in no annotation file (as in the real data)
    vfr: bool = False
    rotated: bool = False
    flaw: str | None = None  # "end_after_video" or "start_after_end"


CHARADES_SPECS: tuple[CharadesSpec, ...] = (
    CharadesSpec(2.0, Fraction(24), "train"),
    CharadesSpec(3.5, Fraction(25), "test"),
    CharadesSpec(6.0, Fraction(30), "train"),
    CharadesSpec(9.0, NTSC_FPS, "train", flaw="end_after_video"),
    CharadesSpec(12.0, Fraction(25), "train", vfr=True),
    CharadesSpec(16.0, Fraction(24), "test", flaw="end_after_video"),
    CharadesSpec(21.0, Fraction(25), "train", flaw="start_after_end"),
    CharadesSpec(27.0, NTSC_FPS, "test", rotated=True),
    CharadesSpec(33.0, Fraction(30), "train"),
    CharadesSpec(45.0, Fraction(24), "train"),
    CharadesSpec(60.0, Fraction(30), "test"),
    CharadesSpec(90.0, Fraction(24), "train"),
    CharadesSpec(4.0, Fraction(25), None),
)

DIDEMO_SPECS: tuple[tuple[float, Fraction, str], ...] = (
    (12.0, Fraction(25), "train"),
    (18.5, Fraction(30), "train"),
    (30.0, Fraction(24), "train"),
    (25.0, NTSC_FPS, "val"),
    (22.0, Fraction(25), "test"),
)

# Plain videos added per extra unit of WorldScale (train, held-out): no flaw, constant rate.
CHARADES_EXTRA: dict[str, tuple[CharadesSpec, ...]] = {
    "train": tuple(CharadesSpec(s, Fraction(f), "train") for s, f in ((10.0, 25), (15.0, 30), (20.0, 24), (30.0, 25))),
    "test": tuple(CharadesSpec(s, Fraction(f), "test") for s, f in ((12.0, 25), (24.0, 30))),
}
DIDEMO_EXTRA: dict[str, tuple[tuple[float, Fraction, str], ...]] = {
    "train": ((15.0, Fraction(25), "train"), (25.0, Fraction(30), "train")),
    "test": ((20.0, Fraction(25), "test"),),
}


def scaled_specs(base: tuple, extra: dict[str, tuple], scale: WorldScale) -> tuple:
    """The base specs, then `factor - 1` copies of each split's extra specs."""
    added = [spec for split, specs in extra.items() for _ in range(scale.split_factor(split) - 1) for spec in specs]
    return (*base, *added)


@dataclass(frozen=True)
class PlannedVideo:
    """A plan plus where it belongs."""

    plan: VideoPlan
    dataset: str
    split: str | None
    path: str  # relative to the world root: a file, or the zip holding it
    member: str | None  # the zip entry, when inside a zip


@dataclass(frozen=True)
class TemporalAnnotations:
    videos: list[PlannedVideo]
    files: dict[str, bytes]  # relative to the world root (Charades-STA text) or to the DiDeMo repo
    flaws: list[dict]
    summary: dict


def charades_ids(rng: np.random.Generator, count: int) -> list[str]:
    """Five upper-case letters/digits, like 'AO8RW'."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    ids: list[str] = []
    while len(ids) < count:
        candidate = "".join(alphabet[int(k)] for k in rng.integers(len(alphabet), size=5))
        if candidate not in ids and not candidate.isdigit():
            ids.append(candidate)
    return ids


def didemo_names(rng: np.random.Generator, count: int) -> list[str]:
    """Flickr-style names as in DiDeMo: '<8 digits>@N<2 digits>_<10 digits>_<10 hex>.mp4'."""
    names = []
    for _ in range(count):
        user = "".join(str(int(d)) for d in rng.integers(10, size=8))
        photo = "".join(str(int(d)) for d in rng.integers(10, size=10))
        secret = "".join("0123456789abcdef"[int(d)] for d in rng.integers(16, size=10))
        names.append(f"{user}@N0{int(rng.integers(1, 9))}_{photo}_{secret}.mp4")
    return names


def random_mover(rng: np.random.Generator) -> Mover:
    kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
    colour = list(PALETTE)[int(rng.integers(len(PALETTE)))]
    return Mover(kind, colour, round(float(rng.uniform(3.0, 8.0)), 2))


def events_for_length(seconds: float) -> int:
    """Longer videos get more described events (1 to 4)."""
    return 1 if seconds < 3 else (2 if seconds < 15 else (3 if seconds < 40 else 4))


def extend_last_event_to_end(events: list[Event], duration: Fraction) -> list[Event]:
    """The event that ends last now lasts until the video ends (the true window of an overlong line)."""
    last = max(range(len(events)), key=lambda k: events[k].end)
    events = list(events)
    events[last] = replace(events[last], end=duration)
    return sorted(events, key=lambda e: (e.start, e.end))


def charades_plan(rng: np.random.Generator, video_id: str, spec: CharadesSpec) -> VideoPlan:
    width, height = VIDEO_SIZES[int(rng.integers(len(VIDEO_SIZES)))]
    if spec.vfr:
        time_base, pts, end_pts = vfr_timing(rng, spec.target_seconds)
    else:
        time_base, pts, end_pts = cfr_timing(spec.fps, spec.target_seconds)
    duration = end_pts * time_base
    mover = random_mover(rng)
    count = events_for_length(spec.target_seconds)
    events = sample_free_events(
        rng, duration, count, event_colours(rng, count, mover.colour), name_corner=not spec.rotated
    )
    if spec.flaw == "end_after_video":
        events = extend_last_event_to_end(events, duration)
    return VideoPlan(
        video_id,
        width,
        height,
        spec.fps,
        time_base,
        pts,
        end_pts,
        spec.vfr,
        90 if spec.rotated else 0,
        BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        mover,
        tuple(events),
    )


def seconds_text(value: Fraction) -> str:
    return f"{float(value):.1f}"


def charades_line(video_id: str, start: Fraction, end: Fraction, sentence: str) -> str:
    return f"{video_id} {seconds_text(start)} {seconds_text(end)}##{sentence}.\n"


def flawed_window(rng: np.random.Generator, event: Event, duration: Fraction, flaw: str) -> tuple[Fraction, Fraction]:
    """The window a flawed line states instead of the true one."""
    if flaw == "end_after_video":
        overshoot = Fraction(round(float(rng.uniform(0.6, 3.0)) * 10), 10)
        return event.start, Fraction(math.ceil(duration * 10), 10) + overshoot
    if flaw == "start_after_end":
        return event.end, event.start
    raise ValueError(f"unknown flaw {flaw!r}")


def flaw_target(events: tuple[Event, ...], duration: Fraction, flaw: str) -> int:
    """Which event of the video carries the flaw."""
    if flaw == "end_after_video":
        return next(k for k, e in enumerate(events) if e.end == duration)
    return 0


def build_charades(rng: np.random.Generator, scale: WorldScale) -> TemporalAnnotations:
    """Charades videos (in the archive) and Charades-STA train/test text with injected flaws."""
    specs = scaled_specs(CHARADES_SPECS, CHARADES_EXTRA, scale)
    ids = charades_ids(rng, len(specs))
    videos, flaws = [], []
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for video_id, spec in zip(ids, specs, strict=True):
        plan = charades_plan(rng, video_id, spec)
        videos.append(PlannedVideo(plan, "charades", spec.split, CHARADES_ZIP, f"{CHARADES_MEMBER_DIR}/{video_id}.mp4"))
        if spec.split is None:
            continue
        flawed = flaw_target(plan.events, plan.duration, spec.flaw) if spec.flaw else -1
        for k, event in enumerate(plan.events):
            start, end = event.start, event.end
            if k == flawed:
                start, end = flawed_window(rng, event, plan.duration, spec.flaw)
                flaws.append(
                    {
                        "dataset": "charades",
                        "file": CHARADES_STA_FILES[spec.split],
                        "line": len(lines[spec.split]) + 1,
                        "video_id": video_id,
                        "kind": spec.flaw,
                        "written": [float(start), float(end)],
                        "true": [float(event.start), float(event.end)],
                        "duration": round(float(plan.duration), 6),
                    }
                )
            lines[spec.split].append(charades_line(video_id, start, end, event.sentence))
    files = {CHARADES_STA_FILES[split]: "".join(text).encode("utf-8") for split, text in lines.items()}
    summary = {
        "archive": CHARADES_ZIP,
        "member_dir": CHARADES_MEMBER_DIR,
        "video_count": len(videos),
        "annotated_video_count": sum(v.split is not None for v in videos),
        "splits": {
            split: {
                "file": CHARADES_STA_FILES[split],
                "video_count": sum(v.split == split for v in videos),
                "query_count": len(lines[split]),
            }
            for split in ("train", "test")
        },
        "unannotated_videos": [v.plan.video_id for v in videos if v.split is None],
    }
    return TemporalAnnotations(videos, files, flaws, summary)


def chunk_events(
    rng: np.random.Generator, duration: Fraction, count: int, mover_colour: str
) -> list[tuple[Event, int, int]]:
    """(event, first chunk, last chunk): events whose windows are whole 5-second chunks (the last may be short)."""
    segments = math.ceil(duration / CHUNK_SECONDS)
    colours = event_colours(rng, count, mover_colour)
    corners = [CORNERS[int(k)] for k in rng.permutation(len(CORNERS))[:count]]
    result = []
    for colour, corner in zip(colours, corners, strict=True):
        first = int(rng.integers(segments))
        last = min(segments - 1, first + int(rng.integers(2)))
        start = Fraction(CHUNK_SECONDS * first)
        end = min(Fraction(CHUNK_SECONDS * (last + 1)), duration)
        result.append((Event(start, end, colour, corner), first, last))
    return sorted(result, key=lambda r: (r[1], r[2]))


def annotator_times(rng: np.random.Generator, first: int, last: int, segments: int) -> list[list[int]]:
    """Four annotators: three agree on [first, last], one is off by a chunk; order shuffled."""
    candidates = [[first, last + 1], [first - 1, last], [first + 1, last], [first, last - 1]]
    valid = [c for c in candidates if 0 <= c[0] <= c[1] < segments]
    deviant = valid[int(rng.integers(len(valid)))]
    times = [[first, last]] * (DIDEMO_ANNOTATORS - 1) + [deviant]
    return [list(times[int(k)]) for k in rng.permutation(DIDEMO_ANNOTATORS)]


def build_didemo(rng: np.random.Generator, scale: WorldScale) -> TemporalAnnotations:
    """DiDeMo videos (a local folder) and train/val/test JSON with chunk-index windows."""
    specs = scaled_specs(DIDEMO_SPECS, DIDEMO_EXTRA, scale)
    names = didemo_names(rng, len(specs))
    annotation_ids = iter(sorted(int(v) for v in rng.choice(40_000, size=len(specs) * 4, replace=False)))
    videos = []
    entries: dict[str, list[dict]] = {split: [] for split in DIDEMO_SPLIT_FILES}
    for name, (seconds, fps, split) in zip(names, specs, strict=True):
        width, height = VIDEO_SIZES[int(rng.integers(len(VIDEO_SIZES)))]
        time_base, pts, end_pts = cfr_timing(fps, seconds)
        duration = end_pts * time_base
        segments = math.ceil(duration / CHUNK_SECONDS)
        mover = random_mover(rng)
        planned = chunk_events(rng, duration, 2 if seconds < 20 else 3, mover.colour)
        plan = VideoPlan(
            name[: -len(".mp4")],
            width,
            height,
            fps,
            time_base,
            pts,
            end_pts,
            False,
            0,
            BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
            mover,
            tuple(e for e, _, _ in planned),
        )
        videos.append(PlannedVideo(plan, "didemo", split, f"{DIDEMO_VIDEO_DIR}/{name}", None))
        for event, first, last in planned:
            entries[split].append(
                {
                    "annotation_id": next(annotation_ids),
                    "description": event.sentence,
                    "video": name,
                    "times": annotator_times(rng, first, last, segments),
                    "num_segments": segments,
                }
            )
    files = {DIDEMO_SPLIT_FILES[split]: json_bytes(entries[split]) for split in DIDEMO_SPLIT_FILES}
    summary = {
        "video_dir": DIDEMO_VIDEO_DIR,
        "video_count": len(videos),
        "splits": {
            split: {
                "file": DIDEMO_SPLIT_FILES[split],
                "video_count": sum(v.split == split for v in videos),
                "annotation_count": len(entries[split]),
            }
            for split in DIDEMO_SPLIT_FILES
        },
    }
    return TemporalAnnotations(videos, files, [], summary)
