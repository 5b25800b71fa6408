"""Safe extraction of zip and tar archives, including zips split into byte-level parts.

Every member is checked before the first byte is written: a path that escapes the destination
(absolute, `..`, a drive letter), a link or device entry, too many members, too many bytes or an
implausible compression ratio refuses the whole archive. So does too little free disk. Extraction
goes into a staging folder that the caller renames into place, so a refused or truncated archive
leaves no partial tree behind.
"""

from __future__ import annotations

import io
import logging
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from ..errors import ArchiveError

log = logging.getLogger(__name__)

COPY_CHUNK = 4 << 20


GIB = 1 << 30
# A member smaller than this is never refused for its ratio: a megabyte is no bomb, and small text files
# (JSON, a blank mask) legitimately compress far past any ratio limit.
RATIO_FLOOR_BYTES = 1 << 20


@dataclass(frozen=True)
class ExtractLimits:
    """What an archive may hold (config key `unpack`, defaults in the config schema only)."""

    max_members: int
    max_total_bytes: int
    max_ratio: float  # uncompressed / compressed, per member (for a compressed tar: of the whole archive)
    reserve_bytes: int  # free disk that must remain after extraction

    @classmethod
    def from_config(cls, unpack: dict) -> ExtractLimits:
        """From the validated config's ``unpack`` section (sizes in GiB there, bytes here)."""
        return cls(
            max_members=int(unpack["max_members"]),
            max_total_bytes=int(float(unpack["max_total_gb"]) * GIB),
            max_ratio=float(unpack["max_ratio"]),
            reserve_bytes=int(float(unpack["reserve_gb"]) * GIB),
        )


@dataclass(frozen=True)
class Member:
    name: str  # normalised relative POSIX path
    size: int
    is_dir: bool
    compressed_size: int | None = None  # zip: the member's stored bytes; tar: unknown (None)


class ConcatenatedReader(io.RawIOBase):
    """A read-only, seekable view of several files as one (split archive parts, in order).

    Joining the parts on disk would double the disk needed for a 100 GB archive; this does not.
    """

    def __init__(self, paths: list[Path]):
        super().__init__()
        self._paths = [Path(p) for p in paths]
        self._sizes = [p.stat().st_size for p in self._paths]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._total = sum(self._sizes)
        self._handles: list[BinaryIO | None] = [None] * len(self._paths)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._total}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view) and self._pos < self._total:
            index = max(i for i, start in enumerate(self._starts) if start <= self._pos)
            handle = self._handle(index)
            handle.seek(self._pos - self._starts[index])
            count = handle.readinto(
                view[
                    written : written + min(len(view) - written, self._sizes[index] - (self._pos - self._starts[index]))
                ]
            )
            if not count:
                break
            written += count
            self._pos += count
        return written

    def _handle(self, index: int) -> BinaryIO:
        if self._handles[index] is None:
            self._handles[index] = open(self._paths[index], "rb")
        return self._handles[index]

    def close(self) -> None:
        for handle in self._handles:
            if handle is not None:
                handle.close()
        super().close()


def open_parts(parts: list[Path]) -> io.BufferedReader:
    return io.BufferedReader(ConcatenatedReader(parts), buffer_size=1 << 20)


def safe_member_name(raw: str, archive: str) -> str:
    """The member's path relative to the destination, or ArchiveError if it would land outside it."""
    name = raw.replace("\\", "/") if "\\" in raw and "/" not in raw else raw  # archives made on Windows
    if "\0" in name:
        raise ArchiveError(
            f"entry {raw!r} has a NUL byte in its name",
            file=archive,
            fix="the archive is corrupt or hostile; re-download it",
        )
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise ArchiveError(
            f"entry {raw!r} has an absolute path", file=archive, fix="refusing to write outside the destination"
        )
    if ".." in path.parts:
        raise ArchiveError(
            f"entry {raw!r} escapes the destination with '..'",
            file=archive,
            fix="refusing to write outside the destination",
        )
    parts = [p for p in path.parts if p not in ("", ".")]
    return "/".join(parts)


class Archive:
    """One archive (possibly split into parts), opened for inspection and extraction."""

    def __init__(self, parts: list[Path], label: str | None = None):
        self.parts = [Path(p) for p in parts]
        self.label = label or self.parts[-1].name
        for part in self.parts:
            if not part.is_file():
                raise ArchiveError(
                    f"archive part {part} does not exist", file=str(part), fix="run the download step again"
                )
        self._stream = open_parts(self.parts)
        self.compressed_bytes = sum(p.stat().st_size for p in self.parts)
        try:
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self._stream)
            self._tar: tarfile.TarFile | None = None
        except zipfile.BadZipFile as error:
            self._zip = None
            self._stream.seek(0)
            try:
                self._tar = tarfile.open(fileobj=self._stream, mode="r:*")
            except tarfile.TarError:
                raise ArchiveError(
                    f"{self.label} is truncated or not a zip/tar archive ({error})",
                    file=str(self.parts[-1]),
                    fix="delete it and run the download step again",
                ) from None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()
        self._stream.close()

    def members(self, limits: ExtractLimits) -> list[Member]:
        """Every member, checked against the limits; raises before anything is written."""
        members = list(self._zip_members() if self._zip is not None else self._tar_members())
        if len(members) > limits.max_members:
            raise ArchiveError(
                f"{self.label} has {len(members):,} entries, over the limit of {limits.max_members:,}",
                file=self.label,
                key="unpack.max_members",
                fix="raise unpack.max_members if this archive is trusted",
            )
        total = sum(m.size for m in members)
        if total > limits.max_total_bytes:
            raise ArchiveError(
                f"{self.label} would unpack to {total:,} bytes, over the limit of {limits.max_total_bytes:,}",
                file=self.label,
                key="unpack.max_total_gb",
                fix="raise unpack.max_total_gb if this archive is trusted",
            )
        for member in members:  # zip: each member's own ratio
            if member.compressed_size is not None and member.size >= RATIO_FLOOR_BYTES:
                ratio = member.size / max(member.compressed_size, 1)
                if ratio > limits.max_ratio:
                    raise ArchiveError(
                        f"{self.label}: entry {member.name!r} inflates {member.compressed_size:,} bytes to "
                        f"{member.size:,} (ratio {ratio:,.0f}, over unpack.max_ratio {limits.max_ratio:g}): a zip bomb?",
                        file=self.label,
                        key="unpack.max_ratio",
                        fix="refusing to unpack; re-download from a trusted source (or raise unpack.max_ratio if "
                        "this archive is trusted)",
                    )
        if self._tar is not None and total >= RATIO_FLOOR_BYTES:  # a compressed tar: members share one stream
            ratio = total / max(self.compressed_bytes, 1)
            if ratio > limits.max_ratio:
                raise ArchiveError(
                    f"{self.label} inflates {self.compressed_bytes:,} bytes to {total:,} (ratio {ratio:,.0f}, "
                    f"over unpack.max_ratio {limits.max_ratio:g}): a tar bomb?",
                    file=self.label,
                    key="unpack.max_ratio",
                    fix="refusing to unpack; re-download from a trusted source (or raise unpack.max_ratio if "
                    "this archive is trusted)",
                )
        return members

    def _zip_members(self) -> Iterator[Member]:
        if self._zip is None:  # callers pick the listing by archive type
            raise TypeError(f"{self.label} is not a zip")
        for info in self._zip.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ArchiveError(
                    f"entry {info.filename!r} is a symbolic link",
                    file=self.label,
                    fix="links are refused: they can point outside the tree",
                )
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded (most zips)
                raise ArchiveError(
                    f"entry {info.filename!r} is not a regular file or folder",
                    file=self.label,
                    fix="refusing special files",
                )
            name = safe_member_name(info.filename, self.label)
            if name:
                yield Member(name, info.file_size, info.is_dir(), info.compress_size)

    def _tar_members(self) -> Iterator[Member]:
        if self._tar is None:
            raise TypeError(f"{self.label} is not a tar")
        try:
            infos = self._tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise ArchiveError(
                f"{self.label} is truncated or corrupt ({error})",
                file=self.label,
                fix="delete it and download it again",
            ) from None
        for info in infos:
            if info.issym() or info.islnk():
                raise ArchiveError(
                    f"entry {info.name!r} is a link",
                    file=self.label,
                    fix="links are refused: they can point outside the tree",
                )
            if not (info.isfile() or info.isdir()):
                raise ArchiveError(
                    f"entry {info.name!r} is not a regular file or folder",
                    file=self.label,
                    fix="refusing special files",
                )
            name = safe_member_name(info.name, self.label)
            if name:
                yield Member(name, info.size, info.isdir())

    def extract_to(self, dest: Path, limits: ExtractLimits) -> list[Member]:
        """Check every member and the free disk, then extract into `dest` (a staging folder)."""
        members = self.members(limits)
        needed = sum(m.size for m in members)
        free = shutil.disk_usage(dest).free
        if needed + limits.reserve_bytes > free:
            raise ArchiveError(
                f"not enough free disk to unpack {self.label}: need {needed:,} bytes + {limits.reserve_bytes:,} reserve, {free:,} free",
                file=str(dest),
                key="data_root",
                fix="free some space or point data_root at a larger disk",
            )
        sources = self._zip.infolist() if self._zip is not None else self._tar.getmembers()
        with tqdm(total=needed, unit="B", unit_scale=True, desc=f"unpack {self.label}", mininterval=2.0) as progress:
            for source in sources:
                name = safe_member_name(source.filename if self._zip is not None else source.name, self.label)
                if not name:
                    continue
                target = dest / name
                if source.is_dir() if self._zip is not None else source.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                self._copy_member(source, target, progress)
        return members

    def _copy_member(self, source, target: Path, progress: tqdm) -> None:
        try:
            if self._zip is not None:
                reader = self._zip.open(source)
            else:
                reader = self._tar.extractfile(source)
            with reader, open(target, "wb") as out:
                while chunk := reader.read(COPY_CHUNK):
                    out.write(chunk)
                    progress.update(len(chunk))
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
            name = getattr(source, "filename", None) or source.name
            raise ArchiveError(
                f"{self.label} is truncated or corrupt at entry {name!r} ({error})",
                file=str(self.parts[-1]),
                fix="delete it and run the download step again",
            ) from None
