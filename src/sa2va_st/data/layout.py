"""Find the datasets inside an unpacked archive by their marker files and move them into the tree
that users of the upstream project expect:

    {data_root}/refer_seg/{refcoco,refcoco+,refcocog}/     instances.json, refs(unc|umd).p
    {data_root}/refer_seg/coco2014/train2014/              the COCO images they share
    {data_root}/video_datas/{mevis,rvos,ReVOS}/
    {data_root}/temporal/{Charades,didemo}/{videos,annotations}/

Archive inner folder names are not documented and differ between releases, so nothing here
assumes them: a RefCOCO-family folder is one holding `instances.json` and a `refs(*).p`, a MeViS
split one holding `meta_expressions.json` and `mask_dict.json`, and so on.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .. import catalog
from ..errors import LayoutError

log = logging.getLogger(__name__)

# The single-dataset readers' folders (the REFER family is told apart by refer_seg_name).
FOLDER_OF_READER = {
    r: catalog.of_reader(r)[0].folder
    for r in (catalog.META_EXPRESSIONS, catalog.META_EXPRESSIONS_COUNTER, catalog.META_EXPRESSIONS_SHARED)
}

VIDEO_SUFFIXES = frozenset(catalog.VIDEO_SUFFIXES)
IMAGE_SUFFIXES = frozenset(catalog.IMAGE_SUFFIXES)


@dataclass(frozen=True)
class Unit:
    """One folder found in a staged tree and where it belongs under data_root."""

    kind: str  # a catalog reader (refer, mevis, rvos, revos), coco_images or videos
    source: Path
    dest: str  # relative to data_root
    merge: bool = False  # shared folders (COCO images) are merged file by file, others replaced whole


class Tree:
    """One walk of a staged folder: which files and subfolders each folder holds."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[Path, set[str]] = {}
        self.dirs: dict[Path, set[str]] = {}
        for here, subdirs, filenames in os.walk(root):
            self.files[Path(here)] = set(filenames)
            self.dirs[Path(here)] = set(subdirs)

    def folders_with(self, *names: str) -> list[Path]:
        return sorted(folder for folder, files in self.files.items() if all(n in files for n in names))

    def top_level(self) -> list[str]:
        return sorted(self.files[self.root] | self.dirs[self.root])


def refer_seg_name(folder: Path, refs_file: str, archive_name: str) -> str:
    """The RefCOCO-family dataset a folder holds: by its folder name, else its refs file, else the archive's
    name (each compared with the catalog's names and aliases); the family's first dataset otherwise."""
    family = catalog.of_reader(catalog.REFER)
    stem = archive_name.lower().split(".")[0]
    for key in (folder.name.lower(), refs_file, stem):
        for entry in family:
            if key == entry.name or key in entry.aliases:
                return entry.name
    return family[0].name


def find_units(staged: Path, archive_name: str) -> list[Unit]:
    """Every dataset folder of a staged archive, with its destination."""
    tree = Tree(staged)
    units: list[Unit] = []
    claimed: list[Path] = []

    def claim(unit: Unit) -> None:
        units.append(unit)
        claimed.append(unit.source)

    for folder in tree.folders_with("mask_dict_foreground.json"):
        claim(Unit(catalog.META_EXPRESSIONS_SHARED, folder, FOLDER_OF_READER[catalog.META_EXPRESSIONS_SHARED]))

    mevis_splits = [f for f in tree.folders_with("meta_expressions.json", "mask_dict.json") if not _inside(f, claimed)]
    for root in sorted({split.parent for split in mevis_splits}):
        claim(Unit(catalog.META_EXPRESSIONS, root, FOLDER_OF_READER[catalog.META_EXPRESSIONS]))

    for folder, subdirs in sorted(tree.dirs.items()):
        expressions = folder / "meta_expressions"
        if (
            "meta_expressions" in subdirs
            and not _inside(folder, claimed)
            and any(
                "meta_expressions.json" in tree.files.get(expressions / split, ()) for split in tree.dirs[expressions]
            )
        ):
            claim(Unit(catalog.META_EXPRESSIONS_COUNTER, folder, FOLDER_OF_READER[catalog.META_EXPRESSIONS_COUNTER]))

    for folder in tree.folders_with("instances.json"):
        refs = sorted(name for name in tree.files[folder] if re.fullmatch(r"refs\(\w+\)\.p", name))
        if refs and not _inside(folder, claimed):
            name = refer_seg_name(folder, refs[0], archive_name)
            claim(Unit(catalog.REFER, folder, catalog.dataset(name).folder))

    for folder in sorted(tree.files):
        if folder.name == "train2014" and not _inside(folder, claimed) and _count(tree.files[folder], IMAGE_SUFFIXES):
            claim(Unit("coco_images", folder, catalog.COCO_IMAGES, merge=True))

    destinations = [u.dest for u in units]
    duplicated = sorted({d for d in destinations if destinations.count(d) > 1})
    if duplicated:
        raise LayoutError(
            f"{archive_name} holds more than one folder for {', '.join(duplicated)}",
            file=archive_name,
            fix="unpack it by hand and keep one copy of each dataset",
        )
    return units


def find_video_folder(staged: Path, label: str) -> Path:
    """The folder that holds the videos of a video archive (whatever its inner name)."""
    tree = Tree(staged)
    best = max(tree.files, key=lambda f: _count(tree.files[f], VIDEO_SUFFIXES))
    if not _count(tree.files[best], VIDEO_SUFFIXES):
        raise LayoutError(
            f"{label} contains no video files ({', '.join(sorted(VIDEO_SUFFIXES))})",
            file=label,
            fix="check that the source points at the video archive",
        )
    return best


def describe_missing(staged: Path, archive_name: str) -> LayoutError:
    return LayoutError(
        f"{archive_name} contains no dataset this pipeline knows (top level: {', '.join(Tree(staged).top_level()[:10])})",
        file=archive_name,
        key="sa2va_training.files",
        fix="looked for instances.json + refs(*).p (RefCOCO family), train2014/ images, meta_expressions.json + "
        "mask_dict.json (MeViS), meta_expressions/<split>/meta_expressions.json (Ref-YouTube-VOS), "
        "mask_dict_foreground.json (ReVOS); remove this archive from the config if it is not one of them",
    )


def place(unit: Unit, data_root: Path, trash: Path) -> list[str]:
    """Move a unit into data_root. Replaced folders go to `trash` (inside the staging folder).

    Each move is one rename on the same filesystem, so a reader sees the old folder or the new one.
    Returns the destination paths written, relative to data_root.
    """
    dest = data_root / unit.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if unit.merge and dest.exists():
        return _merge(unit.source, dest, unit.dest)
    if dest.exists() or dest.is_symlink():
        trash.mkdir(parents=True, exist_ok=True)
        os.replace(dest, trash / f"{len(list(trash.iterdir()))}-{dest.name}")
    os.replace(unit.source, dest)
    return [unit.dest]


def _merge(source: Path, dest: Path, label: str) -> list[str]:
    """Move the files of `source` into the existing `dest`, keeping files already there."""
    moved = 0
    for here, _subdirs, filenames in os.walk(source):
        relative = Path(here).relative_to(source)
        (dest / relative).mkdir(parents=True, exist_ok=True)
        for filename in filenames:
            target = dest / relative / filename
            if not target.exists():
                os.replace(Path(here) / filename, target)
                moved += 1
    log.info("merged %d new files into %s", moved, label)
    return [label]


def _inside(folder: Path, claimed: list[Path]) -> bool:
    return any(folder == c or c in folder.parents for c in claimed)


def _count(filenames: set[str] | tuple, suffixes: frozenset[str]) -> int:
    return sum(1 for name in filenames if Path(name).suffix.lower() in suffixes)
