"""What `prepare_data` produced: files, bytes, images, videos and expressions per dataset.

`videos` counts video files, or for datasets stored as frames (MeViS, Ref-YouTube-VOS, ReVOS) the
frame folders; `annotated_videos` the videos their expression files describe. The RefCOCO family's
`images` are those its instances.json lists (the files are shared, under coco2014/).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from .. import catalog
from .layout import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from .pickles import load_builtin_pickle


def _walk_stats(folder: Path) -> dict[str, int]:
    stats = {"files": 0, "bytes": 0, "images": 0, "videos": 0}
    for here, _dirs, filenames in os.walk(folder, followlinks=True):
        for name in filenames:
            suffix = Path(name).suffix.lower()
            stats["files"] += 1
            stats["bytes"] += os.path.getsize(os.path.join(here, name))
            stats["images"] += suffix in IMAGE_SUFFIXES
            stats["videos"] += suffix in VIDEO_SUFFIXES
    return stats


def _refer_seg_expressions(folder: Path) -> dict[str, int]:
    """Refs and sentences from the refs pickle; images are those of instances.json (they live in coco2014/)."""
    refs_files = sorted(folder.glob("refs(*).p"))
    refs = load_builtin_pickle(refs_files[0]) if refs_files else []
    instances = folder / "instances.json"
    images = len(json.loads(instances.read_text())["images"]) if instances.exists() else 0
    return {"images": images, "refs": len(refs), "expressions": sum(len(ref["sentences"]) for ref in refs)}


def _frame_videos(folder: Path) -> int:
    """Videos stored as frame folders: the subfolders of every JPEGImages/."""
    return sum(1 for frames in folder.rglob("JPEGImages") for video in frames.iterdir() if video.is_dir())


def _meta_expression_counts(folder: Path, pattern: str) -> dict[str, int]:
    annotated, expressions = 0, 0
    for path in sorted(folder.glob(pattern)):
        meta = json.loads(path.read_text())["videos"]
        annotated += len(meta)
        expressions += sum(len(video["expressions"]) for video in meta.values())
    return {"videos": _frame_videos(folder), "annotated_videos": annotated, "expressions": expressions}


def _charades_expressions(folder: Path) -> dict[str, int]:
    lines = [line for path in sorted(folder.glob("*.txt")) for line in path.read_text().splitlines() if line.strip()]
    return {"expressions": len(lines)}


def _didemo_expressions(folder: Path) -> dict[str, int]:
    return {"expressions": sum(len(json.loads(path.read_text())) for path in sorted(folder.glob("*.json")))}


# reader -> what the annotation files in a dataset's annotations folder say (catalog.READERS)
EXPRESSION_COUNTERS: dict[str, Callable[[Path], dict[str, int]]] = {
    catalog.REFER: _refer_seg_expressions,
    catalog.META_EXPRESSIONS: lambda folder: _meta_expression_counts(folder, "*/meta_expressions.json"),
    catalog.META_EXPRESSIONS_COUNTER: lambda folder: _meta_expression_counts(
        folder, "meta_expressions/*/meta_expressions.json"
    ),
    catalog.META_EXPRESSIONS_SHARED: lambda folder: _meta_expression_counts(folder, "meta_expressions_*.json"),
    catalog.STA_TEXT: _charades_expressions,
    catalog.CHUNKS: _didemo_expressions,
}
COCO_IMAGES = "coco2014"  # the inventory's name for the COCO images the RefCOCO family shares


def build_inventory(data_root: Path) -> dict:
    """Counts for every dataset folder present under data_root (absent ones are listed as such)."""
    folders: list[tuple[str, str, catalog.Dataset | None]] = [(d.name, d.folder, d) for d in catalog.DATASETS]
    folders.insert(3, (COCO_IMAGES, str(Path(catalog.COCO_IMAGES).parent), None))  # after the family sharing it
    datasets = {}
    for name, relative, entry_of in folders:
        folder = data_root / relative
        if not folder.exists():
            datasets[name] = {"present": False, "path": relative}
            continue
        entry = {"present": True, "path": relative, **_walk_stats(folder)}
        if entry_of is not None:
            entry.update(EXPRESSION_COUNTERS[entry_of.reader](data_root / entry_of.annotations_folder))
        datasets[name] = entry
    return {"data_root": str(data_root), "datasets": datasets}
