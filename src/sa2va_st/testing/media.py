"""The one video writer, tiny videos with exactly known timing, and broken ones, for tests and smoke checks.

Every frame k shows its own number (as 8 black/white blocks along the bottom edge) on a
grey level that changes with k, plus a white top-left quarter so that a wrong
rotation is visible. Timing is given as integer pts on an exact time base, so the
expected frame times are exact fractions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..atomic import staging_dir

CODE_BITS = 8  # frame numbers up to 255 are readable from the pixels


def frame_image(k: int, width: int, height: int) -> np.ndarray:
    """The RGB picture of frame k: (height, width, 3) uint8."""
    image = np.full((height, width, 3), (k * 29) % 200 + 20, dtype=np.uint8)
    image[: height // 2, : width // 4] = 255  # orientation marker
    block = max(2, width // (2 * CODE_BITS))
    for bit in range(CODE_BITS):
        x0 = width // 4 + 2 + bit * block
        value = 255 if (k >> bit) & 1 else 0
        image[height - block - 2 : height - 2, x0 : x0 + block] = value
    return image


# Reproducible encoding: one encoder thread and bit-exact flags, so the same frames give the same bytes.
X264_OPTIONS = {
    "preset": "ultrafast",
    "crf": "20",
    "threads": "1",
    "x264-params": "threads=1:sliced-threads=0:lookahead-threads=1",
}
CONTAINER_OPTIONS = {"fflags": "+bitexact"}  # no library version string in the file


def encode_video_file(
    target: str | os.PathLike,
    frame: Callable[[int], np.ndarray],
    pts: Sequence[int],
    time_base: Fraction,
    end_pts: int,
    *,
    width: int,
    height: int,
    nominal_fps: Fraction | None = None,
    rotation_degrees: int = 0,
    faststart: bool = False,
    container_format: str = "mp4",
) -> Path:
    """The one video writer of the tests and the synthetic world: H.264/yuv420p frames ``frame(k)``
    ((height, width, 3) uint8 RGB) shown at ``pts[k]``, into `target`.

    Every frame keeps its own pts and duration (the last one ends at `end_pts`, all in `time_base`
    units), so variable frame rates come out exactly; `nominal_fps` (default: frames over duration) is
    only the rate the stream header states. `rotation_degrees` sets the display matrix, as a phone does;
    `faststart` moves the index to the front (a second pass over the file).
    """
    target = Path(target)
    rate = nominal_fps or (Fraction(len(pts), 1) / (end_pts * time_base) if end_pts else Fraction(25))
    options = dict(CONTAINER_OPTIONS, **({"movflags": "+faststart"} if faststart else {}))
    with av.open(str(target), "w", format=container_format, options=options) as container:
        stream = container.add_stream("libx264", rate=rate.limit_denominator(90_000), options=X264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = time_base
        # frame_duration: the muxer takes each frame's own duration, so a VFR file ends exactly at end_pts.
        stream.codec_context.flags |= av.codec.context.Flags.frame_duration | av.codec.context.Flags.bitexact
        if rotation_degrees:
            stream.set_display_rotation(rotation_degrees)
        for k, p in enumerate(pts):
            picture = av.VideoFrame.from_ndarray(frame(k), format="rgb24")
            following = pts[k + 1] if k + 1 < len(pts) else end_pts
            picture.pts, picture.time_base, picture.duration = int(p), time_base, int(following - p)
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return target


def encode_video(*args, **kwargs) -> bytes:
    """`encode_video_file`'s bytes (for archives and servers), through a scratch file."""
    with tempfile.TemporaryDirectory() as scratch:
        return encode_video_file(Path(scratch) / "video.mp4", *args, **kwargs).read_bytes()


def write_video(
    path: str | os.PathLike,
    pts: Sequence[int],
    time_base: Fraction,
    end_pts: int,
    *,
    width: int = 64,
    height: int = 48,
    rotation_degrees: int = 0,
    faststart: bool = False,
) -> Path:
    """A video of numbered frames (`frame_image`) at the given pts (in `time_base` units); the last
    frame ends at `end_pts`. Written beside `path` and renamed when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(path.parent, path.name) as stage:
        staged = encode_video_file(
            stage / path.name,
            lambda k: frame_image(k, width, height),
            pts,
            time_base,
            end_pts,
            width=width,
            height=height,
            rotation_degrees=rotation_degrees,
            faststart=faststart,
        )
        os.replace(staged, path)
    return path


def write_cfr(path: str | os.PathLike, fps: int, frames: int, **kwargs) -> Path:
    """A constant-frame-rate video of `frames` frames at `fps` (time base 1/fps)."""
    return write_video(path, list(range(frames)), Fraction(1, fps), frames, **kwargs)


def write_vfr(path: str | os.PathLike, gaps_90k: Sequence[int], **kwargs) -> Path:
    """A variable-frame-rate video on the 1/90000 clock: frame k+1 starts gaps_90k[k] after frame k."""
    pts = [0]
    for gap in gaps_90k[:-1]:
        pts.append(pts[-1] + int(gap))
    return write_video(path, pts, Fraction(1, 90_000), pts[-1] + int(gaps_90k[-1]), **kwargs)


def write_audio_only(path: str | os.PathLike, seconds: float = 1.0) -> Path:
    """An MP4 with one AAC audio stream and no video stream."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 16_000
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples = np.zeros((1, int(rate * seconds)), dtype=np.float32)
        chunk = 1024
        for start in range(0, samples.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(samples[:, start : start + chunk].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_zero_frames(path: str | os.PathLike, width: int = 64, height: int = 48) -> Path:
    """An AVI whose video stream holds no frames at all.

    AVI because the MP4 and Matroska muxers drop (or never finish) a track without packets,
    while AVI keeps the stream header: a "video" that has a video stream and zero frames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        container.start_encoding()
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def truncate(path: str | os.PathLike, keep_fraction: float) -> Path:
    """Cut a file to the first `keep_fraction` of its bytes, as an interrupted copy would."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def read_frame_number(image: np.ndarray) -> int:
    """The frame number `frame_image` drew, read back from a decoded, upright (H, W, 3) picture."""
    height, width = image.shape[:2]
    block = max(2, width // (2 * CODE_BITS))
    number = 0
    for bit in range(CODE_BITS):
        x0 = width // 4 + 2 + bit * block
        patch = image[height - block - 2 : height - 2, x0 : x0 + block].astype(np.float64)
        if patch.mean() > 127:
            number |= 1 << bit
    return number


def synthetic_world_videos(root: str | os.PathLike, seed: int = 0) -> tuple[Path, list[dict]]:
    """The synthetic world's Charades and DiDeMo videos as one flat folder of ``<vid>.mp4``.

    The world is generated under ``root/world`` and the folder built at ``root/videos``
    once (both are reused when present), so several test modules can share them.
    Returns the folder and world.json's video records, each with a "file" key added.
    """
    from .world import generate_world

    root = Path(root)
    world_dir = root / "world"
    world = generate_world(world_dir, seed)
    folder = root / "videos"
    if not folder.is_dir():
        with staging_dir(root, "videos") as stage:
            for video in world["videos"]:
                target = stage / f"{video['video_id']}.mp4"
                if video["member"]:
                    with zipfile.ZipFile(world_dir / video["path"]) as archive:
                        target.write_bytes(archive.read(video["member"]))
                else:
                    shutil.copyfile(world_dir / video["path"], target)
            os.replace(stage, folder)
    records = [dict(video, file=str(folder / f"{video['video_id']}.mp4")) for video in world["videos"]]
    return folder, records
