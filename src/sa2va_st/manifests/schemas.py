"""The fixed Parquet schemas of the manifests, and the reasons a row is clipped or dropped.

The column descriptions a person reads live in ``workflow/schemas/manifests/*.schema.json``
(name, Arrow type, nullability, meaning); `column_spec` loads one and the tests check that it
and the schemas below agree column for column.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

FORMAT = "sa2va_st.manifests"
FORMAT_VERSION = 3  # 2: video boxes per frame and object; images carry the annotator's raw sentence;
# 3: temporal rows list every ground-truth window (DiDeMo's annotators)

# List children are named "element", as Parquet names them, so a table read back has exactly these types.
BOX = pa.list_(pa.field("element", pa.float64()), 4)  # [x1, y1, x2, y2] normalised
OBJECT_BOXES = pa.list_(pa.field("element", BOX))  # one entry per referred object: its box, or null
STRINGS = pa.list_(pa.field("element", pa.string()))
WINDOW = pa.list_(pa.field("element", pa.float64()), 2)  # [start_s, end_s]


def _schema(kind: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": kind})


IMAGE_SCHEMA = _schema(
    "image",
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("image_id", pa.int64(), nullable=False),
        pa.field("image_path", pa.string(), nullable=False),
        pa.field("width", pa.int64(), nullable=False),
        pa.field("height", pa.int64(), nullable=False),
        pa.field("ref_id", pa.int64(), nullable=False),
        pa.field("ann_id", pa.int64(), nullable=False),
        pa.field("sent_id", pa.int64(), nullable=False),
        pa.field("category_id", pa.int64(), nullable=True),
        pa.field("sentence", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("box", BOX, nullable=False),
    ],
)

VIDEO_SCHEMA = _schema(
    "video",
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("exp_id", pa.string(), nullable=False),
        pa.field("sentence", pa.string(), nullable=False),
        pa.field("frame_dir", pa.string(), nullable=False),
        pa.field("frames", STRINGS, nullable=False),
        pa.field("num_frames", pa.int64(), nullable=False),
        pa.field("width", pa.int64(), nullable=True),
        pa.field("height", pa.int64(), nullable=True),
        pa.field("boxes", pa.list_(pa.field("element", OBJECT_BOXES)), nullable=True),
        pa.field("num_box_frames", pa.int64(), nullable=False),
        pa.field("num_objects", pa.int64(), nullable=False),
        pa.field("obj_ids", STRINGS, nullable=False),
        pa.field("anno_ids", STRINGS, nullable=False),
        pa.field("type_id", pa.int64(), nullable=True),
        pa.field("has_masks", pa.bool_(), nullable=False),
    ],
)

TEMPORAL_SCHEMA = _schema(
    "temporal",
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("vid", pa.string(), nullable=False),
        pa.field("sentence", pa.string(), nullable=False),
        pa.field("video_path", pa.string(), nullable=False),
        pa.field("features_path", pa.string(), nullable=False),
        pa.field("fps", pa.float64(), nullable=False),
        pa.field("num_features", pa.int64(), nullable=False),
        pa.field("duration", pa.float64(), nullable=False),
        pa.field("start_s", pa.float64(), nullable=False),
        pa.field("end_s", pa.float64(), nullable=False),
        pa.field("start_idx", pa.int64(), nullable=False),
        pa.field("end_idx", pa.int64(), nullable=False),
        pa.field("window_as_written_start", pa.float64(), nullable=False),
        pa.field("window_as_written_end", pa.float64(), nullable=False),
        pa.field("ground_truth_windows", pa.list_(pa.field("element", WINDOW)), nullable=False),
        pa.field("fix", pa.string(), nullable=False),
    ],
)

SCHEMAS = {"image": IMAGE_SCHEMA, "video": VIDEO_SCHEMA, "temporal": TEMPORAL_SCHEMA}

# ----------------------------------------------------------------------------- reasons
# One drop reason per dropped row: the first that applies, in the order listed.
DROP_REASONS: dict[str, dict[str, str]] = {
    "image": {
        "missing_image": "the image file is absent (data_root/frame_dir/frame)",
        "empty_mask": "the referred object has no box (its mask is empty)",
    },
    "video": {
        "missing_frames": "the frame folder, or any frame file the record lists, is absent",
        "empty_mask": "no box in any frame (except ReVOS type_id 2, kept as a no-target sample)",
    },
    "temporal": {
        "missing_video": "no video file with this id in the videos folder",
        "missing_features": "no .npy, the video is not in the features index, or its extraction failed",
        "features_short": "num_features < max(1, ceil((duration - 1e-4) * fps)): features shorter than the video",
        "zero_length_window": "start == end (as annotated)",
        "window_after_end": "the window starts at or after the video's end (start >= duration)",
    },
}
# A clipped row is kept; its `fix` lists these joined by '+' (a row may have both).
CLIP_REASONS: dict[str, dict[str, str]] = {
    "image": {},
    "video": {},
    "temporal": {
        "reordered": "the window was written with start > end (ordered by special_jsons, carried through)",
        "clipped_end": "the window ended after the video; end clipped to the duration",
    },
}
# Missing-file reasons: when more than half a split's rows have one, the build fails (structural).
FILE_REASONS = frozenset({"missing_image", "missing_frames", "missing_video", "missing_features"})
STRUCTURAL_FRACTION = 0.5


def default_schema_dir() -> Path:
    """workflow/schemas/manifests of the checkout this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "manifests"


def column_spec(kind: str, schema_dir: Path | None = None) -> dict:
    """The human description of a manifest kind's columns (workflow/schemas/manifests/{kind}.schema.json)."""
    folder = Path(schema_dir) if schema_dir is not None else default_schema_dir()
    return json.loads((folder / f"{kind}.schema.json").read_text(encoding="utf-8"))
