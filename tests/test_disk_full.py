"""A full disk: a small tmpfs as the output folder, filled up. The stage fails with a message giving the
numbers (bytes being written, free and total bytes of that filesystem), and every output already there
is left as it was, with no temporary file behind."""

from __future__ import annotations

import errno
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import small_tmpfs
from sa2va_st.atomic import atomic_write_bytes
from sa2va_st.errors import DiskFullError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs for the test."""
    with small_tmpfs(tmp_path / "disk", 2**20) as mount:
        yield mount


def fill(folder: Path) -> None:
    """Write a filler file until the filesystem refuses another byte."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "filler"
    }


def test_an_atomic_write_on_a_full_disk_names_the_numbers_and_keeps_the_old_file(small_disk):
    target = small_disk / "out.json"
    atomic_write_bytes(target, b"old")
    fill(small_disk)
    with pytest.raises(DiskFullError) as caught:
        atomic_write_bytes(target, b"x" * 200_000)
    message = str(caught.value)
    assert "writing 200,000 bytes" in message and "bytes free of 1,048,576" in message and str(target) in message
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "out.json"]


def test_special_jsons_on_a_full_disk_fail_with_the_numbers_and_damage_nothing(small_disk, synthetic_build):
    out = small_disk / "special_jsons"
    command = [
        sys.executable,
        str(REPO / "scripts" / "build_special_jsons.py"),
        "--data-root",
        str(synthetic_build["root"]),
    ]
    first = subprocess.run([*command, "--out-dir", str(out)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    (out / "refcoco" / "val.json").unlink()  # a file the next run has to write again
    before = digests(small_disk)
    fill(small_disk)
    again = subprocess.run([*command, "--out-dir", str(out)], capture_output=True, text=True)
    assert again.returncode == 1
    assert "DiskFullError: the disk is full: writing" in again.stderr and "bytes free of 1,048,576" in again.stderr
    assert "Traceback" not in again.stderr
    assert digests(small_disk) == before  # what was there is intact; nothing half-written was added


def test_a_full_disk_met_inside_a_library_is_reported_with_the_numbers(tmp_path, capsys):
    from sa2va_st.cli import run

    def main():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "checkpoint" / "model.safetensors"))

    with pytest.raises(SystemExit) as exited:
        run(main)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "DiskFullError: the disk is full" in err and "bytes free of" in err and "model.safetensors" in err

    def quoting():  # safetensors' words on a full disk: a library error with no errno and no file
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, message: No space left on device })")

    with pytest.raises(SystemExit) as exited:
        run(quoting)
    err = capsys.readouterr().err
    assert exited.value.code == 1 and "DiskFullError: the disk is full" in err and "not known" in err

    def other():
        raise RuntimeError("unexpected pos 576 vs 534")  # on a disk with room: not a full disk, raised as it is

    with pytest.raises(RuntimeError, match="unexpected pos"):
        run(other)


def test_writers_that_do_not_say_the_disk_is_full_are_recognised_by_its_free_space(small_disk, tmp_path):
    """torch.save on a full disk raises a RuntimeError naming no cause ("unexpected pos ..."); safetensors
    quotes the OS. Both are a full disk; the same RuntimeError on a disk with room is not."""
    import safetensors.torch
    import torch

    from sa2va_st.atomic import is_disk_full

    fill(small_disk)
    tensor = torch.zeros(100_000)
    for write in (
        lambda: torch.save({"w": tensor}, small_disk / "w.pt"),
        lambda: safetensors.torch.save_file({"w": tensor}, str(small_disk / "w.safetensors")),
    ):
        with pytest.raises(Exception) as caught:
            write()
        assert is_disk_full(caught.value, small_disk / "w")
    assert not is_disk_full(RuntimeError("unexpected pos 576 vs 534"), tmp_path)
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)  # the errno says it
