"""Spatial manifests (they do not depend on fps): RefCOCO/+/g images, MeViS / Ref-YouTube-VOS / ReVOS videos.

    {out_dir}/spatial/{dataset}/{split}.parquet     IMAGE_SCHEMA or VIDEO_SCHEMA
    {out_dir}/spatial/report.{json,md}

One row per special_jsons record that is kept, in record order. Paths are ``data_root`` as
given joined with the record's ``frame_dir`` (and frame), so with a relative data_root they
are relative to the run directory. Every frame folder is listed once (os.scandir).

Dropped (first reason that applies):
  image: missing_image (the file is absent), empty_mask (the box is null)
  video: missing_frames (the folder or any listed frame is absent),
         empty_mask (no box in any frame of an annotated split; ReVOS type_id 2 is kept and
         counted in notes as ``no_target_kept``)
Fatal (ManifestError): a special_json that breaks its schema; more than half a split's rows
missing their image/frames (the error names the missing folder, e.g. the JPEGImages folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .. import paths
from ..annotations.common import gc_paused
from ..annotations.special_jsons import IMAGE_REFER, VIDEO_REFER, kind_of
from ..paths import join, path_prefix
from .common import (
    Listings,
    Tally,
    load_special,
    special_datasets,
    special_schemas,
    split_files,
    to_table,
    write_built,
)
from .report import add_totals, new_report, write_report
from .schemas import IMAGE_SCHEMA, VIDEO_SCHEMA

SPATIAL = "spatial"
NO_TARGET_TYPE_ID = 2  # ReVOS: an expression that refers to nothing in the video
KIND_OF = {IMAGE_REFER: "image", VIDEO_REFER: "video"}  # special_jsons kind -> manifest kind


def spatial_dir(out_dir: str | os.PathLike) -> Path:
    return Path(paths.spatial_manifests_dir(out_dir))


def image_rows(doc: dict, data_root: str, listings: Listings, tally: Tally) -> dict[str, list]:
    rows: dict[str, list] = {f.name: [] for f in IMAGE_SCHEMA}
    prefix = path_prefix(data_root)
    for r in doc["records"]:
        tally.rows_in += 1
        folder = join(prefix, r["frame_dir"])
        name = r["frames"][0]
        path = join(folder, name)
        names = listings.names(folder)
        if names is None or name not in names:
            tally.drop("missing_image", r["id"], path, listings.cause(path))
            continue
        box = r["boxes"][0]
        if box is None:
            tally.drop("empty_mask", r["id"], f"ann_id {r['ann_id']} has an empty mask")
            continue
        tally.keep()
        values = {
            "id": r["id"],
            "dataset": doc["dataset"],
            "split": doc["split"],
            "image_id": r["image_id"],
            "image_path": path,
            "width": r["width"],
            "height": r["height"],
            "ref_id": r["ref_id"],
            "ann_id": r["ann_id"],
            "sent_id": r["sent_id"],
            "category_id": r.get("category_id"),
            "sentence": r["sentence"],
            "raw": r["raw"],
            "box": box,
        }
        for key, value in values.items():
            rows[key].append(value)
    return rows


def video_rows(doc: dict, data_root: str, listings: Listings, tally: Tally) -> dict[str, list]:
    rows: dict[str, list] = {f.name: [] for f in VIDEO_SCHEMA}
    prefix = path_prefix(data_root)
    annotated = bool(doc["annotated"])
    for r in doc["records"]:
        tally.rows_in += 1
        folder = join(prefix, r["frame_dir"])
        names = listings.names(folder)
        frames = r["frames"]
        if names is None:
            tally.drop("missing_frames", r["id"], f"{folder} is missing", listings.cause(join(folder, frames[0])))
            continue
        absent = [f for f in frames if f not in names]
        if absent:
            tally.drop(
                "missing_frames",
                r["id"],
                f"{len(absent)} of {len(frames)} frames absent, e.g. {join(folder, absent[0])}",
                (folder, "lacks files"),
            )
            continue
        boxes = r["boxes"]
        has_masks = annotated and boxes is not None
        box_frames = sum(any(b is not None for b in frame) for frame in boxes) if boxes is not None else 0
        type_id = r.get("type_id")
        if has_masks and box_frames == 0:
            if type_id == NO_TARGET_TYPE_ID:
                tally.notes["no_target_kept"] += 1
            else:
                tally.drop(
                    "empty_mask",
                    r["id"],
                    f"no box in any of {len(frames)} frames (anno_ids {','.join(r['anno_ids']) or '-'})",
                )
                continue
        tally.keep()
        tally.notes["kept_frames"] += len(frames)
        values = {
            "id": r["id"],
            "dataset": doc["dataset"],
            "split": doc["split"],
            "video": r["video"],
            "exp_id": r["exp_id"],
            "sentence": r["sentence"],
            "frame_dir": folder,
            "frames": list(frames),
            "num_frames": len(frames),
            "width": r["width"],
            "height": r["height"],
            "boxes": boxes if has_masks else None,  # numbers checked by the schema; Arrow stores them as float64
            "num_box_frames": box_frames,
            "num_objects": max(1, len(r["obj_ids"])),
            "obj_ids": list(r["obj_ids"]),
            "anno_ids": list(r["anno_ids"]),
            "type_id": type_id,
            "has_masks": has_masks,
        }
        for key, value in values.items():
            rows[key].append(value)
    return rows


def build_spatial_manifests(
    special_jsons_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    datasets: Iterable[str] | None = None,
    schema_root: str | os.PathLike | None = None,
) -> dict:
    """Write ``{out_dir}/spatial/{dataset}/{split}.parquet`` and ``report.{json,md}``; return the report.

    `datasets`: default every image/video dataset with a folder in special_jsons_dir.
    `schema_root`: the folder holding ``special_jsons/`` and ``manifests/`` schemas (default: this
    checkout's workflow/schemas).
    """
    with gc_paused():  # millions of acyclic objects come and go: garbage collections would only walk them
        return _build_spatial_manifests(Path(special_jsons_dir), data_root, out_dir, datasets, schema_root)


def _build_spatial_manifests(
    special_jsons_dir: Path,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    datasets: Iterable[str] | None,
    schema_root: str | os.PathLike | None,
) -> dict:
    out = spatial_dir(out_dir)
    names, skipped = special_datasets(special_jsons_dir, KIND_OF, datasets)
    schemas = special_schemas(schema_root)
    listings = Listings()
    report = new_report(
        SPATIAL, ["image", "video"], special_jsons_dir=str(special_jsons_dir), data_root=Path(data_root).as_posix()
    )
    built: dict[str, tuple[str, list]] = {}
    # Read and check everything before writing anything: a structural error leaves old outputs intact.
    for name in names:
        special_kind = kind_of(name)
        kind = KIND_OF[special_kind]
        results = []
        for path in split_files(special_jsons_dir, name):
            doc = load_special(path, special_kind, name, schemas)
            tally = Tally(kind, name, doc["split"])
            rows = (image_rows if kind == "image" else video_rows)(doc, str(data_root), listings, tally)
            tally.check_structure(path)
            results.append((tally, to_table(rows, IMAGE_SCHEMA if kind == "image" else VIDEO_SCHEMA)))
            del doc, rows
        built[name] = (kind, results)
    write_built(out, built, skipped, report)
    add_totals(report)
    write_report(report, out, "Manifests: validation report (spatial)", schema_root)
    return report
