"""Charades-STA: the official text form and the common JSONL form.

Text (charades_sta_{train,test}.txt), one query per line: `VID START END##sentence`, times in
seconds. JSONL (e.g. charades_{train,test}_release.jsonl), one object per line: {qid, query,
duration, vid, relevant_windows: [[start, end]]}. Both readers return the same records, so the
text and JSONL forms of the same data agree query for query.

Windows are kept as written and ordered (see windows.py); blank lines are skipped and counted.
Every other deviation -- a line without `##`, a time that is not a number >= 0, an empty
sentence, a JSON line that is not an object or lacks a key, a duplicate qid, a video outside
`videos` when that set is given -- raises AnnotationError naming the file and line.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AnnotationError
from .common import as_int, as_seconds, check_not_empty, rounded, type_name
from .windows import Window, window

TEXT_FIX = "each line must read 'VID START END##sentence' with times in seconds; correct or delete this line"
JSONL_FIX = "each line must be a JSON object {qid, query, duration, vid, relevant_windows: [[start, end]]}; correct or delete this line"


@dataclass(frozen=True)
class CharadesQuery:
    qid: str  # JSONL: its qid; text: "{split}-L{line}"
    video: str
    sentence: str
    window: Window
    line: int  # 1-based line in the source file
    duration: float | None  # only the JSONL form states one; the video is the authority (manifests)


@dataclass
class CharadesSplit:
    split: str
    source: Path
    source_format: str  # text | jsonl
    records: list[CharadesQuery]
    counts: dict[str, int] = field(default_factory=dict)


def read_charades_text(path: Path, split: str, videos: Collection[str] | None = None) -> CharadesSplit:
    """The official text form."""
    records: list[CharadesQuery] = []
    blank = 0
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            blank += 1
            continue
        if "##" not in line:
            raise AnnotationError(
                f"line {number} has no '##' between the window and the sentence: {line[:80]!r}",
                file=str(path),
                key=f"line {number}",
                fix=TEXT_FIX,
            )
        head, sentence = line.split("##", 1)
        fields = head.split()
        if len(fields) != 3:
            raise AnnotationError(
                f"line {number} has {len(fields)} fields before '##', expected VID START END: {head[:80]!r}",
                file=str(path),
                key=f"line {number}",
                fix=TEXT_FIX,
            )
        video, start_text, end_text = fields
        start, end = (parse_seconds(text, path, number) for text in (start_text, end_text))
        sentence = sentence.strip()
        if not sentence:
            raise AnnotationError(
                f"line {number} has an empty sentence", file=str(path), key=f"line {number}", fix=TEXT_FIX
            )
        check_video(video, videos, path, f"line {number}")
        records.append(CharadesQuery(f"{split}-L{number}", video, sentence, window(start, end), number, None))
    check_not_empty(records, path)
    return CharadesSplit(split, path, "text", records, charades_counts(records, blank))


def read_charades_jsonl(path: Path, split: str, videos: Collection[str] | None = None) -> CharadesSplit:
    """The JSONL form (qid, query, duration, vid, relevant_windows)."""
    records: list[CharadesQuery] = []
    blank = 0
    qids: set[str] = set()
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            blank += 1
            continue
        where = f"line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise AnnotationError(
                f"line {number} is not JSON ({error})", file=str(path), key=where, fix=JSONL_FIX
            ) from None
        if not isinstance(entry, dict):
            raise AnnotationError(
                f"line {number} is a {type_name(entry)}, expected an object", file=str(path), key=where, fix=JSONL_FIX
            )
        for key in ("qid", "query", "vid", "relevant_windows"):
            if key not in entry:
                raise AnnotationError(
                    f"line {number} lacks '{key}'", file=str(path), key=f"{where}.{key}", fix=JSONL_FIX
                )
        qid = (
            str(as_int(entry["qid"], file=path, key=f"{where}.qid"))
            if not isinstance(entry["qid"], str)
            else entry["qid"]
        )
        if qid in qids:
            raise AnnotationError(
                f"qid {qid} appears twice", file=str(path), key=f"{where}.qid", fix="give every query its own qid"
            )
        qids.add(qid)
        video, sentence = entry["vid"], entry["query"]
        for key, value in (("vid", video), ("query", sentence)):
            if not isinstance(value, str) or not value.strip():
                raise AnnotationError(
                    f"'{key}' must be a non-empty string, got {value!r}",
                    file=str(path),
                    key=f"{where}.{key}",
                    fix=JSONL_FIX,
                )
        windows = entry["relevant_windows"]
        if not (
            isinstance(windows, list) and len(windows) == 1 and isinstance(windows[0], list) and len(windows[0]) == 2
        ):
            raise AnnotationError(
                f"'relevant_windows' must hold exactly one [start, end] (Charades-STA has one window per query), got {windows!r}",
                file=str(path),
                key=f"{where}.relevant_windows",
                fix=JSONL_FIX,
            )
        start, end = (as_seconds(v, file=path, key=f"{where}.relevant_windows") for v in windows[0])
        duration = entry.get("duration")
        if duration is not None:
            duration = rounded(as_seconds(duration, file=path, key=f"{where}.duration"))
        check_video(video, videos, path, f"{where}.vid")
        records.append(CharadesQuery(qid, video, sentence.strip(), window(start, end), number, duration))
    check_not_empty(records, path)
    return CharadesSplit(split, path, "jsonl", records, charades_counts(records, blank))


def read_charades(path: Path, split: str, videos: Collection[str] | None = None) -> CharadesSplit:
    """Either form, by suffix (.jsonl is JSONL, anything else the official text)."""
    reader = read_charades_jsonl if path.suffix.lower() == ".jsonl" else read_charades_text
    return reader(path, split, videos)


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise AnnotationError(
            f"{path.name} does not exist",
            file=str(path),
            fix="re-run the step that fetches the Charades-STA annotations",
        ) from None
    except UnicodeDecodeError as error:
        raise AnnotationError(
            f"{path.name} is not UTF-8 text ({error})", file=str(path), fix="download the annotation file again"
        ) from None


def parse_seconds(text: str, path: Path, number: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise AnnotationError(
            f"line {number}: {text!r} is not a time in seconds (a number >= 0)",
            file=str(path),
            key=f"line {number}",
            fix=TEXT_FIX,
        )
    return value


def check_video(video: str, videos: Collection[str] | None, path: Path, key: str) -> None:
    if videos is not None and video not in videos:
        raise AnnotationError(
            f"video {video} is not among the {len(videos)} known videos",
            file=str(path),
            key=key,
            fix="the annotations and the videos come from different releases; fetch matching ones",
        )


def charades_counts(records: list[CharadesQuery], blank: int) -> dict[str, int]:
    counts = Counter(
        records=len(records),
        videos=len({r.video for r in records}),
        reordered_windows=sum(r.window.reordered for r in records),
        zero_length_windows=sum(r.window.zero_length for r in records),
        blank_lines=blank,
        with_duration=sum(r.duration is not None for r in records),
        ends_after_stated_duration=sum(r.duration is not None and r.window.ordered[1] > r.duration for r in records),
    )
    return dict(sorted(counts.items()))
