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

from .layout import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from .pickles import load_builtin_pickle

# dataset -> folder relative to data_root (the tree of layout.py)
DATASET_FOLDERS = {
    "refcoco": "refer_seg/refcoco",
    "refcoco+": "refer_seg/refcoco+",
    "refcocog": "refer_seg/refcocog",
    "coco2014": "refer_seg/coco2014",
    "mevis": "video_datas/mevis",
    "rvos": "video_datas/rvos",
    "revos": "video_datas/ReVOS",
    "charades": "temporal/Charades",
    "didemo": "temporal/didemo",
}


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
    lines = [
        line
        for path in sorted((folder / "annotations").glob("*.txt"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return {"expressions": len(lines)}


def _didemo_expressions(folder: Path) -> dict[str, int]:
    return {
        "expressions": sum(
            len(json.loads(path.read_text())) for path in sorted((folder / "annotations").glob("*.json"))
        )
    }


EXPRESSION_COUNTERS: dict[str, Callable[[Path], dict[str, int]]] = {
    "refcoco": _refer_seg_expressions,
    "refcoco+": _refer_seg_expressions,
    "refcocog": _refer_seg_expressions,
    "mevis": lambda folder: _meta_expression_counts(folder, "*/meta_expressions.json"),
    "rvos": lambda folder: _meta_expression_counts(folder, "meta_expressions/*/meta_expressions.json"),
    "revos": lambda folder: _meta_expression_counts(folder, "meta_expressions_*.json"),
    "charades": _charades_expressions,
    "didemo": _didemo_expressions,
}


def build_inventory(data_root: Path) -> dict:
    """Counts for every dataset folder present under data_root (absent ones are listed as such)."""
    datasets = {}
    for name, relative in DATASET_FOLDERS.items():
        folder = data_root / relative
        if not folder.exists():
            datasets[name] = {"present": False, "path": relative}
            continue
        entry = {"present": True, "path": relative, **_walk_stats(folder)}
        if name in EXPRESSION_COUNTERS:
            entry.update(EXPRESSION_COUNTERS[name](folder))
        datasets[name] = entry
    return {"data_root": str(data_root), "datasets": datasets}
