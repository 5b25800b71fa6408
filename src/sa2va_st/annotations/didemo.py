"""DiDeMo: JSON lists of {annotation_id, description, video, times, num_segments}.

`times` holds one [s, e] per annotator (usually 4), in 5-second chunk indices: chunk k covers
seconds [5k, 5(k+1)). The target is the most agreed window (the mode of the annotators' windows;
a tie goes to the earliest window, i.e. the smallest (s, e)), in seconds [5 s, 5 (e + 1)],
clipped to the video's duration when it is known. special_jsons do not know durations (they come
from the videos, in the manifests stage), so they store the unclipped window and the manifests clip.

An annotator window with s > e is ordered and counted; a chunk index past `num_segments` is kept
and counted. Malformed entries (missing key, wrong type, negative index, no annotator window,
duplicate annotation_id) raise AnnotationError naming the file and entry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AnnotationError
from .common import as_int, check_not_empty, load_json, require, rounded, type_name

CHUNK_SECONDS = 5
DIDEMO_FIX = "each entry must be {annotation_id, description, video, times: [[s, e], ...], num_segments}; download the annotation file again"


@dataclass(frozen=True)
class DidemoQuery:
    annotation_id: str
    video: str  # as written (a file name such as '<id>.mp4' / '.mov')
    sentence: str
    times: tuple[tuple[int, int], ...]  # per annotator, as written
    num_segments: int
    chunks: tuple[int, int]  # the most agreed window, ordered, in chunk indices
    agreement: int  # annotators who chose it
    tie: bool  # another window had as many votes
    window: tuple[float, float]  # seconds, unclipped

    def clipped(self, duration: float) -> tuple[float, float]:
        return chunks_to_seconds(*self.chunks, duration=duration)


@dataclass
class DidemoSplit:
    split: str
    source: Path
    records: list[DidemoQuery]
    counts: dict[str, int] = field(default_factory=dict)


def chunks_to_seconds(start: int, end: int, duration: float | None = None) -> tuple[float, float]:
    """Chunk indices [s, e] to seconds [5 s, 5 (e + 1)], the end clipped to `duration` when given."""
    first, last = CHUNK_SECONDS * start, CHUNK_SECONDS * (end + 1)
    if duration is not None:
        first, last = min(first, duration), min(last, duration)
    return (rounded(first), rounded(last))


def most_agreed(windows: list[tuple[int, int]]) -> tuple[tuple[int, int], int, bool]:
    """(mode window, its votes, whether another window tied): ties go to the earliest (s, e)."""
    votes = Counter(windows)
    best = max(votes.values())
    winners = sorted(w for w, n in votes.items() if n == best)
    return winners[0], best, len(winners) > 1


def read_didemo(path: Path, split: str, videos: Collection[str] | None = None) -> DidemoSplit:
    """One DiDeMo split file."""
    data = load_json(path)
    if not isinstance(data, list):
        raise AnnotationError(
            f"the file holds a {type_name(data)}, expected a list of entries", file=str(path), fix=DIDEMO_FIX
        )
    records: list[DidemoQuery] = []
    counts: Counter = Counter()
    check_not_empty(data, path)
    ids: set[str] = set()
    for index, entry in enumerate(data):
        where = f"[{index}]"
        raw_id = require(entry, "annotation_id", (int, str), file=path, where=where, fix=DIDEMO_FIX)
        annotation_id = (
            raw_id if isinstance(raw_id, str) else str(as_int(raw_id, file=path, key=f"{where}.annotation_id"))
        )
        if annotation_id in ids:
            raise AnnotationError(
                f"annotation_id {annotation_id} appears twice",
                file=str(path),
                key=f"{where}.annotation_id",
                fix=DIDEMO_FIX,
            )
        ids.add(annotation_id)
        sentence = require(entry, "description", str, file=path, where=where, fix=DIDEMO_FIX).strip()
        video = require(entry, "video", str, file=path, where=where, fix=DIDEMO_FIX)
        if not sentence or not video:
            raise AnnotationError(
                "'description' and 'video' must not be empty", file=str(path), key=where, fix=DIDEMO_FIX
            )
        num_segments = as_int(
            require(entry, "num_segments", (int, float), file=path, where=where, fix=DIDEMO_FIX),
            file=path,
            key=f"{where}.num_segments",
        )
        if num_segments <= 0:
            raise AnnotationError(
                f"num_segments is {num_segments}", file=str(path), key=f"{where}.num_segments", fix=DIDEMO_FIX
            )
        raw_times = require(entry, "times", list, file=path, where=where, fix=DIDEMO_FIX)
        if not raw_times:
            raise AnnotationError(
                "'times' holds no annotator window", file=str(path), key=f"{where}.times", fix=DIDEMO_FIX
            )
        times, ordered = [], []
        for k, pair in enumerate(raw_times):
            key = f"{where}.times[{k}]"
            if not isinstance(pair, list) or len(pair) != 2:
                raise AnnotationError(
                    f"an annotator window must be [s, e], got {pair!r}", file=str(path), key=key, fix=DIDEMO_FIX
                )
            s, e = (as_int(v, file=path, key=key) for v in pair)
            if s < 0 or e < 0:
                raise AnnotationError(
                    f"chunk indices must be >= 0, got {pair!r}", file=str(path), key=key, fix=DIDEMO_FIX
                )
            times.append((s, e))
            ordered.append((min(s, e), max(s, e)))
            counts["reordered_annotator_windows"] += s > e
            counts["chunks_beyond_num_segments"] += max(s, e) >= num_segments
        if videos is not None and video not in videos:
            raise AnnotationError(
                f"video {video} is not among the {len(videos)} known videos",
                file=str(path),
                key=f"{where}.video",
                fix="the annotations and the videos come from different releases; fetch matching ones",
            )
        chunks, agreement, tie = most_agreed(ordered)
        counts["mode_ties"] += tie
        counts["unanimous"] += agreement == len(ordered)
        records.append(
            DidemoQuery(
                annotation_id,
                video,
                sentence,
                tuple(times),
                num_segments,
                chunks,
                agreement,
                tie,
                chunks_to_seconds(*chunks),
            )
        )
    counts["records"] = len(records)
    counts["videos"] = len({r.video for r in records})
    base = {
        "records": 0,
        "videos": 0,
        "mode_ties": 0,
        "unanimous": 0,
        "reordered_annotator_windows": 0,
        "chunks_beyond_num_segments": 0,
    }
    base.update(counts)
    return DidemoSplit(split, path, records, dict(sorted(base.items())))
