"""Read chosen rows of a ``.npy`` feature table: one ``open`` per call, memory-mapped, header cached.

`read_rows(path, rows)` opens the file **once**, memory-maps it read-only and copies out only
the requested rows (only their pages are touched), then unmaps and closes it. It is what
``np.load(path, mmap_mode="r")[rows]`` does, minus its overheads: ``np.load`` opens the
file three times (itself, ``open_memmap``, ``np.memmap``) and re-parses the header with
``ast.literal_eval`` on every call. Here the parsed header (shape, dtype, data offset) is
kept in a `HeaderCache`, valid while the file's size and mtime (``fstat`` of the open
file) are unchanged: a re-extracted file is re-parsed.

Only C-ordered numeric 2-D arrays in ``.npy`` format 1.0 / 2.0 (what ``np.save`` writes)
take the fast path; anything else falls back to ``np.load(path, mmap_mode="r")``.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format


@dataclass(frozen=True)
class Header:
    size: int
    mtime_ns: int
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int  # bytes before the data


class HeaderCache(dict):
    """path (str) → `Header`; one per dataset object (so one per DataLoader worker)."""


def _parse_header(f, st: os.stat_result) -> Header | None:
    version = npy_format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = npy_format.read_array_header_2_0(f)
    else:
        return None
    if fortran or dtype.hasobject or len(shape) != 2:
        return None
    return Header(st.st_size, st.st_mtime_ns, tuple(int(s) for s in shape), dtype, f.tell())


def read_rows(
    path: str | os.PathLike,
    rows: np.ndarray,
    cache: HeaderCache | None = None,
    validate: Callable[[tuple[int, ...], np.dtype], None] | None = None,
) -> np.ndarray:
    """``table[rows]`` of the ``.npy`` at ``path``: a new in-memory array in the file's dtype.

    ``validate(shape, dtype)`` runs before any row is read (raise from it to refuse the file).
    Raises ``FileNotFoundError`` / ``OSError`` / ``ValueError`` (bad header, truncated file)
    / ``IndexError`` (a row out of range) for the caller to turn into a `DatasetError`.
    """
    key = os.fspath(path)
    with open(key, "rb") as f:  # the one open of this file for this call
        st = os.fstat(f.fileno())
        header = None if cache is None else cache.get(key)
        if header is None or header.size != st.st_size or header.mtime_ns != st.st_mtime_ns:
            header = _parse_header(f, st)
            if header is None:  # unusual layout: numpy's own reader
                f.close()
                table = np.load(key, mmap_mode="r")
                if validate is not None:
                    validate(tuple(table.shape), table.dtype)
                return np.asarray(table[rows])
            if cache is not None:
                cache[key] = header
        if validate is not None:
            validate(header.shape, header.dtype)
        count = int(np.prod(header.shape))
        if header.offset + count * header.dtype.itemsize > st.st_size:
            raise ValueError(
                f"truncated .npy: the header says {header.shape} {header.dtype} but the file has {st.st_size} bytes"
            )
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            table = np.frombuffer(mm, dtype=header.dtype, count=count, offset=header.offset).reshape(header.shape)
            try:
                out = table[rows]  # fancy indexing: a copy of the chosen rows only
            finally:
                del table  # release the buffer before the map closes
    return out
