"""benchmarks/manifests.py: a --quick run reports the counts of the world it generated (no timing is
asserted), and the batched mask path that benchmark led to (masks.frame_boxes) gives the per-frame
path's answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sa2va_st.annotations.masks import check_rle, frame_boxes, rle_box

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "manifests.py"


def run_quick(tmp_path: Path) -> tuple[str, Path]:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--out",
            str(out),
            "--report",
            str(tmp_path / "report.txt"),
            "--log",
            str(tmp_path / "benchmark.log"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, out


def test_quick_run_reports_the_generated_world(tmp_path: Path) -> None:
    stdout, out = run_quick(tmp_path)
    lines = stdout.strip().splitlines()
    assert lines[-1].startswith("RESULT seconds=")
    result = dict(item.split("=", 1) for item in lines[-1].split()[1:])
    assert list(result)[:3] == ["seconds", "videos", "expressions"]
    (world_dir,) = [p for p in out.iterdir() if p.name.startswith("world_")]
    assert (world_dir / "COMPLETE").is_file()
    totals = json.loads((world_dir / "world.json").read_text())["totals"]
    assert int(result["videos"]) == totals["videos"] > 0
    assert int(result["expressions"]) == totals["expressions"] > 0
    assert int(result["masks"]) == totals["masks"] > 0
    assert int(result["image_expressions"]) == totals["image_expressions"] > 0
    assert int(result["images"]) == totals["images"] > 0
    assert float(result["seconds"]) > 0
    assert "CHECK FAILED" not in stdout and "sampled boxes checked" in stdout
    assert (tmp_path / "report.txt").read_text().strip().splitlines()[-1] == lines[-1]
    assert not (out / "build").exists()  # outputs are removed unless --keep-outputs
    # a world without its COMPLETE marker (a killed generation) is generated again
    (world_dir / "COMPLETE").unlink()
    stdout, _ = run_quick(tmp_path)
    assert re.search(r"incomplete or stale: regenerating", stdout) and (world_dir / "COMPLETE").is_file()


def per_frame(entries: list) -> tuple[list, tuple[int, int] | None]:
    """The reference: check_rle + rle_box (pycocotools' toBbox) frame by frame."""
    boxes, size = [], None
    for t, entry in enumerate(entries):
        if entry is None:
            boxes.append(None)
            continue
        rle = check_rle(entry, file=Path("mask_dict.json"), key=f"k[{t}]", size=size)
        size = (rle.height, rle.width)
        boxes.append(rle_box(rle))
    return boxes, size


def random_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    kind = int(rng.integers(5))
    mask = np.zeros((height, width), dtype=np.uint8)
    if kind == 1:
        mask[:] = 1
    elif kind == 2:
        mask = (rng.random((height, width)) < rng.random()).astype(np.uint8)
    elif kind >= 3:  # a rectangle, sometimes with a stray pixel (runs that wrap into the next column)
        y0, y1 = sorted(rng.integers(0, height + 1, size=2))
        x0, x1 = sorted(rng.integers(0, width + 1, size=2))
        mask[y0:y1, x0:x1] = 1
        if rng.random() < 0.5:
            mask[rng.integers(height), rng.integers(width)] = 1
    return mask


def test_frame_boxes_equal_the_per_frame_path() -> None:
    rng = np.random.default_rng(0)
    memo: dict = {}
    for _ in range(600):
        height, width = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        entries = []
        for _ in range(int(rng.integers(1, 7))):
            if rng.random() < 0.2:
                entries.append(None)
                continue
            counts = mask_utils.encode(np.asfortranarray(random_mask(rng, height, width)))["counts"]
            entries.append({"size": [height, width], "counts": counts.decode() if rng.random() < 0.5 else counts})
        fast = frame_boxes(entries, memo)
        assert fast is not None and fast == per_frame(entries), entries
        assert frame_boxes(entries, memo) == fast  # from the memo
    # a large real-sized mask whose counts need several characters
    mask = np.zeros((1080, 1920), dtype=np.uint8)
    mask[100:900, 300:1700] = 1
    entries = [{"size": [1080, 1920], "counts": mask_utils.encode(np.asfortranarray(mask))["counts"].decode()}]
    assert frame_boxes(entries) == per_frame(entries) == ([(300, 100, 1700, 900)], (1080, 1920))


def encoded(counts: list[int], height: int, width: int) -> str:
    return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)["counts"].decode()


@pytest.mark.parametrize(
    "entries",
    [
        [{"size": [4, 4], "counts": encoded([2, 0, 3, 11], 4, 4)}],  # a zero-length run: check_rle re-encodes it
        [{"size": [4, 4], "counts": encoded([2, 3, 3], 4, 4)}],  # runs cover 8 of 16 pixels
        [{"size": [4, 4], "counts": ""}],
        [{"size": [4, 4], "counts": "0a"}],  # ends inside a number
        [{"size": [4, 4], "counts": "0\x7f"}],  # outside the alphabet
        [{"size": [4, 4], "counts": "`" * 13 + "0"}],  # a number of 14 characters
        [
            {"size": [4, 4], "counts": encoded([16], 4, 4)},
            {"size": [4, 5], "counts": encoded([20], 4, 5)},
        ],  # sizes differ
        [{"size": [True, 4], "counts": encoded([4], 1, 4)}],
        [{"size": [4, 4], "counts": [16]}],  # uncompressed counts
        [[4, 4]],
    ],
)
def test_frame_boxes_leave_the_rest_to_the_per_frame_path(entries: list) -> None:
    assert frame_boxes(entries) is None


def test_frame_boxes_of_null_frames() -> None:
    assert frame_boxes([None, None]) == ([None, None], None)
    assert frame_boxes([]) == ([], None)
