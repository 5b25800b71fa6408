"""Extract one shard: decode in worker processes, encode batched across videos, write per video.

Data flow (shapes per video: T features, U <= T distinct source frames)::

    worker processes (DataLoader, num_workers)          main process
    probe -> timing rule -> read U frames         ->    queue of uint8 crops
    -> resize + crop on uint8 (U, 3, h, w)              -> batches of exactly batch_size frames,
                                                           filled from consecutive videos
                                                        -> normalise, encode, L2-normalise (inference_mode)
                                                        -> a video whose last frame is encoded:
                                                           (T, D) float16 .npy, temp name + rename

Each worker takes every num_workers-th video of the shard, so the DataLoader, which
reads the workers round-robin, hands the videos over in shard order. Workers start from a
fork server (a fresh interpreter that has imported this module), not by forking the caller:
a fork copies whatever the caller's threads and libraries were doing at that instant (a
test suite's earlier decoders, a server thread), and a worker once died of it with SIGSEGV. Only uint8
crops cross the process boundary. A repeated source frame (fps above the source
rate, or a video shorter than 1/fps) is encoded once and copied.

Resuming: a video whose ``<vid>.npy`` exists with the expected (T, D) shape is not
decoded again (the file is written under a temporary name and renamed, so an
existing file is a complete file). After SIGKILL a rerun redoes only the videos
without one. A video that cannot be decoded becomes a "failed" index row with the
error message; the shard goes on and fails at the end only if more than
`max_failed_fraction` of its videos failed (after writing everything that worked).
"""

from __future__ import annotations

import io
import logging
import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from ..atomic import atomic_write_bytes, remove_stale
from ..errors import FeatureError
from . import timing
from .clip_model import embedding_dim, encode_images, input_dtype
from .decode import BACKENDS, DEFAULT_CHUNK_SIZE, probe_video, read_frames
from .preprocess import PreprocessConfig, normalize, resize_crop_uint8
from .sharding import VideoSource

log = logging.getLogger(__name__)

OK, FAILED = "ok", "failed"
INDEX_SCHEMA = pa.schema(
    [
        ("vid", pa.string()),
        ("T", pa.int64()),  # null when failed: no features were written
        ("fps", pa.float64()),
        ("duration", pa.float64()),  # seconds (timing rule 2); null when the video could not be probed
        ("source_fps", pa.float64()),  # mean frames per second of duration
        ("source_frames", pa.int64()),
        ("status", pa.string()),  # "ok" or "failed"
        ("error", pa.string()),  # null when ok
    ]
)


@dataclass(frozen=True)
class IndexRow:
    """One video's line in the features index."""

    vid: str
    T: int | None
    fps: float
    duration: float | None
    source_fps: float | None
    source_frames: int | None
    status: str
    error: str | None = None


@dataclass(frozen=True)
class DecodeSettings:
    """What a worker needs to turn a video into crops (picklable: it travels to the workers)."""

    out_dir: Path
    fps: float
    preprocess: PreprocessConfig
    embed_dim: int
    backend: str = "auto"
    threads: int = 0  # decoder threads per video (0 = decoder's choice)
    chunk_size: int = DEFAULT_CHUNK_SIZE  # full-size frames held at once before resizing


@dataclass
class VideoItem:
    """One video as a worker hands it over: its row, and its crops unless done or failed."""

    position: int  # in the shard's video list
    row: IndexRow
    crops: torch.Tensor | None = None  # (U, 3, h, w) uint8 distinct source frames
    index: np.ndarray | None = None  # (T,) int64, feature i = crops[index[i]]
    skipped: bool = False  # its .npy was already complete
    backend: str = ""

    def pin_memory(self) -> VideoItem:  # called by DataLoader(pin_memory=True)
        if self.crops is not None:
            self.crops = self.crops.pin_memory()
        return self


def feature_path(out_dir: Path, vid: str) -> Path:
    return Path(out_dir) / f"{vid}.npy"


def is_complete(path: Path, T: int, dim: int) -> bool:
    """An existing features file of the expected shape and dtype (written atomically, so complete)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return array.shape == (T, dim) and array.dtype == np.float16


def _failed_row(vid: str, fps: float, error: BaseException, probe=None) -> IndexRow:
    message = str(error) if isinstance(error, FeatureError) else f"{type(error).__name__}: {error}"
    return IndexRow(
        vid,
        None,
        fps,
        probe.duration_s if probe else None,
        probe.source_fps if probe else None,
        probe.frame_count if probe else None,
        FAILED,
        message,
    )


def prepare_video(position: int, video: VideoSource, settings: DecodeSettings) -> VideoItem:
    """Probe, choose frames, decode and crop one video; never raises for a bad video."""
    probe = None
    try:
        probe = probe_video(video.path)
        chosen = timing.choose_frames(probe.frame_times_s, probe.duration_s, settings.fps)  # (T,)
        row = IndexRow(video.vid, len(chosen), settings.fps, probe.duration_s, probe.source_fps, probe.frame_count, OK)
        if is_complete(feature_path(settings.out_dir, video.vid), len(chosen), settings.embed_dim):
            return VideoItem(position, row, skipped=True)
        distinct, index = np.unique(chosen, return_inverse=True)  # (U,), (T,)
        result = read_frames(
            probe,
            distinct,
            backend=settings.backend,
            threads=settings.threads,
            chunk_size=settings.chunk_size,
            transform=lambda chunk: resize_crop_uint8(chunk, settings.preprocess),
        )
        return VideoItem(position, row, result.frames, index.astype(np.int64), backend=result.backend)
    except Exception as error:  # a bad video is recorded, not fatal; bugs show up in the error text
        return VideoItem(position, _failed_row(video.vid, settings.fps, error, probe))


class ShardVideos(IterableDataset):
    """The shard's videos as `VideoItem`s; worker w of W prepares videos w, w+W, w+2W, ..."""

    def __init__(self, videos: Sequence[VideoSource], settings: DecodeSettings):
        self.videos = list(videos)
        self.settings = settings

    def __iter__(self) -> Iterator[VideoItem]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for position in range(worker, len(self.videos), workers):
            yield prepare_video(position, self.videos[position], self.settings)


def _keep_items(items):
    return items  # DataLoader(batch_size=None) hands items over one by one, unchanged


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # one core per worker: resizing must not oversubscribe the machine


def _worker_context() -> multiprocessing.context.BaseContext:
    """Decode workers come from a fork server that has imported this module (see the module docstring)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # taken when the server starts: torch, PyAV, decord loaded once
    return context


@dataclass
class _Pending:
    """A video whose crops are queued or being encoded."""

    item: VideoItem
    embeddings: np.ndarray  # (U, D) float32, filled as batches come back
    filled: int = 0


@dataclass
class _Encoder:
    """Encodes crops in batches of exactly `batch_size` frames across video boundaries."""

    model: torch.nn.Module
    preprocess: PreprocessConfig
    batch_size: int
    out_dir: Path
    dim: int
    finished: list = field(default_factory=list)  # VideoItems written since the caller last looked
    queue: deque = field(default_factory=deque)  # (pending, first row, crops) pieces in arrival order
    queued: int = 0

    def __post_init__(self) -> None:
        self.device = next(self.model.visual.parameters()).device
        self.dtype = input_dtype(self.model)

    def add(self, item: VideoItem) -> None:
        count = item.crops.shape[0]
        self.queue.append((_Pending(item, np.empty((count, self.dim), dtype=np.float32)), 0, item.crops))
        self.queued += count
        while self.queued >= self.batch_size:
            self._encode(self.batch_size)

    def flush(self) -> None:
        while self.queued:
            self._encode(min(self.queued, self.batch_size))

    def _encode(self, n: int) -> None:
        pieces = []  # (pending, first row, count)
        tensors = []
        while n:
            pending, first, crops = self.queue.popleft()
            take = min(n, crops.shape[0])
            pieces.append((pending, first, take))
            tensors.append(crops[:take])
            if take < crops.shape[0]:
                self.queue.appendleft((pending, first + take, crops[take:]))
            n -= take
        batch = torch.cat(tensors) if len(tensors) > 1 else tensors[0]  # (n, 3, h, w) uint8
        pixels = normalize(batch, self.preprocess, dtype=self.dtype, device=self.device)
        embeddings = encode_images(self.model, pixels).cpu().numpy()  # (n, D) float32, unit rows
        self.queued -= batch.shape[0]
        offset = 0
        for pending, first, take in pieces:
            pending.embeddings[first : first + take] = embeddings[offset : offset + take]
            pending.filled += take
            offset += take
            if pending.filled == pending.embeddings.shape[0]:
                write_features(self.out_dir, pending.item.row.vid, pending.embeddings[pending.item.index])
                self.finished.append(pending.item)


def write_features(out_dir: Path, vid: str, features: np.ndarray) -> Path:
    """(T, D) unit rows -> ``<vid>.npy`` float16, under a temporary name then renamed."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(features, dtype=np.float16), allow_pickle=False)
    path = feature_path(out_dir, vid)
    atomic_write_bytes(path, buffer.getvalue(), clean_stale=False)  # extract_shard sweeps the folder once
    return path


def extract_shard(
    videos: Sequence[VideoSource],
    out_dir: str | os.PathLike,
    fps: float,
    clip: tuple[torch.nn.Module, PreprocessConfig],
    *,
    batch_size: int,
    num_workers: int,
    max_failed_fraction: float,
    backend: str = "auto",
    progress: bool = True,
    encoder_threads: int | None = None,
) -> list[IndexRow]:
    """Write ``<out_dir>/<vid>.npy`` for every video; return the index rows in video order.

    `clip` is what `load_clip` returns. Raises FeatureError when more than
    `max_failed_fraction` of the videos failed (their rows are on the error as `.rows`).
    `encoder_threads`: torch threads of this (encoding) process; None chooses them as it goes
    (`EncoderThreads`). With `num_workers` > 0 the workers come from a fork server, which imports
    the calling script as multiprocessing does: a script needs its ``if __name__ == "__main__":``.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise FeatureError(f"fps must be positive, got {fps}", key="fps")
    if batch_size < 1 or num_workers < 0 or not 0 <= max_failed_fraction <= 1:
        raise FeatureError("batch_size >= 1, num_workers >= 0 and 0 <= max_failed_fraction <= 1 are required")
    if backend not in BACKENDS:
        raise FeatureError(f"backend must be one of {BACKENDS}", key="backend")
    model, preprocess = clip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = list(videos)
    # only this shard's videos: no other job writes their temporaries
    remove_stale(out_dir, {feature_path(out_dir, v.vid).name for v in videos}, ".tmp")
    dim = embedding_dim(model, preprocess)
    settings = DecodeSettings(out_dir, float(fps), preprocess, dim, backend, threads=1 if num_workers else 0)
    device = next(model.visual.parameters()).device
    loader = DataLoader(
        ShardVideos(videos, settings),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_keep_items,
        worker_init_fn=_worker_init if num_workers else None,
        multiprocessing_context=_worker_context() if num_workers else None,
        pin_memory=device.type == "cuda",
    )
    encoder = _Encoder(model, preprocess, batch_size, out_dir, dim)
    rows: dict[int, IndexRow] = {}
    counts = {"skipped": 0, "failed": 0, "frames": 0}
    backends: dict[str, int] = {}
    started = time.monotonic()
    bar = tqdm(total=None, unit="frame", desc=f"{len(videos)} videos", disable=not progress, mininterval=1.0)

    def collect_finished() -> None:
        for done in encoder.finished:
            rows[done.position] = done.row
            bar.update(done.crops.shape[0])
        encoder.finished.clear()
        bar.set_postfix(done=len(rows), failed=counts["failed"], refresh=False)

    iterator = iter(loader)
    threads = torch.get_num_threads()
    governor = EncoderThreads.for_device(device, num_workers, encoder_threads)
    torch.set_num_threads(governor.threads)
    try:
        waited_since = time.perf_counter()
        for item in iterator:
            arrived = time.perf_counter()
            if item.row.status == FAILED:
                log.warning("%s failed: %s", item.row.vid, item.row.error.replace("\n", " | "))
                rows[item.position] = item.row
                counts["failed"] += 1
            elif item.skipped:
                rows[item.position] = item.row
                counts["skipped"] += 1
            else:
                backends[item.backend] = backends.get(item.backend, 0) + 1
                counts["frames"] += item.crops.shape[0]
                encoder.add(item)
            collect_finished()
            waited_since = governor.update(arrived - waited_since, time.perf_counter() - arrived)
        encoder.flush()
        collect_finished()
    finally:
        del iterator  # stops the workers even when encoding raised
        torch.set_num_threads(threads)
        bar.close()
    elapsed = time.monotonic() - started
    ordered = [rows[p] for p in sorted(rows)]
    log.info(
        "%d videos: %d ok (%d already done), %d failed; %d frames encoded in %.1f s (%.1f frames/s); decoders %s",
        len(videos),
        len(videos) - counts["failed"],
        counts["skipped"],
        counts["failed"],
        counts["frames"],
        elapsed,
        counts["frames"] / elapsed if elapsed > 0 else 0.0,
        backends or "-",
    )
    check_failures(ordered, max_failed_fraction)
    return ordered


@dataclass
class EncoderThreads:
    """Torch threads of the encoding (main) process, chosen from where its time goes.

    On a GPU: one (the GPU does the work; the host thread only feeds it). On the CPU the encoder and
    the decode workers share the cores, and which of them needs them changes with the model: when
    the main process mostly *waits* for decoded videos (decode-bound: a fast encoder), its threads
    only take cores from the workers, so it uses the cores they leave free (at least one); when
    decoded videos are waiting for it (encode-bound: a heavy encoder, idle workers), it uses every
    core. After each video the choice follows the share of the last videos' time spent waiting
    (over `WAIT_SHARE`: decode-bound).
    """

    cores: int
    workers: int
    adaptive: bool
    threads: int
    wait_s: float = 0.0
    work_s: float = 0.0

    WAIT_SHARE = 0.2
    DECAY = 0.7  # weight of the earlier videos in the running times

    @classmethod
    def for_device(cls, device: torch.device, num_workers: int, fixed: int | None = None) -> EncoderThreads:
        """The choice for an encoder on `device` beside `num_workers` decode workers (`fixed`: that many, always)."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if fixed is not None:
            return cls(cores=cores, workers=num_workers, adaptive=False, threads=fixed)
        if device.type != "cpu":
            return cls(cores=cores, workers=num_workers, adaptive=False, threads=1)
        return cls(cores=cores, workers=num_workers, adaptive=num_workers > 0, threads=cores)

    @property
    def decode_bound_threads(self) -> int:
        return max(1, self.cores - self.workers)

    def update(self, waited_s: float, worked_s: float) -> float:
        """Account one video (time waited for it, time spent on it); set the threads; return the time now."""
        if self.adaptive:
            self.wait_s = self.DECAY * self.wait_s + waited_s
            self.work_s = self.DECAY * self.work_s + worked_s
            total = self.wait_s + self.work_s
            want = self.decode_bound_threads if total and self.wait_s / total > self.WAIT_SHARE else self.cores
            if want != self.threads:
                self.threads = want
                torch.set_num_threads(want)
        return time.perf_counter()


def check_failures(rows: Sequence[IndexRow], max_failed_fraction: float) -> None:
    """Raise when more than `max_failed_fraction` of the rows failed; the error lists the first ones."""
    failed = [r for r in rows if r.status == FAILED]
    if rows and len(failed) / len(rows) > max_failed_fraction:
        listed = "; ".join(f"{r.vid}: {(r.error or '').splitlines()[0]}" for r in failed[:5])
        error = FeatureError(
            f"{len(failed)} of {len(rows)} videos failed, more than max_failed_fraction={max_failed_fraction} ({listed})",
            fix="repair or remove the failing videos (each failure is in the log), or raise max_failed_fraction",
        )
        error.rows = list(rows)
        raise error


def write_index(rows: Sequence[IndexRow], path: str | os.PathLike) -> Path:
    """The rows as a Parquet table (schema `INDEX_SCHEMA`), written atomically."""
    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=INDEX_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def read_index(path: str | os.PathLike) -> list[IndexRow]:
    """Rows of an index written by `write_index`; a file with other columns is an error."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise FeatureError(f"cannot read the features index: {error}", file=str(path)) from error
    if set(table.column_names) != set(INDEX_SCHEMA.names):
        raise FeatureError(
            f"not a features index: columns {table.column_names}, expected {INDEX_SCHEMA.names}", file=str(path)
        )
    table = table.select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
    return [IndexRow(**record) for record in table.to_pylist()]


def merge_indexes(shard_paths: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> list[IndexRow]:
    """One index from the shards' indexes, sorted by vid; a video in two shards is an error."""
    seen: dict[str, str] = {}
    merged: list[IndexRow] = []
    for shard_path in shard_paths:
        for row in read_index(shard_path):
            if row.vid in seen:
                raise FeatureError(
                    f"video {row.vid!r} is in two shard indexes: {seen[row.vid]} and {shard_path}",
                    file=str(shard_path),
                    fix="every shard must be built with the same number of shards",
                )
            seen[row.vid] = str(shard_path)
            merged.append(row)
    merged.sort(key=lambda r: r.vid)
    write_index(merged, out_path)
    return merged
