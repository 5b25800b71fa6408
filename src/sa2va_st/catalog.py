"""The tasks and datasets of the mission: one list, at the bottom floor, that every stage imports.

Definitions:

- **Task.** What a sample asks the model: `IMAGE_GROUNDING` (boxes in a still image), `VIDEO_GROUNDING`
  (a box per sampled frame of a clip) or `TEMPORAL_GROUNDING` (a time window of a video). A training
  batch holds one task only.
- **Dataset.** One entry of `DATASETS`: its ``name`` (the key everything else uses: config keys,
  special_jsons and manifest folders, sampler repeats, metric files), its task, its folder under
  ``data_root`` (the tree upstream's users know), which annotation ``reader`` understands its files,
  upstream's repeat factor in the training mix, and the splits it is scored on with its metrics.
- **Reader.** The annotation format of a dataset (one reader may serve several datasets): `REFER`
  (the REFER toolkit's refs pickle over COCO ``instances.json``), `META_EXPRESSIONS` (MeViS: one
  folder per split, ``meta_expressions.json`` + ``mask_dict.json``), `META_EXPRESSIONS_SHARED` (ReVOS:
  split expression files over one shared mask dict), `META_EXPRESSIONS_COUNTER` (Ref-YouTube-VOS: a
  mask pickle keyed by a running counter), `STA_TEXT` (Charades-STA's ``VID START END##sentence``
  lines) and `CHUNKS` (DiDeMo's 5-second chunk windows of several annotators).

Nothing here imports anything but the standard library: this module is below every other one.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_GROUNDING = "image_grounding"
VIDEO_GROUNDING = "video_grounding"
TEMPORAL_GROUNDING = "temporal_grounding"
TASKS = (IMAGE_GROUNDING, VIDEO_GROUNDING, TEMPORAL_GROUNDING)

REFER = "refer"
META_EXPRESSIONS = "meta_expressions"
META_EXPRESSIONS_SHARED = "meta_expressions_shared_masks"
META_EXPRESSIONS_COUNTER = "meta_expressions_counter_keys"
STA_TEXT = "sta_text"
CHUNKS = "chunk_windows"
READERS = (REFER, META_EXPRESSIONS, META_EXPRESSIONS_SHARED, META_EXPRESSIONS_COUNTER, STA_TEXT, CHUNKS)

COCO_IMAGES = "refer_seg/coco2014/train2014"  # the COCO images the RefCOCO family shares, under data_root
# The containers people keep videos in (every stage that lists videos reads these; others are skipped, logged).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Split:
    """One split a dataset is scored on.

    ``ground_truth``: ``local`` (scored here) or ``server`` (the labels are held by an evaluation
    server: the pipeline writes the submission instead); ``subsets`` name the parts reported
    separately (ReVOS: referring and reasoning).
    """

    name: str
    ground_truth: str = "local"
    subsets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    """One dataset of the mission; see the module docstring."""

    name: str
    title: str  # as papers write it
    task: str
    folder: str  # under data_root
    reader: str
    repeat: float  # upstream's samples per epoch, as a multiple of the dataset's size
    annotations: str = ""  # the folder of the annotation files, under `folder` ("" = `folder` itself)
    videos: str | None = None  # the folder of the video files, under `folder` (temporal datasets)
    refs_file: str | None = None  # REFER: the refs pickle upstream trains on
    aliases: tuple[str, ...] = ()  # other spellings that mean it: folder and archive names, refs files
    eval_splits: tuple[Split, ...] = ()
    metrics: tuple[str, ...] = ()

    @property
    def annotations_folder(self) -> str:
        return f"{self.folder}/{self.annotations}" if self.annotations else self.folder

    @property
    def videos_folder(self) -> str | None:
        return f"{self.folder}/{self.videos}" if self.videos is not None else None


BOX_METRICS = ("Acc@0.5", "box_mIoU", "cIoU", "gIoU")
VIDEO_METRICS = ("J", "F", "J&F")
TEMPORAL_METRICS = ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "mAP")
MASK_METRICS = ("cIoU", "gIoU", *VIDEO_METRICS)  # the ones SAM2's masks decide
REFCOCO_SPLITS = (Split("val"), Split("testA"), Split("testB"))

# Upstream (sa2va_4b_shared) lists MeViS twice with repeat 4; one entry with repeat 8 is the same mix.
DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "refcoco", "RefCOCO", IMAGE_GROUNDING, "refer_seg/refcoco", REFER, 1, refs_file="refs(unc).p",
        eval_splits=REFCOCO_SPLITS, metrics=BOX_METRICS,
    ),
    Dataset(
        "refcoco+", "RefCOCO+", IMAGE_GROUNDING, "refer_seg/refcoco+", REFER, 1, refs_file="refs(unc).p",
        aliases=("refcoco_plus", "refcocoplus", "refcoco_+", "ref_seg_coco_+", "ref_seg_coco_plus"), eval_splits=REFCOCO_SPLITS, metrics=BOX_METRICS,
    ),
    Dataset(
        "refcocog", "RefCOCOg", IMAGE_GROUNDING, "refer_seg/refcocog", REFER, 1, refs_file="refs(umd).p",
        aliases=("refcoco_g", "ref_seg_coco_g", "refs(umd).p", "refs(google).p"), eval_splits=(Split("val"), Split("test")), metrics=BOX_METRICS,
    ),
    Dataset(
        "mevis", "MeViS", VIDEO_GROUNDING, "video_datas/mevis", META_EXPRESSIONS, 8,
        eval_splits=(Split("valid_u"), Split("valid", ground_truth="server")), metrics=VIDEO_METRICS,
    ),
    Dataset(
        "rvos", "Ref-YouTube-VOS", VIDEO_GROUNDING, "video_datas/rvos", META_EXPRESSIONS_COUNTER, 4,
        eval_splits=(Split("valid", ground_truth="server"),), metrics=VIDEO_METRICS,
    ),
    Dataset(
        "revos", "ReVOS", VIDEO_GROUNDING, "video_datas/ReVOS", META_EXPRESSIONS_SHARED, 8,
        eval_splits=(Split("valid", subsets=("referring", "reasoning")),), metrics=VIDEO_METRICS,
    ),
    Dataset(
        "charades", "Charades-STA", TEMPORAL_GROUNDING, "temporal/Charades", STA_TEXT, 4,
        annotations="annotations", videos="videos", eval_splits=(Split("test"),), metrics=TEMPORAL_METRICS,
    ),
    Dataset(
        "didemo", "DiDeMo", TEMPORAL_GROUNDING, "temporal/didemo", CHUNKS, 4,
        annotations="annotations", videos="videos", eval_splits=(Split("test"),), metrics=TEMPORAL_METRICS,
    ),
)  # fmt: skip

BY_NAME: dict[str, Dataset] = {d.name: d for d in DATASETS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


class UnknownDataset(KeyError):
    """A name that is not in `DATASETS` (callers turn it into their stage's error)."""


def dataset(name: str) -> Dataset:
    """The entry of `name`; `UnknownDataset` (naming the known ones) otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownDataset(f"unknown dataset {name!r}; known: {', '.join(NAMES)}") from None


def of_task(task: str) -> tuple[Dataset, ...]:
    return tuple(d for d in DATASETS if d.task == task)


def of_reader(reader: str) -> tuple[Dataset, ...]:
    return tuple(d for d in DATASETS if d.reader == reader)


def upstream_repeats() -> dict[str, float]:
    """Upstream's repeat factor of every dataset, by name."""
    return {d.name: d.repeat for d in DATASETS}
