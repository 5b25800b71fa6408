"""What the spatial and temporal builders share: reading special_jsons, listing folders once,
naming what is missing, writing tables and reports atomically, the per-split tally."""

from __future__ import annotations

import io
import logging
import os
import posixpath
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import catalog
from ..annotations.common import load_json
from ..annotations.special_jsons import REPORT as SPECIAL_REPORT
from ..annotations.special_jsons import fast_is_valid as special_fast_is_valid
from ..annotations.special_jsons import (
    kind_of,
    load_schemas,
    per_frame_valid,
    remove_unproduced_splits,
    slim_records,
    validate,
)
from ..atomic import atomic_write_bytes
from ..errors import AnnotationError, ManifestError
from .schemas import CLIP_REASONS, DROP_REASONS, FILE_REASONS, STRUCTURAL_FRACTION

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5  # dropped rows listed per reason and split in the report
SPECIAL_FIX = "rebuild special_jsons (snakemake special_jsons) from the prepared data; never edit them by hand"


# ----------------------------------------------------------------------------- paths


class Listings:
    """Names in a folder, each folder listed once (os.scandir), so checking a million frames
    costs one directory read per folder rather than one stat per file."""

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str] | None] = {}
        self._exists: dict[str, bool] = {}

    def names(self, folder: str) -> frozenset[str] | None:
        """The entry names of `folder`, or None when it is absent (or unreadable)."""
        if folder not in self._names:
            try:
                with os.scandir(folder) as entries:
                    self._names[folder] = frozenset(e.name for e in entries)
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                self._names[folder] = None
        return self._names[folder]

    def exists(self, path: str) -> bool:
        if path not in self._exists:
            self._exists[path] = os.path.exists(path)
        return self._exists[path]

    def cause(self, path: str) -> tuple[str, str]:
        """What to blame for a missing `path`: (the highest missing folder above it, "is missing"),
        or, when its folder exists, (that folder, "lacks files")."""
        top, parent = None, posixpath.dirname(path)
        while parent and parent not in ("/", ".") and not self.exists(parent):
            top, parent = parent, posixpath.dirname(parent)
        if top is not None:
            return top, "is missing"
        return (posixpath.dirname(path) or "."), "lacks files"


# ----------------------------------------------------------------------------- special_jsons


def special_datasets(
    special_jsons_dir: Path, kinds: Iterable[str], requested: Iterable[str] | None
) -> tuple[list[str], dict[str, str]]:
    """(datasets to build, {dataset: reason} for the skipped ones), in special_jsons order.

    Default: every dataset of these kinds that has a folder in special_jsons_dir. A requested
    dataset without one is skipped with the reason special_jsons' report gives, if any.
    """
    kinds = set(kinds)
    known = [name for name in catalog.NAMES if kind_of(name) in kinds]
    if requested is None:
        names = known
    else:
        names = list(dict.fromkeys(requested))
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ManifestError(
                f"unknown dataset(s) {', '.join(unknown)} for this stage",
                key="datasets",
                fix=f"choose from {', '.join(known)}",
            )
    special_report = special_jsons_report(special_jsons_dir)
    build, skipped = [], {}
    for name in names:
        if sorted((special_jsons_dir / name).glob("*.json")):
            build.append(name)
        else:
            entry = special_report.get(name, {})
            reason = entry.get("reason") if entry.get("status") == "skipped" else None
            skipped[name] = (
                f"special_jsons skipped it: {reason}" if reason else f"no special_jsons in {special_jsons_dir / name}"
            )
    return build, skipped


def special_jsons_report(special_jsons_dir: Path) -> dict:
    path = special_jsons_dir / SPECIAL_REPORT
    if not path.is_file():
        return {}
    try:
        return load_json(path).get("datasets", {})
    except (AnnotationError, AttributeError):
        return {}


def split_files(special_jsons_dir: Path, dataset: str) -> list[Path]:
    return sorted((special_jsons_dir / dataset).glob("*.json"))


def load_special(path: Path, kind: str, dataset: str, schemas: dict) -> dict:
    """A special_jsons split file, checked against its schema; ManifestError naming it otherwise."""
    try:
        doc = load_json(path)
        if not isinstance(doc, dict) or doc.get("kind") != kind:
            got = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
            raise AnnotationError(
                f"{path.name} has kind {got!r}, expected {kind!r} for {dataset}", file=str(path), key="kind"
            )
        validate_special(doc, schemas[kind], str(path))
    except AnnotationError as error:
        raise ManifestError(
            f"special_jsons file is not valid: {error.what}", file=str(path), key=error.key, fix=SPECIAL_FIX
        ) from None
    if doc["dataset"] != dataset or doc["split"] != path.stem:
        raise ManifestError(
            f"{path.name} says dataset {doc['dataset']!r}, split {doc['split']!r}; its path says {dataset!r}, {path.stem!r}",
            file=str(path),
            key="dataset",
            fix=SPECIAL_FIX,
        )
    return doc


try:  # compiles a schema to Python: ~50x faster than jsonschema on large files
    import fastjsonschema
except ImportError:  # pragma: no cover - jsonschema alone gives the same answers, slower
    fastjsonschema = None


def fast_is_valid(doc: Any, schema: dict) -> bool | None:
    """fastjsonschema's verdict, or None when it is not installed or cannot compile the schema."""
    if fastjsonschema is None:
        return None
    return special_fast_is_valid(doc, schema)


def validate_special(doc: dict, schema: dict, label: str) -> None:
    """AnnotationError (naming the place) unless `doc` matches its special_jsons schema, and, what
    the schema cannot say, a video record has one box per frame.

    jsonschema is the reference and writes the error message, but it takes ~0.3 ms per record and
    ~30 us per box: minutes for RefCOCO or MeViS (~2 M boxes). So the verdict comes from
    fastjsonschema when it is installed (the same schema compiled to Python; for video records, on
    the records cut to their first frame, and `per_frame_valid` checks every frame in bulk, ~0.3 us
    a box); otherwise, and to locate an error, jsonschema checks the records with their per-frame
    lists cut to the first item, and `check_per_frame` checks every item by the schema's own rules
    (frames: non-empty strings; boxes: null or 4 numbers in [0, 1]).
    """
    records = doc.get("records")
    video = doc.get("kind") == "video_refer" and isinstance(records, list)
    if video:
        slim = slim_records(records)
        if fast_is_valid({**doc, "records": slim}, schema) is True and per_frame_valid(records):
            check_box_counts(records, label)
            return
        validate({**doc, "records": slim}, schema, label)  # everything else, and the first item of each list
        check_per_frame(records, label)
    elif fast_is_valid(doc, schema) is not True:
        validate(doc, schema, label)


def objects_of(record: dict) -> int:
    """How many object entries each frame of a video record holds: one per referred object (>= 1)."""
    return max(1, len(record["anno_ids"]))


def check_box_counts(records: list[dict], label: str) -> None:
    """What the schema cannot say: one box entry per frame, and in each one entry per referred object."""
    for n, r in enumerate(records):
        if r["boxes"] is None:
            continue
        if len(r["boxes"]) != len(r["frames"]):
            raise _bad(
                label,
                f"records/{n}/boxes",
                f"{len(r['boxes'])} box entries for {len(r['frames'])} frames (one per frame expected)",
            )
        for k, frame in enumerate(r["boxes"]):
            if len(frame) != objects_of(r):
                raise _bad(
                    label,
                    f"records/{n}/boxes/{k}",
                    f"{len(frame)} object entries, the record refers to {objects_of(r)} object(s)",
                )


def check_per_frame(records: list[dict], label: str) -> None:
    for n, r in enumerate(records):
        frames, boxes = r["frames"], r["boxes"]
        for k, name in enumerate(frames):
            if not (isinstance(name, str) and name):
                raise _bad(label, f"records/{n}/frames/{k}", f"{name!r} is not a non-empty string")
        if boxes is None:
            continue
        for k, frame in enumerate(boxes):
            if not isinstance(frame, list) or not frame:
                raise _bad(label, f"records/{n}/boxes/{k}", f"{frame!r} is not a list with one entry per object")
            for j, box in enumerate(frame):
                if box is not None and not (
                    isinstance(box, list)
                    and len(box) == 4
                    and all(type(v) in (int, float) and 0 <= v <= 1 for v in box)
                ):
                    raise _bad(label, f"records/{n}/boxes/{k}/{j}", f"{box!r} is not null or 4 numbers in [0, 1]")
    check_box_counts(records, label)


def _bad(label: str, where: str, message: str) -> AnnotationError:
    return AnnotationError(f"{label} does not match its schema at {where}: {message}", file=label, key=where)


def special_schemas(schema_root: str | os.PathLike | None) -> dict:
    """The special_jsons schemas (``{schema_root}/special_jsons``; default: this checkout's)."""
    try:
        return load_schemas(None if schema_root is None else Path(schema_root) / "special_jsons")
    except AnnotationError as error:
        raise ManifestError(error.what, file=error.file, fix=error.fix) from None


# ----------------------------------------------------------------------------- the tally


def check_reason(reason: str, known: dict[str, str], what: str, kind: str) -> None:
    """A reason the report defines (`schemas`); any other is a bug of this stage, and must not pass silently
    (an `assert` would vanish under ``python -O`` and the report's counts would not add up)."""
    if reason not in known:
        raise ValueError(f"unknown {what} reason {reason!r} for {kind} manifests; the report defines {sorted(known)}")


@dataclass
class Tally:
    """What happened to the rows of one split."""

    kind: str  # image | video | temporal
    dataset: str
    split: str
    rows_in: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    clipped: Counter = field(default_factory=Counter)  # reason -> kept rows changed that way
    clipped_rows: int = 0  # kept rows with any change (a row may have two reasons)
    notes: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    missing: dict[str, Counter] = field(default_factory=dict)  # file reason -> Counter((path, how))

    def drop(self, reason: str, row_id: str, detail: str, cause: tuple[str, str] | None = None) -> None:
        check_reason(reason, DROP_REASONS[self.kind], "drop", self.kind)
        self.dropped[reason] += 1
        listed = self.examples.setdefault(reason, [])
        if len(listed) < MAX_EXAMPLES:
            listed.append({"id": row_id, "detail": detail})
        if cause is not None:
            self.missing.setdefault(reason, Counter())[cause] += 1

    def keep(self, fixes: Iterable[str] = ()) -> None:
        self.kept += 1
        fixes = list(fixes)
        for reason in fixes:
            check_reason(reason, CLIP_REASONS[self.kind], "clip", self.kind)
            self.clipped[reason] += 1
        self.clipped_rows += bool(fixes)

    def check_structure(self, source: Path) -> None:
        """ManifestError when one missing folder/file takes more than half of the split's rows."""
        for reason in sorted(FILE_REASONS & set(self.missing)):
            paths = self.missing[reason]
            total = sum(paths.values())
            if self.rows_in and total > STRUCTURAL_FRACTION * self.rows_in:
                (path, how), count = paths.most_common(1)[0]
                raise ManifestError(
                    f"{self.dataset}/{self.split}: {total} of {self.rows_in} rows would be dropped as {reason} "
                    f"(more than {STRUCTURAL_FRACTION:.0%}); {count} of them because {path} {how}",
                    file=path,
                    key=f"{self.dataset}/{self.split}",
                    fix=f"re-run the stage that places it (unpack / fetch / extract_clip_features), or check data_root; "
                    f"rows come from {source}",
                )

    def entry(self, manifest: str, sha256: str) -> dict:
        return {
            "manifest": manifest,
            "sha256": sha256,
            "rows_in": self.rows_in,
            "kept": self.kept,
            "clipped": {"rows": self.clipped_rows, "by_reason": {r: self.clipped[r] for r in CLIP_REASONS[self.kind]}},
            "dropped": {
                "rows": sum(self.dropped.values()),
                "by_reason": {r: self.dropped[r] for r in DROP_REASONS[self.kind]},
            },
            "notes": dict(sorted(self.notes.items())),
            "examples": {r: self.examples[r] for r in DROP_REASONS[self.kind] if r in self.examples},
        }


# ----------------------------------------------------------------------------- writing


def to_table(rows: dict[str, list], schema: pa.Schema) -> pa.Table:
    """Columns -> an Arrow table of exactly `schema` (compact: builds hold tables, not Python rows)."""
    for f in schema:
        if not f.nullable and any(v is None for v in rows[f.name]):
            raise AssertionError(f"null in non-nullable column {f.name}")  # a bug here, never bad input
    return pa.Table.from_pydict({f.name: rows[f.name] for f in schema}, schema=schema)


def write_table(table: pa.Table, path: Path) -> str:
    """Parquet, written atomically; returns the sha256 of the bytes."""
    import hashlib

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def write_built(
    out: Path, built: dict[str, tuple[str, list[tuple[Tally, pa.Table]]]], skipped: dict[str, str], report: dict
) -> None:
    """Write every checked table of ``built`` (dataset -> (kind, [(tally, table), ...])) under ``out``,
    record it in ``report["datasets"]``, and clear the folders of stale splits and skipped datasets."""
    for name, (kind, results) in built.items():
        entry = {"status": "built", "kind": kind, "splits": {}}
        for tally, table in results:
            relative = f"{name}/{tally.split}.parquet"
            sha = write_table(table, out / relative)
            entry["splits"][tally.split] = tally.entry(relative, sha)
            log.info(
                "%s: %d in, %d kept (%d clipped), %d dropped %s",
                relative,
                tally.rows_in,
                tally.kept,
                tally.clipped_rows,
                sum(tally.dropped.values()),
                dict(tally.dropped),
            )
        remove_unproduced_splits(out / name, {f"{t.split}.parquet" for t, _ in results}, "*.parquet")
        report["datasets"][name] = entry
    for name, reason in skipped.items():
        report["datasets"][name] = {"status": "skipped", "reason": reason}
        remove_unproduced_splits(out / name, set(), "*.parquet")
