"""Probe a video and read chosen frames as upright uint8 RGB, straight from the file.

Probe (PyAV, demux only: no pixels are decoded except the first frame):
every video packet's integer pts (packets the demuxer marks "discard", e.g. before
an MP4 edit list's start, are left out because decoders drop their frames too),
the last packet's duration, the stream's time base, and the display rotation,
which FFmpeg attaches to decoded frames (``frame.rotation``, degrees
counter-clockwise, from the container's display matrix). The frame times and the
duration then follow `timing`'s rule exactly, from integers.

Reading (two backends, one frame choice):

- **decord** (first; fast random access). It must agree with the probe: same frame
  count, its own ``get_frame_timestamp`` within 1 ms of the probe's times, and
  frames of the display size. decord 0.6.0 (FFmpeg 4.1 inside) applies the
  display rotation itself, and for 90/180/270 degrees its pixels equal PyAV's
  frame rotated with ``np.rot90``; but for some sizes (e.g. a 64x48 video rotated
  90 degrees) it returns 4-channel garbage or fails in ``get_batch``. Its timestamps
  are float32 seconds and start at 0 even when the stream's first pts does not.
- **PyAV** (fallback, and for whatever decord could not read): decodes in order,
  keeps the frames whose pts were chosen, rotates them with ``np.rot90(k=rotation/90)``
  (counter-clockwise, which is what the display matrix means), and stops after the
  last chosen frame. A chosen frame that never comes out of the decoder is an error,
  not a silent duplicate (decord, by default, would repeat a neighbour).

Broken inputs (missing, truncated, no video stream, zero frames, undecodable, a still image
under a video's name, frames over `MAX_FRAME_PIXELS`) raise `FeatureError` naming the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from ..errors import FeatureError
from . import timing

try:  # decord is optional: PyAV alone is correct, only slower
    import decord
except ImportError:  # pragma: no cover - depends on the environment
    decord = None

log = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")
DECORD_TIME_SLACK_S = 1e-3  # decord's float32 seconds vs the probe's exact times
DEFAULT_CHUNK_SIZE = 16  # frames decoded before `read_frames`' transform shrinks them
# 8192 x 8192: twice 8K UHD. A larger (or a hostile header's) frame size is refused before any pixel is
# decoded: a chunk of 16 such RGB frames is 3.2 GB in each decode worker.
MAX_FRAME_PIXELS = 8192 * 8192
TRUNCATED_FIX = "re-download or re-copy the file; a complete copy has all the frames its header lists"


@dataclass(frozen=True, eq=False)
class VideoProbe:
    """What the container says about a video's frames (no pixels)."""

    path: str
    pts: tuple[int, ...]  # (N,) presentation order, in time_base units
    time_base: Fraction
    frame_times_s: np.ndarray  # (N,) float64, seconds from the first frame
    duration_s: float  # timing rule 2
    width: int  # coded size, before rotation
    height: int
    rotation_degrees: int  # counter-clockwise display rotation: 0, 90, 180 or 270
    nominal_fps: float | None = field(default=None)

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    @property
    def source_fps(self) -> float:
        """Mean frame rate, frames per second of duration (well defined for VFR too)."""
        if self.duration_s > 0:
            return self.frame_count / self.duration_s
        return float(self.nominal_fps or 0.0)

    @property
    def display_size(self) -> tuple[int, int]:
        """(height, width) of the upright frames."""
        if self.rotation_degrees in (90, 270):
            return self.width, self.height
        return self.height, self.width


def _right_angle(degrees: float, path: str) -> int:
    quarter = round(degrees / 90)
    if abs(degrees - 90 * quarter) > 1:
        raise FeatureError(f"display rotation of {degrees} degrees is not a multiple of 90", file=path)
    return (90 * quarter) % 360


def probe_video(path: str | os.PathLike) -> VideoProbe:
    """Frame pts, duration and rotation of the first video stream (PyAV; demux, one frame decoded)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FeatureError("video file not found", file=path)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                kinds = ", ".join(s.type for s in container.streams) or "none"
                raise FeatureError(f"no video stream (streams: {kinds})", file=path)
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise FeatureError(
                    f"a still image (FFmpeg reads it as {container.format.name}), not a video",
                    file=path,
                    fix="replace it with the video itself; the file's name does not decide what it holds",
                )
            stream = container.streams.video[0]
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            if width * height > MAX_FRAME_PIXELS:
                raise FeatureError(
                    f"frames of {width}x{height} exceed the {MAX_FRAME_PIXELS:,} pixels a frame may have here "
                    f"(each decoded chunk holds {DEFAULT_CHUNK_SIZE} full-size frames before they are resized)",
                    file=path,
                    fix="re-encode it smaller, e.g. ffmpeg -i IN -vf scale=-2:1080 OUT; CLIP sees 224 px anyway",
                )
            listed = int(stream.frames or 0)  # what the header promises (0 = not stored)
            pts, last_duration, rotation = [], {}, None
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue  # flush packets / frames the decoder would drop
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    raise FeatureError("a video packet carries no timestamp", file=path)
                pts.append(int(stamp))
                last_duration[int(stamp)] = int(packet.duration or 0)
                if rotation is None:
                    for frame in packet.decode():  # the first decoded frame carries the display matrix
                        rotation = _right_angle(float(frame.rotation), path)
                        break
            time_base = Fraction(stream.time_base) if stream.time_base else None
            nominal = float(stream.average_rate) if stream.average_rate else None
    except FeatureError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise FeatureError(f"cannot read the video container: {error}", file=path, fix=TRUNCATED_FIX) from error
    if not pts:
        raise FeatureError("the video stream has zero frames", file=path)
    if listed and len(pts) < listed:
        raise FeatureError(
            f"truncated: the header lists {listed} frames but only {len(pts)} can be read", file=path, fix=TRUNCATED_FIX
        )
    if time_base is None:
        raise FeatureError("the video stream has no time base", file=path)
    if rotation is None:
        rotation = _decode_first_rotation(path)  # decoders with delay emit the first frame only at flush
    ordered = sorted(pts)
    times = timing.frame_times_from_pts(ordered, time_base)
    end_duration = last_duration.get(ordered[-1], 0) * time_base
    duration = timing.stream_duration(times, float(end_duration))
    return VideoProbe(path, tuple(ordered), time_base, times, duration, width, height, rotation, nominal)


def _decode_first_rotation(path: str) -> int:
    """The rotation of the first decodable frame; no decodable frame at all is an error."""
    try:
        with av.open(path) as container:
            for frame in container.decode(video=0):
                return _right_angle(float(frame.rotation), path)
    except av.FFmpegError as error:
        raise FeatureError(f"no frame can be decoded: {error}", file=path, fix=TRUNCATED_FIX) from error
    raise FeatureError("no frame of the video can be decoded", file=path, fix=TRUNCATED_FIX)


def upright(image: np.ndarray, rotation_degrees: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation to a decoded (H, W, 3) picture."""
    return np.rot90(image, k=rotation_degrees // 90) if rotation_degrees else image


class _DecordDisagrees(Exception):
    """decord read the file differently from the probe; PyAV takes over."""


def _decord_chunks(probe: VideoProbe, wanted: np.ndarray, threads: int, chunk_size: int) -> Iterator[np.ndarray]:
    """Chosen frames via decord, in order, chunk by chunk: each (n, H, W, 3) uint8."""
    reader = decord.VideoReader(probe.path, ctx=decord.cpu(0), num_threads=threads)
    count = len(reader)
    if count != probe.frame_count:
        raise _DecordDisagrees(f"decord sees {count} frames, the container {probe.frame_count}")
    stamps = reader.get_frame_timestamp(np.arange(count))[:, 0].astype(np.float64)  # (N,) float32 seconds
    drift = float(np.max(np.abs((stamps - stamps[0]) - probe.frame_times_s)))
    if drift > DECORD_TIME_SLACK_S:
        raise _DecordDisagrees(f"decord's frame times differ from the container's by {drift:.4f} s")
    expected = (*probe.display_size, 3)
    for start in range(0, len(wanted), chunk_size):
        batch = reader.get_batch([int(k) for k in wanted[start : start + chunk_size]]).asnumpy()  # (n, H, W, C)
        if batch.shape[1:] != expected:
            raise _DecordDisagrees(f"decord returned frames of shape {batch.shape[1:]}, expected {expected}")
        yield batch


def _pyav_chunks(probe: VideoProbe, wanted: np.ndarray, threads: int, chunk_size: int) -> Iterator[np.ndarray]:
    """Chosen frames via PyAV, decoded in order and matched by pts: each (n, H, W, 3) uint8."""
    targets = [probe.pts[int(k)] for k in wanted]  # ascending pts
    wanted_set = set(targets)
    position, buffer = 0, []
    try:
        with av.open(probe.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            for frame in container.decode(stream):
                stamp = frame.pts if frame.pts is not None else frame.dts
                if stamp not in wanted_set or position >= len(targets) or stamp < targets[position]:
                    continue
                if stamp != targets[position]:
                    break  # a chosen frame was skipped by the decoder: reported below
                buffer.append(upright(frame.to_ndarray(format="rgb24"), probe.rotation_degrees))
                position += 1
                if len(buffer) == chunk_size:
                    yield np.stack(buffer)
                    buffer = []
                if position == len(targets):
                    break  # nothing after the last chosen frame is needed
    except av.FFmpegError as error:
        raise FeatureError(f"decoding failed: {error}", file=probe.path, fix=TRUNCATED_FIX) from error
    if buffer:
        yield np.stack(buffer)
    if position < len(targets):
        missing = int(wanted[position])
        raise FeatureError(
            f"frame {missing} (at {probe.frame_times_s[missing]:.3f} s) could not be decoded; "
            f"{len(targets) - position} of {len(targets)} chosen frames are missing",
            file=probe.path,
            fix=TRUNCATED_FIX,
        )


@dataclass
class ReadResult:
    """The chosen frames, transformed, in the order of the requested indices, and who decoded them."""

    frames: object  # whatever `transform` returns, concatenated: (U, ...)
    backend: str  # "decord", "pyav" or "decord+pyav" (decord stopped part-way)


def _concat(parts: list):
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import torch

    return torch.cat(parts)


def read_frames(
    probe: VideoProbe,
    frame_indices: Sequence[int] | np.ndarray,
    *,
    backend: str = "auto",
    threads: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    transform: Callable[[np.ndarray], object] | None = None,
) -> ReadResult:
    """Read the frames with the given (strictly increasing) indices, upright RGB.

    `transform` maps each chunk of (n, H, W, 3) uint8 pictures to something smaller
    (the CLIP resize and crop), so that full-resolution frames never pile up.
    `backend` "auto" tries decord and continues with PyAV where decord fails or disagrees.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    wanted = np.asarray(frame_indices, dtype=np.int64)  # (U,)
    if wanted.size == 0 or np.any(np.diff(wanted) <= 0) or wanted[0] < 0 or wanted[-1] >= probe.frame_count:
        raise ValueError("frame indices must be strictly increasing and inside the video")
    transform = transform or (lambda chunk: chunk)
    parts: list = []
    done = 0
    used = []
    if backend in ("auto", "decord"):
        if decord is None:
            if backend == "decord":
                raise FeatureError("decord is not installed", fix="pip install decord, or use backend 'pyav'")
        else:
            chunks = _decord_chunks(probe, wanted, threads, chunk_size)
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except Exception as error:  # decord raises DECORDError, RuntimeError, AssertionError...
                    if backend == "decord":
                        raise FeatureError(f"decord cannot read the video: {error}", file=probe.path) from error
                    log.info("decord stopped on %s (%s); PyAV reads the rest", probe.path, str(error).splitlines()[0])
                    break
                parts.append(transform(chunk))
                done += len(chunk)
            if done:
                used.append("decord")
    if done < wanted.size:
        for chunk in _pyav_chunks(probe, wanted[done:], threads, chunk_size):
            parts.append(transform(chunk))
        used.append("pyav")
    return ReadResult(_concat(parts), "+".join(used))
