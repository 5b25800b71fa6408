"""What `prepare_data` produced: files, bytes, images, videos and expressions per dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

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
    refs_files = sorted(folder.glob("refs(*).p"))
    refs = load_builtin_pickle(refs_files[0]) if refs_files else []
    return {"refs": len(refs), "expressions": sum(len(ref["sentences"]) for ref in refs)}


def _meta_expression_counts(files: list[Path]) -> dict[str, int]:
    videos, expressions = set(), 0
    for path in files:
        meta = json.loads(path.read_text())["videos"]
        videos.update(f"{path.parent.name}/{vid}" for vid in meta)
        expressions += sum(len(video["expressions"]) for video in meta.values())
    return {"annotated_videos": len(videos), "expressions": expressions}


def _charades_expressions(folder: Path) -> dict[str, int]:
    lines = [line for path in sorted((folder / "annotations").glob("*.txt")) for line in path.read_text().splitlines() if line.strip()]
    return {"expressions": len(lines)}


def _didemo_expressions(folder: Path) -> dict[str, int]:
    return {"expressions": sum(len(json.loads(path.read_text())) for path in sorted((folder / "annotations").glob("*.json")))}


EXPRESSION_COUNTERS: dict[str, Callable[[Path], dict[str, int]]] = {
    "refcoco": _refer_seg_expressions,
    "refcoco+": _refer_seg_expressions,
    "refcocog": _refer_seg_expressions,
    "mevis": lambda folder: _meta_expression_counts(sorted(folder.glob("*/meta_expressions.json"))),
    "rvos": lambda folder: _meta_expression_counts(sorted(folder.glob("meta_expressions/*/meta_expressions.json"))),
    "revos": lambda folder: _meta_expression_counts(sorted(folder.glob("meta_expressions_*.json"))),
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
