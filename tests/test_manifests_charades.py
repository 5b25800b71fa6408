"""Real-scale: the real Charades-STA annotations (12,404 train + 3,720 test queries over 6,670 videos)
through special_jsons into temporal manifests at fps 10 and 5, with synthetic features of the right
lengths (T by the extraction rule for each video's duration; D = 4) and empty stand-in video files.

Checked: every query is kept or counted as dropped (rows_in = kept + dropped, and rows_in is the
file's query count), and every kept window maps back to seconds within one feature:

    start_idx / fps <= start_s < (start_idx + 1) / fps     (unless start_idx is clamped to T - 1)
    end_idx / fps   <  end_s   <= (end_idx + 1) / fps       (unless end_idx is clamped to T - 1)

up to 1e-6 / fps, with 0 <= start_idx <= end_idx <= T - 1, 0 <= start_s < end_s <= duration.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sa2va_st.annotations import build_special_jsons
from sa2va_st.features.timing import feature_count
from sa2va_st.manifests import build_temporal_manifests

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CHARADES = SHARED / "data" / "charades_sta"
LABEL = "synthetic_clip"
SPLITS = {"train": 12_404, "test": 3_720}
DIM = 4

pytestmark = pytest.mark.skipif(
    not (CHARADES / "charades_train_release.jsonl").is_file(),
    reason=f"the real Charades-STA annotations are not here ({CHARADES} is absent: <repo>/../shared is not mounted)",
)


def npy_bytes(T: int) -> bytes:
    """A float16 (T, DIM) zero array in .npy format, without going through np.save per file."""
    header = {"descr": "<f2", "fortran_order": False, "shape": (T, DIM)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + bytes(2 * T * DIM)


@pytest.fixture(scope="module")
def charades_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, float]]:
    """data_root with the official text files, the special_jsons, empty videos; vid -> duration."""
    base = tmp_path_factory.mktemp("charades_real")
    root = base / "data"
    annotations = root / "temporal/Charades/annotations"
    annotations.mkdir(parents=True)
    durations: dict[str, float] = {}
    for split in SPLITS:
        lines = []
        for line in (CHARADES / f"charades_{split}_release.jsonl").read_text().splitlines():
            q = json.loads(line)
            ((start, end),) = q["relevant_windows"]
            lines.append(f"{q['vid']} {start} {end}##{q['query']}")
            durations[q["vid"]] = max(durations.get(q["vid"], 0.0), float(q["duration"]))
        (annotations / f"charades_sta_{split}.txt").write_text("\n".join(lines) + "\n")
    special = build_special_jsons(root, base / "special_jsons", datasets=["charades"])
    for split, count in SPLITS.items():
        assert special["datasets"]["charades"]["splits"][split]["counts"]["records"] == count
    videos = root / "temporal/Charades/videos"
    videos.mkdir(parents=True)
    for vid in durations:
        (videos / f"{vid}.mp4").touch()
    return base, root, durations


def write_features(root: Path, durations: dict[str, float], fps: float, label: str) -> None:
    folder = root / f"clip_features/charades/{label}/fps{fps:g}"
    folder.mkdir(parents=True)
    rows = {
        "vid": [],
        "T": [],
        "fps": [],
        "duration": [],
        "source_fps": [],
        "source_frames": [],
        "status": [],
        "error": [],
    }
    for vid, duration in sorted(durations.items()):
        T = feature_count(duration, fps)
        (folder / f"{vid}.npy").write_bytes(npy_bytes(T))
        for key, value in zip(rows, (vid, T, fps, duration, 30.0, round(duration * 30), "ok", None)):
            rows[key].append(value)
    schema = pa.schema(
        [
            ("vid", pa.string()),
            ("T", pa.int64()),
            ("fps", pa.float64()),
            ("duration", pa.float64()),
            ("source_fps", pa.float64()),
            ("source_frames", pa.int64()),
            ("status", pa.string()),
            ("error", pa.string()),
        ]
    )
    pq.write_table(pa.table(rows, schema=schema), folder / "index.parquet")


@pytest.mark.parametrize(
    "fps, shrink",
    [(10.0, 1.0), (5.0, 1.0), (10.0, 0.8)],
    ids=["fps10", "fps5", "fps10-videos-20%-shorter"],
)
def test_real_charades_sta_manifests(charades_tree, fps: float, shrink: float) -> None:
    """shrink < 1: the features say every video is shorter than the annotation's duration (as a
    re-encoded copy may be), so windows are clipped and some start after the end: still every
    query is kept or counted."""
    base, root, all_durations = charades_tree
    assert len(all_durations) == 6_670
    durations = {vid: round(d * shrink, 6) for vid, d in all_durations.items()}
    label = f"{LABEL}_{shrink:g}"
    write_features(root, durations, fps, label)
    out = base / "manifests"
    started = time.perf_counter()
    report = build_temporal_manifests(base / "special_jsons", root, label, fps, out, datasets=["charades"])
    elapsed = time.perf_counter() - started
    print(
        f"\nreal Charades-STA manifests at fps {fps:g} (durations x{shrink:g}): {elapsed:.2f} s; totals {report['totals']}"
    )

    for split, count in SPLITS.items():
        s = report["datasets"]["charades"]["splits"][split]
        assert s["rows_in"] == count
        assert s["rows_in"] == s["kept"] + s["dropped"]["rows"]
        assert s["dropped"]["rows"] == sum(s["dropped"]["by_reason"].values())
        # everything is present: only the annotations' own flaws can drop a query
        assert s["dropped"]["by_reason"]["missing_video"] == s["dropped"]["by_reason"]["missing_features"] == 0
        assert s["dropped"]["by_reason"]["features_short"] == 0
        print(
            f"  {split}: {s['rows_in']} in, {s['kept']} kept, clipped {s['clipped']['by_reason']}, dropped {s['dropped']['by_reason']}"
        )

        if shrink == 1.0:  # the JSONL windows are already ordered and inside the stated durations
            assert s["kept"] == count and s["clipped"]["rows"] == 0
        else:
            assert s["clipped"]["by_reason"]["clipped_end"] > 0 and s["dropped"]["by_reason"]["window_after_end"] > 0
        table = pq.read_table(out / f"temporal/{label}/fps{fps:g}/charades/{split}.parquet")
        assert table.num_rows == s["kept"]
        c = {
            name: table.column(name).to_numpy()
            for name in ("start_s", "end_s", "start_idx", "end_idx", "num_features", "duration")
        }
        start, end, i, j, T, duration = (
            c[k] for k in ("start_s", "end_s", "start_idx", "end_idx", "num_features", "duration")
        )
        tol = 1e-6 / fps
        assert np.all((0 <= start) & (start < end) & (end <= duration))
        assert np.all((0 <= i) & (i <= j) & (j <= T - 1))
        assert np.array_equal(T, [feature_count(d, fps) for d in duration])
        free_i, free_j = i < T - 1, j < T - 1
        assert np.all((i / fps - tol <= start)[free_i]) and np.all((start < (i + 1) / fps + tol)[free_i])
        assert np.all((j / fps - tol < end)[free_j]) and np.all((end <= (j + 1) / fps + tol)[free_j])
        assert np.all((end > (T - 1) / fps - tol)[~free_j])
        assert set(table.column("fix").to_pylist()) <= {"", "reordered", "clipped_end", "reordered+clipped_end"}
        written_end = table.column("window_as_written_end").to_numpy()
        clipped = np.char.find(table.column("fix").to_numpy().astype(str), "clipped_end") >= 0
        assert np.array_equal(
            clipped, np.maximum(written_end, table.column("window_as_written_start").to_numpy()) > duration
        )
