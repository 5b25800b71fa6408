"""The `special_jsons` sidecars: fps-independent normalised annotations, one file per dataset and split.

    {out_dir}/{dataset}/{split}.json     dataset in refcoco, refcoco+, refcocog, mevis, rvos, revos, charades, didemo
    {out_dir}/report.json                what was built or skipped, and counts per dataset and split

Every file is validated against its JSON schema (workflow/schemas/special_jsons/) before it is
written, and written atomically. The bytes depend only on the input files: keys sorted, floats
rounded to 6 decimals, records in a fixed order, paths relative to data_root, no timestamps.
Records are one per line, so the files diff and grep well. The format is documented in
workflow/schemas/special_jsons/README.md.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from .. import catalog
from ..atomic import atomic_write_text, sha256_file
from ..errors import AnnotationError
from .charades import read_charades
from .common import gc_paused, relative
from .didemo import read_didemo
from .refcoco import read_refcoco
from .video_refer import (
    VideoGrounding,
    VideoReferSplit,
    find_mask_dict,
    read_mask_dict,
    read_mevis_split,
    read_revos_split,
    read_rvos_split,
    revos_splits,
    rvos_splits,
)

log = logging.getLogger(__name__)

FORMAT = "sa2va_st.special_jsons"
# 2: kinds named by format (moments, chunked_moments), not by dataset; 3: a video record's boxes are
# per frame and per object (boxes[t][k]), no longer the hull of the objects' union
FORMAT_VERSION = 3
REPORT = "report.json"
BOX_FORMAT = "xyxy_normalised"  # [x1, y1, x2, y2] / [width, height, width, height]; x2, y2 exclusive pixel edges
WINDOW_FORMAT = "seconds_ordered_unclipped"  # [start, end], start <= end; clipped to the duration by the manifests
FRAME_SUFFIX = ".jpg"  # video frames are <name>.jpg in their video's folder, as upstream reads them

IMAGE_REFER, VIDEO_REFER, MOMENTS, CHUNKED_MOMENTS = "image_refer", "video_refer", "moments", "chunked_moments"
# the sidecar kind (and schema) each annotation reader's datasets get
KIND_OF_READER = {
    catalog.REFER: IMAGE_REFER,
    catalog.META_EXPRESSIONS: VIDEO_REFER,
    catalog.META_EXPRESSIONS_SHARED: VIDEO_REFER,
    catalog.META_EXPRESSIONS_COUNTER: VIDEO_REFER,
    catalog.STA_TEXT: MOMENTS,
    catalog.CHUNKS: CHUNKED_MOMENTS,
}
KINDS = (IMAGE_REFER, VIDEO_REFER, MOMENTS, CHUNKED_MOMENTS, "report")


def kind_of(dataset: str) -> str:
    """The sidecar kind of a dataset's special_jsons (its schema is ``{kind}.schema.json``)."""
    return KIND_OF_READER[catalog.dataset(dataset).reader]


CHARADES_SPLITS = ("train", "test")
DIDEMO_SPLITS = ("train", "val", "test")


@dataclass
class SplitDoc:
    """One output file before it is written."""

    dataset: str
    split: str
    kind: str
    doc: dict
    mask_file: str | None = None  # relative to data_root
    mask_keys: frozenset[str] = frozenset()
    used_mask_keys: frozenset[str] = frozenset()


def default_schema_dir() -> Path:
    """workflow/schemas/special_jsons of the checkout this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "special_jsons"


def load_schemas(schema_dir: Path | None = None) -> dict[str, dict]:
    folder = Path(schema_dir) if schema_dir is not None else default_schema_dir()
    schemas = {}
    for kind in KINDS:
        path = folder / f"{kind}.schema.json"
        try:
            schemas[kind] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise AnnotationError(
                f"cannot read the special_jsons schema {path.name} ({error})",
                file=str(path),
                fix="run from a checkout of the project (pip install -e .) or pass schema_dir / --schema-dir",
            ) from None
        jsonschema.Draft202012Validator.check_schema(schemas[kind])
    return schemas


def validate(doc: Any, schema: dict, label: str) -> None:
    """AnnotationError naming the first place where `doc` breaks `schema`."""
    validator = jsonschema.Draft202012Validator(schema)
    if validator.is_valid(doc):  # one pass; errors are only collected (and sorted) when there are some
        return
    error = min(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path], default=None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise AnnotationError(
            f"{label} does not match its schema at {where}: {error.message[:300]}",
            file=label,
            key=where,
            fix="this is a bug in the special_jsons builder or a hand-edited file; rebuild it",
        )


try:  # compiles a schema to Python: ~50x faster than jsonschema on large files
    import fastjsonschema
except ImportError:  # pragma: no cover - jsonschema alone gives the same answers, slower
    fastjsonschema = None
_COMPILED: dict[str, Any] = {}
PER_FRAME = ("frames", "boxes")  # video_refer lists with one entry per frame


def fast_is_valid(doc: Any, schema: dict) -> bool | None:
    """fastjsonschema's verdict, or None when it is not installed or cannot compile the schema."""
    if fastjsonschema is None:
        return None
    key = json.dumps(schema, sort_keys=True)
    if key not in _COMPILED:
        try:
            _COMPILED[key] = fastjsonschema.compile(schema)
        except fastjsonschema.JsonSchemaDefinitionException:
            _COMPILED[key] = None
    check = _COMPILED[key]
    if check is None:
        return None
    try:
        check(doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def slim_records(records: list) -> list:
    """Video records with their per-frame lists cut to the first item (what the schema says of the rest,
    per_frame_valid checks in bulk)."""
    return [
        {**r, **{k: r[k][:1] for k in PER_FRAME if isinstance(r.get(k), list)}} if isinstance(r, dict) else r
        for r in records
    ]


def per_frame_valid(records: list[dict]) -> bool:
    """True when every frame name is a non-empty str and every frame's entry a list, of one box-or-null
    per object, each box 4 finite numbers in [0, 1] (the schema's rule for the items of `frames` and
    `boxes`, NaN excluded), checked with C-level builtins over all records at once. For records that
    passed the schema with `slim_records`. False means "look closer"."""
    names = list(itertools.chain.from_iterable(r["frames"] for r in records))
    if set(map(type, names)) - {str} or "" in names:
        return False
    frames = list(itertools.chain.from_iterable(r["boxes"] for r in records if r["boxes"] is not None))
    if set(map(type, frames)) - {list}:
        return False
    items = list(itertools.chain.from_iterable(frames))
    if set(map(type, items)) - {list, type(None)}:
        return False
    boxes = [b for b in items if b is not None]
    if set(map(len, boxes)) - {4}:
        return False
    values = list(itertools.chain.from_iterable(boxes))
    if set(map(type, values)) - {float, int}:
        return False
    if values:
        total = sum(values)
        if total != total or min(values) < 0 or max(values) > 1:  # NaN anywhere makes the sum NaN
            return False
    return True


def quick_valid(doc: Any, schema: dict) -> bool | None:
    """True when `doc` surely matches `schema` (fastjsonschema; for video records, on the records cut to their
    first frame plus per_frame_valid over every frame), False when it may not, None without fastjsonschema."""
    records = doc.get("records") if isinstance(doc, dict) else None
    if isinstance(doc, dict) and doc.get("kind") == "video_refer" and isinstance(records, list):
        verdict = fast_is_valid({**doc, "records": slim_records(records)}, schema)
        return verdict and per_frame_valid(records)
    return fast_is_valid(doc, schema)


def validate_quickly(doc: Any, schema: dict, label: str) -> None:
    """validate(), with quick_valid's verdict first: jsonschema only runs when that is not True (to decide
    and name the error). jsonschema takes ~0.3 ms per record and ~30 us per box: minutes for MeViS."""
    if quick_valid(doc, schema) is not True:
        validate(doc, schema, label)


_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, allow_nan=False)  # = json.dumps with these options


def dumps(doc: dict) -> str:
    """Canonical JSON: sorted keys, one record per line, UTF-8, trailing newline."""
    parts = []
    encode = _ENCODER.encode
    for key in sorted(doc):
        value = doc[key]
        if key == "records" and value:
            lines = ",\n".join(map(encode, value))
            text = "[\n" + lines + "\n]"
        else:
            text = encode(value)
        parts.append(f"{json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


_HASHES: dict[tuple[str, int, int], str] = {}


def source_hash(path: Path) -> str:
    """sha256 of an input file, computed once per build even when several splits share the file."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def header(dataset: str, split: str, kind: str, counts: dict, sources: Iterable[Path], data_root: Path) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "dataset": dataset,
        "split": split,
        "counts": counts,
        "sources": {relative(p, data_root): source_hash(p) for p in sorted(set(sources))},
    }


def box_list(box) -> list[float] | None:
    return None if box is None else list(map(float, box))


# ----------------------------------------------------------------------------- spatial


def refcoco_docs(data_root: Path, entry: catalog.Dataset) -> list[SplitDoc]:
    dataset = entry.name
    folder = data_root / entry.folder
    data = read_refcoco(folder, dataset)
    by_split: dict[str, list[dict]] = {}
    for e in data.expressions:
        by_split.setdefault(e.split, []).append(
            {
                "id": f"{e.ref_id}/{e.sent_id}",
                "ref_id": e.ref_id,
                "sent_id": e.sent_id,
                "ann_id": e.ann_id,
                "image_id": e.image_id,
                "category_id": e.category_id,
                "sentence": e.sentence,
                "raw": e.raw,
                "frame_dir": catalog.COCO_IMAGES,
                "frames": [e.file_name],
                "width": e.width,
                "height": e.height,
                "boxes": [box_list(e.box)],
            }
        )
    docs = []
    for split, records in sorted(by_split.items()):
        doc = header(
            dataset, split, "image_refer", data.counts[split], [data.refs_file, data.instances_file], data_root
        )
        doc.update(annotated=True, box_format=BOX_FORMAT, records=records)
        docs.append(SplitDoc(dataset, split, "image_refer", doc))
    return docs


def frame_file(name: str) -> str:
    return name if name.lower().endswith((".jpg", ".jpeg", ".png")) else name + FRAME_SUFFIX


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header, or None when it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError):
        return None


def video_record(g: VideoGrounding, frame_dir: str, data_root: Path, frames: list[str] | None = None) -> dict:
    """One record; `frames` (the frame file names) may be given, computed once for the video's expressions."""
    width, height = g.width, g.height
    frames = [frame_file(f) for f in g.frames] if frames is None else frames
    if width is None:  # no mask says how big the video is: ask its first frame
        size = image_size(data_root / frame_dir / frames[0])
        width, height = size if size else (None, None)
    record = {
        "id": f"{g.video}/{g.exp_id}",
        "video": g.video,
        "exp_id": g.exp_id,
        "sentence": g.sentence,
        "obj_ids": list(g.obj_ids),
        "anno_ids": list(g.anno_ids),
        "frame_dir": frame_dir,
        "frames": frames,
        "width": width,
        "height": height,
        # per frame, one entry per object (anno_ids order): its box, or None where it is not visible
        "boxes": None if g.boxes is None else [[None if b is None else list(b) for b in frame] for frame in g.boxes],
    }
    if g.type_id is not None:
        record["type_id"] = g.type_id
    return record


def video_doc(
    data_root: Path, result: VideoReferSplit, frames_root: str, extra_sources: Iterable[Path] = ()
) -> SplitDoc:
    sources = [result.meta_file, *extra_sources] + ([result.mask_file] if result.mask_file else [])
    doc = header(result.dataset, result.split, "video_refer", result.counts, sources, data_root)
    names: dict[str, list[str]] = {}  # per video: its records list the same frames
    records = []
    for g in result.records:
        if g.video not in names:
            names[g.video] = [frame_file(f) for f in g.frames]
        records.append(video_record(g, f"{frames_root}/{g.video}", data_root, names[g.video]))
    doc.update(annotated=result.mask_file is not None, box_format=BOX_FORMAT, records=records)
    mask_file = relative(result.mask_file, data_root) if result.mask_file else None
    return SplitDoc(
        result.dataset,
        result.split,
        "video_refer",
        doc,
        mask_file,
        frozenset(result.mask_keys),
        frozenset(result.used_mask_keys),
    )


def mevis_docs(data_root: Path, entry: catalog.Dataset) -> list[SplitDoc]:
    dataset = entry.name
    root = data_root / entry.folder
    splits = sorted(p for p in root.iterdir() if (p / "meta_expressions.json").is_file())
    if not splits:
        raise missing_files(dataset, root, "no <split>/meta_expressions.json")
    docs = []
    for split_dir in splits:
        result = read_mevis_split(split_dir, dataset)
        docs.append(video_doc(data_root, result, f"{entry.folder}/{split_dir.name}/JPEGImages"))
    return docs


def rvos_docs(data_root: Path, entry: catalog.Dataset) -> list[SplitDoc]:
    dataset = entry.name
    root = data_root / entry.folder
    splits = rvos_splits(root)
    if not splits:
        raise missing_files(dataset, root, "no meta_expressions/<split>/meta_expressions.json")
    docs = []
    for split in splits:
        # The released mask_dict.pkl holds the train split's masks; a per-split one may sit beside the meta file.
        candidates = [root / "meta_expressions" / split / "mask_dict.pkl"] + (
            [root / "mask_dict.pkl"] if split == "train" else []
        )
        mask_path = next((p for p in candidates if p.is_file()), None)
        result = read_rvos_split(root, split, mask_path, dataset=dataset)
        docs.append(video_doc(data_root, result, f"{entry.folder}/{split}/JPEGImages"))
    return docs


def revos_docs(data_root: Path, entry: catalog.Dataset) -> list[SplitDoc]:
    dataset = entry.name
    root = data_root / entry.folder
    splits = revos_splits(root)
    if not splits:
        raise missing_files(dataset, root, "no meta_expressions_<split>_.json")
    mask_path = find_mask_dict(root)
    masks = read_mask_dict(mask_path) if mask_path is not None else None
    return [
        video_doc(data_root, read_revos_split(root, split, masks, dataset), f"{entry.folder}/JPEGImages")
        for split in splits
    ]


# ----------------------------------------------------------------------------- temporal


def charades_files(folder: Path) -> dict[str, Path]:
    """split -> annotation file: charades_sta_{split}.txt (official) before a *{split}*.jsonl."""
    found: dict[str, Path] = {}
    for split in CHARADES_SPLITS:
        token = re.compile(rf"(?:^|[_\-.]){split}(?:$|[_\-.])")
        for suffix in (".txt", ".jsonl"):
            matches = sorted(p for p in folder.glob(f"*{suffix}") if token.search(p.stem))
            if len(matches) > 1:
                raise AnnotationError(
                    f"several Charades-STA {split} files: {', '.join(p.name for p in matches)}",
                    file=str(folder),
                    fix=f"keep one {split} annotation file in {folder}",
                )
            if matches:
                found[split] = matches[0]
                break
    return found


def charades_docs(data_root: Path, entry: catalog.Dataset) -> list[SplitDoc]:
    dataset = entry.name
    folder = data_root / entry.annotations_folder
    files = charades_files(folder)
    if not files:
        raise missing_files(dataset, folder, "no charades_sta_{train,test}.txt (or *_{train,test}*.jsonl)")
    docs = []
    for split, path in sorted(files.items()):
        result = read_charades(path, split)
        records = []
        for q in result.records:
            record = {
                "id": q.qid,
                "video": q.video,
                "sentence": q.sentence,
                "window": list(q.window.ordered),
                "line": q.line,
            }
            if q.window.reordered:
                record["window_as_written"] = list(q.window.written)
            if q.duration is not None:
                record["duration"] = q.duration
            records.append(record)
        doc = header(dataset, split, MOMENTS, result.counts, [path], data_root)
        doc.update(source_format=result.source_format, window_format=WINDOW_FORMAT, records=records)
        docs.append(SplitDoc(dataset, split, MOMENTS, doc))
    return docs


def didemo_docs(data_root: Path, entry: catalog.Dataset) -> list[SplitDoc]:
    dataset = entry.name
    folder = data_root / entry.annotations_folder
    files = {
        split: folder / f"{split}_data.json" for split in DIDEMO_SPLITS if (folder / f"{split}_data.json").is_file()
    }
    if not files:
        raise missing_files(dataset, folder, "no {train,val,test}_data.json")
    docs = []
    for split, path in sorted(files.items()):
        result = read_didemo(path, split)
        records = [
            {
                "id": q.annotation_id,
                "video": q.video,
                "sentence": q.sentence,
                "window": list(q.window),
                "window_chunks": list(q.chunks),
                "annotator_windows": [list(t) for t in q.times],
                "agreement": q.agreement,
                "tie": q.tie,
                "num_segments": q.num_segments,
            }
            for q in result.records
        ]
        doc = header(dataset, split, CHUNKED_MOMENTS, result.counts, [path], data_root)
        doc.update(window_format=WINDOW_FORMAT, chunk_seconds=5, records=records)
        docs.append(SplitDoc(dataset, split, CHUNKED_MOMENTS, doc))
    return docs


def missing_files(dataset: str, folder: Path, what: str) -> AnnotationError:
    return AnnotationError(
        f"{dataset}: {folder.name}/ exists but holds {what}",
        file=str(folder),
        fix=f"re-run the unpack/fetch step for {dataset}, or remove the folder to skip the dataset",
    )


# reader -> the builder of its datasets' sidecars
BUILDERS: dict[str, Callable[[Path, catalog.Dataset], list[SplitDoc]]] = {
    catalog.REFER: refcoco_docs,
    catalog.META_EXPRESSIONS: mevis_docs,
    catalog.META_EXPRESSIONS_COUNTER: rvos_docs,
    catalog.META_EXPRESSIONS_SHARED: revos_docs,
    catalog.STA_TEXT: charades_docs,
    catalog.CHUNKS: didemo_docs,
}


# ----------------------------------------------------------------------------- the whole stage


def mask_usage(docs: list[SplitDoc]) -> dict | None:
    """For mask-dict datasets: how many mask entries exist, and how many no expression of any split uses."""
    files: dict[str, tuple[set[str], set[str]]] = {}
    for d in docs:
        if d.mask_file is not None:
            keys, used = files.setdefault(d.mask_file, (set(), set()))
            keys |= d.mask_keys
            used |= d.used_mask_keys
    if not files:
        return None
    return {"entries": sum(len(k) for k, _ in files.values()), "unused": sum(len(k - u) for k, u in files.values())}


def build_special_jsons(
    data_root: Path, out_dir: Path, datasets: Iterable[str] | None = None, schema_dir: Path | None = None
) -> dict:
    """Read every present dataset under data_root, write its special_jsons into out_dir, return the report.

    A dataset whose folder is absent is skipped (the report says so). Malformed input raises
    AnnotationError before anything of that dataset is written; files already written for
    other datasets stay valid.
    """
    with gc_paused():  # millions of acyclic objects come and go: garbage collections would only walk them
        return _build_special_jsons(Path(data_root), Path(out_dir), datasets, schema_dir)


def _build_special_jsons(
    data_root: Path, out_dir: Path, datasets: Iterable[str] | None, schema_dir: Path | None
) -> dict:
    names = list(catalog.NAMES) if datasets is None else list(dict.fromkeys(datasets))
    unknown = [n for n in names if n not in catalog.BY_NAME]
    if unknown:
        raise AnnotationError(
            f"unknown dataset(s) {', '.join(unknown)}", key="datasets", fix=f"choose from {', '.join(catalog.NAMES)}"
        )
    schemas = load_schemas(schema_dir)
    report: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "report", "datasets": {}}
    for name in names:
        dataset = catalog.dataset(name)
        folder_name = dataset.annotations_folder
        folder = data_root / folder_name
        if not folder.is_dir():
            log.info("%s: %s is absent; skipped", name, folder_name)
            report["datasets"][name] = {
                "status": "skipped",
                "folder": folder_name,
                "reason": f"{folder_name} is absent under data_root",
            }
            remove_unproduced_splits(out_dir / name, keep=set())
            continue
        docs = BUILDERS[dataset.reader](data_root, dataset)
        entry: dict[str, Any] = {"status": "built", "folder": folder_name, "splits": {}}
        for split_doc in docs:
            relative_path = f"{name}/{split_doc.split}.json"
            validate_quickly(split_doc.doc, schemas[split_doc.kind], relative_path)
            text = dumps(split_doc.doc)
            atomic_write_text(out_dir / relative_path, text)
            entry["splits"][split_doc.split] = {
                "file": relative_path,
                "counts": split_doc.doc["counts"],
                "sha256": sha256_text(text),
            }
            log.info("%s: %d records", relative_path, split_doc.doc["counts"]["records"])
        usage = mask_usage(docs)
        if usage is not None:
            entry["mask_entries"] = usage
        remove_unproduced_splits(out_dir / name, keep={f"{d.split}.json" for d in docs})
        report["datasets"][name] = entry
    validate(report, schemas["report"], REPORT)
    atomic_write_text(out_dir / REPORT, dumps(report))
    return report


def sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def remove_unproduced_splits(folder: Path, keep: set[str], pattern: str = "*.json") -> None:
    """Split files (``pattern``) of an earlier run that this run did not write (a split or dataset that is gone)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(pattern)):
        if path.name not in keep:
            log.info("removing %s: not produced by this run", path)
            path.unlink()


def read_special_json(path: Path, schema_dir: Path | None = None) -> dict:
    """A special_jsons file, validated against its schema (for the manifests stage and tests)."""
    from .common import load_json

    doc = load_json(Path(path))
    kind = doc.get("kind") if isinstance(doc, dict) else None
    schemas = load_schemas(schema_dir)
    if kind not in schemas:
        raise AnnotationError(
            f"{Path(path).name} has kind {kind!r}", file=str(path), key="kind", fix="rebuild special_jsons"
        )
    validate(doc, schemas[kind], str(path))
    return doc
