"""Readers for every raw annotation format, and the fps-independent `special_jsons` sidecars.

One module per family, each returning typed records (dataclasses) plus counts:

    refcoco.read_refcoco(folder, dataset)         RefCOCO / RefCOCO+ / RefCOCOg (refs pickle + instances.json)
    video_refer.read_mevis_split(split_dir)       MeViS (meta_expressions.json + mask_dict.json)
    video_refer.read_revos_split(root, split)     ReVOS (meta_expressions_{split}_.json + mask_dict.json; type_id kept)
    video_refer.read_rvos_split(root, split, pkl) Ref-YouTube-VOS (no anno_id; mask_dict.pkl keyed by a counter)
    charades.read_charades_text / _jsonl          Charades-STA, official text or JSONL
    didemo.read_didemo(path, split)               DiDeMo (5-second chunks, most agreed window)
    special_jsons.build_special_jsons(data_root, out_dir)

What is fatal and what is counted (the same rule everywhere):

* Fatal (AnnotationError naming file, line or key, and fix): malformed input -- unparsable file
  or line, missing key, wrong type, a mask list whose length is not the frame count, an RLE
  that does not decode to exactly height x width pixels, masks of one video with different
  sizes, an id that points nowhere (image, annotation, mask entry, or a video outside a given
  list), duplicate ids, a Ref-YouTube-VOS mask pickle whose keys are not 0..n-1. A pickle asking
  for a forbidden global raises UnsafePickleError and runs nothing.
* Kept and counted (known flaws of well-formed data): windows with start > end (ordered; the
  as-written window kept), zero-length windows, empty masks (box None; expressions with no
  visible target, e.g. ReVOS type_id 2), degenerate polygon parts, DiDeMo mode ties and chunk
  indices past num_segments, mask entries no expression uses, blank lines.
* Nothing is dropped here. Dropping (and clipping windows to the video's duration, which needs
  the video) is the manifests stage's job, which counts what it drops.
"""

from ..errors import AnnotationError
from .charades import CharadesQuery, CharadesSplit, read_charades, read_charades_jsonl, read_charades_text
from .didemo import DidemoQuery, DidemoSplit, chunks_to_seconds, most_agreed, read_didemo
from .masks import check_rle, normalise, polygons_rle, rle_box
from .refcoco import ImageExpression, RefcocoData, read_instances, read_refcoco, read_refs
from .special_jsons import KINDS, build_special_jsons, dumps, kind_of, load_schemas, read_special_json, validate
from .video_refer import (
    VideoGrounding,
    VideoReferSplit,
    read_mask_dict,
    read_meta_expressions,
    read_mevis_split,
    read_revos_split,
    read_rvos_split,
)
from .windows import Window, clip_window, window

__all__ = [
    "AnnotationError",
    "CharadesQuery",
    "CharadesSplit",
    "DidemoQuery",
    "DidemoSplit",
    "ImageExpression",
    "RefcocoData",
    "VideoGrounding",
    "VideoReferSplit",
    "KINDS",
    "Window",
    "build_special_jsons",
    "check_rle",
    "chunks_to_seconds",
    "clip_window",
    "dumps",
    "kind_of",
    "load_schemas",
    "most_agreed",
    "normalise",
    "polygons_rle",
    "read_charades",
    "read_charades_jsonl",
    "read_charades_text",
    "read_didemo",
    "read_instances",
    "read_mask_dict",
    "read_meta_expressions",
    "read_mevis_split",
    "read_refcoco",
    "read_refs",
    "read_revos_split",
    "read_rvos_split",
    "read_special_json",
    "rle_box",
    "validate",
    "window",
]
