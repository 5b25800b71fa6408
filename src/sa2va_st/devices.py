"""Which device a job runs on: a GPU of its own when the node has GPUs, else the CPU.

The rule, in three parts (documented for users in docs/architecture.md, "Hardware"):

1. **Scheduling** (Snakemake). A rule that uses one GPU declares ``resources: gpu=1`` when the
   node Snakemake runs on has GPUs (`visible_gpu_count`, read at parse time without starting
   CUDA), and the workflow registers that count as the global ``gpu`` resource unless
   ``--resources gpu=N`` says otherwise. So ``snakemake --cores 8`` on a node with G GPUs runs at
   most G such jobs at once, and a CPU-only machine declares nothing and runs as before. On SLURM
   the profile's ``set-resources`` asks for one GPU per job, and SLURM places it.
2. **Claiming** (the job). Snakemake counts GPUs but does not say *which* one a job gets, so the
   job claims one itself (`claim_device`): it walks the GPUs it can see and takes the first one
   whose lock it can hold, an exclusive ``flock`` on a node-local file named after the GPU (its
   UUID when CUDA is up, else its ``CUDA_VISIBLE_DEVICES`` entry). The kernel drops the lock when
   the process ends, SIGKILL included, so a killed job never keeps a GPU taken; a job that finds
   every GPU held waits until one is free. Two jobs on one node therefore never share a GPU,
   whatever order they start in.
3. **Visibility.** A job sees the GPUs of ``CUDA_VISIBLE_DEVICES`` when it is set (a user's
   ``CUDA_VISIBLE_DEVICES=1 snakemake ...``, or SLURM's allocation), else every GPU torch finds.

An explicit device (``cpu``, ``cuda:1``) is used as given, without a claim.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

AUTO = "auto"
LOCK_DIR_ENV = "SA2VA_ST_GPU_LOCK_DIR"
POLL_S = 2.0


@dataclass(frozen=True)
class Gpu:
    """A GPU as this process sees it: its torch index and a node-wide name for its lock."""

    index: int  # cuda:<index> inside this process
    key: str  # the same physical GPU has the same key in every process of the node


def cuda_visible_devices() -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` ([] when it hides every GPU), or None when it is unset."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if entries and entries[0].startswith("-"):  # "-1": CUDA's way of saying no GPU
        return []
    return entries


def visible_gpu_count() -> int:
    """How many GPUs a job started here would see, without starting CUDA (cheap enough for parse time):
    ``CUDA_VISIBLE_DEVICES`` when set, else the GPUs ``nvidia-smi -L`` lists, else 0."""
    entries = cuda_visible_devices()
    if entries is not None:
        return len(entries)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.splitlines() if re.match(r"GPU \d+:", line))


def visible_gpus(device_count: int | None = None) -> list[Gpu]:
    """The GPUs this process can use, with node-wide keys; [] without CUDA.

    Keys are the GPUs' UUIDs (SLURM may show every job its GPU as device 0, so an index is not a
    node-wide name). With `device_count` given, CUDA is not asked (a node simulated in tests, or a
    caller that knows): the keys are the ``CUDA_VISIBLE_DEVICES`` entries, or the indices.
    """
    entries = cuda_visible_devices()
    if device_count is not None:
        names = entries if entries is not None else [str(i) for i in range(device_count)]
        return [Gpu(i, name) for i, name in enumerate(names[:device_count])]
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        fallback = entries[index] if entries is not None and index < len(entries) else str(index)
        gpus.append(Gpu(index, f"GPU-{uuid}" if uuid is not None else fallback))
    return gpus


def lock_dir() -> Path:
    """Node-local (GPUs are node-local): ``$SA2VA_ST_GPU_LOCK_DIR``, else a folder in the system temp dir."""
    folder = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"sa2va_st-gpu-locks-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path`, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
    return fd


@contextlib.contextmanager
def claim_gpu(gpus: Sequence[Gpu], folder: Path | None = None, timeout_s: float | None = None) -> Iterator[Gpu]:
    """Hold one of `gpus` for the duration of the block (see the module docstring, part 2)."""
    if not gpus:
        raise ValueError("no GPU to claim")
    folder = folder or lock_dir()
    started = time.monotonic()
    waited = False
    while True:
        for gpu in gpus:
            fd = _try_lock(folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', gpu.key)}.lock")
            if fd is not None:
                if waited:
                    log.info("GPU %s became free after %.0f s", gpu.key, time.monotonic() - started)
                try:
                    yield gpu
                finally:
                    os.close(fd)  # releases the flock
                return
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise TimeoutError(f"every GPU ({', '.join(g.key for g in gpus)}) stayed claimed for {timeout_s:.0f} s")
        if not waited:
            log.info("all %d GPUs are claimed by other jobs; waiting for one", len(gpus))
            waited = True
        time.sleep(POLL_S)


@contextlib.contextmanager
def claim_device(device: str = AUTO, device_count: int | None = None) -> Iterator[str]:
    """The torch device a job should use, held for the block: ``auto`` claims a free GPU (``cuda:<i>``) or
    gives ``cpu`` on a machine without one; any other value is used as given. `device_count`: see
    `visible_gpus`."""
    if device != AUTO:
        yield device
        return
    gpus = visible_gpus(device_count)
    if not gpus:
        yield "cpu"
        return
    with claim_gpu(gpus) as gpu:
        log.info("running on cuda:%d (%s)", gpu.index, gpu.key)
        yield f"cuda:{gpu.index}"
