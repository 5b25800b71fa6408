"""Which shard job owns which video, and which videos a folder holds.

A video's shard is a stable hash of its id modulo the number of shards: it does
not depend on the other videos, the listing order, the machine or Python's hash
seed, so adding a video to the folder never moves another video's features to a
different job (and a finished shard stays finished). A fixed number of shards per
dataset keeps the job count small (never one job per video).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..catalog import VIDEO_SUFFIXES
from ..errors import FeatureError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoSource:
    """One video to extract: its id (the output is `<vid>.npy`) and its file."""

    vid: str
    path: Path


def shard_of(vid: str, shards: int) -> int:
    """The shard (0..shards-1) that owns `vid`: the first 8 bytes of sha256(vid) modulo `shards`."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    digest = hashlib.sha256(vid.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def select_shard(videos: list[VideoSource], shard: int, shards: int) -> list[VideoSource]:
    """The videos shard `shard` of `shards` owns, in their given order."""
    if not 0 <= shard < shards:
        raise FeatureError(f"shard {shard} is outside 0..{shards - 1}", key="shard")
    return [v for v in videos if shard_of(v.vid, shards) == shard]


def list_videos(folder: str | os.PathLike) -> list[VideoSource]:
    """The video files directly inside `folder` (`sa2va_st.catalog.VIDEO_SUFFIXES`, any case), sorted by id
    (the file name without its suffix). Other files are skipped, and the log names them.

    Two files with the same id (``a.mp4`` and ``a.webm``) are an error: their features
    would overwrite each other.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FeatureError("video folder not found", file=str(folder), fix="unpack the videos first")
    found: dict[str, Path] = {}
    skipped: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES:
            skipped.append(path.name + ("/" if path.is_dir() else ""))
            continue
        if path.stem in found:
            raise FeatureError(
                f"two videos share the id {path.stem!r}: {found[path.stem].name} and {path.name}",
                file=str(folder),
                fix="keep one file per video id",
            )
        found[path.stem] = path
    if skipped:
        shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        log.warning(
            "%s: skipped %d entries that are not videos (%s): %s",
            folder,
            len(skipped),
            "/".join(VIDEO_SUFFIXES),
            shown,
        )
    return [VideoSource(vid, found[vid]) for vid in sorted(found)]
