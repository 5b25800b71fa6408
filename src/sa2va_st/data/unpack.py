"""Unpack one verified archive into the dataset tree: staged, atomic per folder, idempotent."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..atomic import atomic_write_json, staging_dir
from ..errors import ArchiveError
from .archives import Archive, ExtractLimits
from .layout import describe_missing, find_units, place

log = logging.getLogger(__name__)


def receipt_parts(receipt: dict, receipt_path: Path) -> list[Path]:
    """The archive's parts as the receipt lists them, each still the size that was verified."""
    parts = []
    for part in receipt["parts"]:
        path = Path(part["path"])
        if not path.is_file() or path.stat().st_size != part["size"]:
            raise ArchiveError(
                f"{part['name']} changed or vanished since it was verified",
                file=str(path),
                fix=f"delete {receipt_path} and run the download step again",
            )
        parts.append(path)
    return parts


def archive_identity(receipt: dict) -> str:
    return "+".join(part["sha256"] for part in receipt["parts"])


def unpack_archive(receipt_path: Path, data_root: Path, marker_path: Path, limits: ExtractLimits) -> dict:
    """Extract the archive of `receipt_path` and move its datasets into `data_root`.

    The marker records the archive's checksums and what was placed; a second call with the same
    archive and everything still in place does nothing.
    """
    receipt = json.loads(receipt_path.read_text())
    identity = archive_identity(receipt)
    if marker_path.exists():
        previous = json.loads(marker_path.read_text())
        if previous.get("archive_sha256") == identity and all((data_root / d).exists() for d in previous["placed"]):
            log.info("%s already unpacked (same checksum); nothing to do", receipt["archive"])
            return previous
    parts = receipt_parts(receipt, receipt_path)
    data_root.mkdir(parents=True, exist_ok=True)
    with staging_dir(data_root, Path(receipt["archive"]).name) as staging:
        tree = staging / "tree"
        tree.mkdir()
        with Archive(parts, label=receipt["archive"]) as archive:
            members = archive.extract_to(tree, limits)
        units = find_units(tree, receipt["archive"])
        if not units:
            raise describe_missing(tree, receipt["archive"])
        placed: list[str] = []
        for unit in units:
            placed += place(unit, data_root, staging / "replaced")
            log.info("%s: %s -> %s", receipt["archive"], unit.kind, unit.dest)
    marker = {
        "archive": receipt["archive"],
        "archive_sha256": identity,
        "commit": receipt["commit"],
        "members": len(members),
        "bytes": sum(m.size for m in members),
        "placed": sorted(placed),
    }
    atomic_write_json(marker_path, marker)
    return marker
