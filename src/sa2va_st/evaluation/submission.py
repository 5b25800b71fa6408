"""The submission archive of a split whose labels an evaluation server holds (MeViS valid, Ref-YouTube-VOS valid).

- **What is sent.** One binary mask per expression and per frame listed in the split's
  ``meta_expressions.json``, at the frame's resolution: a single-channel 8-bit PNG, 255 on the
  object, 0 elsewhere (what the servers' reference inference scripts write, ReferFormer's and MeViS's
  ``Image.fromarray(mask * 255).convert("L")``). The masks are SAM2's, propagated over every frame
  from the boxes the model answered on the shown frames (`evaluation.predict`).
- **Layout** inside the zip (`LAYOUTS`): Ref-YouTube-VOS's CodaLab server reads
  ``Annotations/<video>/<exp_id>/<frame>.png``; MeViS's reads ``<video>/<exp_id>/<frame>.png`` at the
  top (its scripts zip the contents of the results folder).
- **An unparseable answer** gets an all-zero mask on every frame: the expression stays in the
  server's denominator and scores 0 there, as a missing mask does in upstream's evaluation.
- **Atomic and reproducible.** The archive is written under a temporary name and renamed, so a killed
  job leaves no archive that looks finished; entries carry a fixed timestamp, so the same answers
  give the same bytes.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..atomic import staging_dir
from ..errors import EvaluationError
from .masks import decode_mask

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # every entry's timestamp: the same answers give the same archive, byte for byte
LAYOUTS = {
    "rvos": "Annotations/{video}/{exp_id}/{frame}.png",
    "mevis": "{video}/{exp_id}/{frame}.png",
}


def mask_png(mask: np.ndarray) -> bytes:
    """A boolean (H, W) mask as the servers read it: 8-bit grey PNG, 255 on the object."""
    buffer = io.BytesIO()
    Image.fromarray(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8), mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def record_masks(record: Mapping[str, Any]) -> list[np.ndarray]:
    """The record's mask for each of its ``frame_names``; all zero where the answer did not parse."""
    names, (height, width) = record["frame_names"], record["size"]
    if record.get("masks") is None:
        return [np.zeros((height, width), dtype=bool) for _ in names]
    masks = [decode_mask(m) for m in record["masks"]]
    if len(masks) != len(names):
        raise EvaluationError(
            f"record {record['id']!r} has {len(masks)} masks for {len(names)} frames",
            key="masks",
            fix="predict the split again (its predictions file is from another manifest)",
        )
    return masks


def write_submission(records: Iterable[Mapping[str, Any]], dataset: str, out: str | os.PathLike) -> dict[str, int]:
    """Write the server's zip for ``dataset`` from a split's prediction records; return its counts
    (``expressions``, ``frames``: PNGs written, ``unparseable``: expressions sent as empty masks)."""
    if dataset not in LAYOUTS:
        raise EvaluationError(
            f"no submission layout for dataset {dataset!r}", key="dataset", fix=f"one of {sorted(LAYOUTS)}"
        )
    layout = LAYOUTS[dataset]
    counts = {"expressions": 0, "frames": 0, "unparseable": 0}
    out = Path(out)
    with staging_dir(out.parent, out.name) as staging:
        tmp = staging / out.name
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _write_records(archive, records, layout, counts)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    return counts


def _write_records(archive: zipfile.ZipFile, records: Iterable[Mapping[str, Any]], layout: str, counts: dict) -> None:
    seen: set[str] = set()
    for record in records:
        missing = [k for k in ("video", "exp_id", "frame_names", "size") if k not in record]
        if missing:
            raise EvaluationError(
                f"record {record.get('id')!r} has no {', '.join(missing)}",
                key=missing[0],
                fix="predict the split again with --sam2 (a server split's records carry its frames' masks)",
            )
        if record["id"] in seen:
            raise EvaluationError(
                f"record {record['id']!r} appears twice", key="id", fix="score each shard's file once"
            )
        seen.add(record["id"])
        counts["expressions"] += 1
        counts["unparseable"] += record.get("masks") is None
        for name, mask in zip(record["frame_names"], record_masks(record)):
            stem = Path(name).stem
            entry = zipfile.ZipInfo(layout.format(video=record["video"], exp_id=record["exp_id"], frame=stem), ZIP_TIME)
            entry.external_attr = 0o644 << 16  # rw-r--r-- once unzipped
            archive.writestr(entry, mask_png(mask), compress_type=zipfile.ZIP_DEFLATED)
            counts["frames"] += 1


__all__ = ["LAYOUTS", "mask_png", "record_masks", "write_submission"]
