"""Write outputs under a temporary name and rename them when complete.

A killed job therefore leaves either the old output or the new one, never half of one; the
temporary it was writing is removed by the next writer of the same output (`remove_stale`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import DiskFullError

HASH_CHUNK = 8 << 20  # 8 MiB reads keep hashing I/O-bound without large buffers


def remove_stale(parent: Path, names: str | Iterable[str], suffix: str) -> list[Path]:
    """Delete what killed writers of ``names`` (one output's name, or several) left in ``parent``
    (``.{name}.XXXXXXXX{suffix}``); returns them, sorted. The folder is listed once, however many names:
    a features shard sweeps its thousands of videos' temporaries in one pass.

    One job writes one output (Snakemake never runs two jobs for it), so a temporary of the same
    target found on starting is a dead writer's, never a live one's. A file that several jobs write at
    once is the exception: its writers do not sweep (`atomic_write_bytes`' ``clean_stale``).
    """
    wanted = {names} if isinstance(names, str) else set(names)
    if not wanted or not parent.is_dir():
        return []
    stale = []
    for entry in os.scandir(parent):
        # mkstemp / mkdtemp put exactly 8 characters between prefix and suffix: a sibling output whose
        # name merely starts with a wanted name is never matched
        stem = entry.name[1 : len(entry.name) - len(suffix)]  # "{name}.XXXXXXXX"
        if (
            entry.name.startswith(".")
            and entry.name.endswith(suffix)
            and len(stem) > 9
            and stem[-9] == "."
            and stem[:-9] in wanted
        ):
            stale.append(Path(entry.path))
    stale.sort()
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return stale


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")  # strerror of the two, as libraries quote it
# Below this many free bytes (or 1 % of the filesystem, if less) a failed write is taken to have met a full
# disk even when the writer does not say so: torch.save's zip writer reports only "unexpected pos ..."
# (measured on a full tmpfs).
DISK_FULL_MARGIN = 64 * 2**20


def _existing(path: str | os.PathLike) -> Path:
    """`path`, or its nearest existing parent (what a filesystem can be asked about)."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    return where


def says_disk_full(error: BaseException) -> bool:
    """Whether `error` says the disk is full: an ENOSPC / EDQUOT `OSError` anywhere in its chain, or a
    library's error quoting one (safetensors: "No space left on device (os error 28)")."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    if any(isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS for e in chain):
        return True
    return any(text in str(e) for e in chain for text in DISK_FULL_TEXT)


def is_disk_full(error: BaseException, path: str | os.PathLike) -> bool:
    """Whether `error`, raised while writing under `path`, means the disk is full: it says so
    (`says_disk_full`), or it is an `OSError` or `RuntimeError` met while the filesystem of `path` has
    less than `DISK_FULL_MARGIN` (or 1 %) free (torch.save's own words on a full disk name no cause).
    """
    if says_disk_full(error):
        return True
    if not isinstance(error, OSError | RuntimeError):
        return False
    usage = shutil.disk_usage(_existing(path))
    return usage.free < min(DISK_FULL_MARGIN, usage.total // 100)


def disk_full_error(path: str | os.PathLike, needed: int | None = None, detail: str = "") -> DiskFullError:
    """The error for a write to ``path`` that ran out of space, with the filesystem's numbers (and `detail`)."""
    where = _existing(path)
    usage = shutil.disk_usage(where)
    writing = f"writing {needed:,} bytes; " if needed is not None else ""
    return DiskFullError(
        f"the disk is full: {writing}{usage.free:,} bytes free of {usage.total:,} on the filesystem of {where}"
        + (f"; {detail}" if detail else ""),
        file=os.fspath(path),
        fix="free space there (or point data_root / work_dir / results at a larger disk) and run the job again",
    )


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, clean_stale: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary and a rename.

    ``clean_stale`` lists the folder for a dead writer's temporaries of ``path`` first; a writer of
    thousands of files in one folder passes False and sweeps them all at once (`remove_stale` with
    every name; the features do). So does the writer of a file that several jobs may write at the same
    time (a feature folder's ``identity.json``, written by whichever shard starts first): there a
    temporary may be a live job's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        remove_stale(path.parent, path.name, ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if says_disk_full(error):  # this write's own OSError: its errno says what happened
            raise disk_full_error(path, len(data)) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, clean_stale: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), clean_stale=clean_stale)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, clean_stale: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", clean_stale=clean_stale)


@contextlib.contextmanager
def staging_dir(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A fresh temporary folder inside `parent` (same filesystem, so renames out of it are atomic).

    It is removed on exit whatever happens; move what you keep out of it before leaving.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent, name, ".staging")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".staging", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The git object id of a file, which is how the hub identifies files not stored in LFS."""
    size = os.path.getsize(path)
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
