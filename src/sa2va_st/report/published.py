"""Published numbers the scorecard sets beside ours (the one machine-readable home of docs/upstream.md's
"published numbers" table).

Values are as published: percentages. ``UPSTREAM`` is Sa2VA-4B, the model whose recipe the pipeline
reproduces for the spatial tasks (upstream's spatial-temporal code publishes no numbers of its own, and
no temporal ones); ``ANCHORS`` are the temporal models the mission measures itself against.
Each entry: ``(dataset, split) -> {metric key: value}``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    model: str
    source: str
    values: dict[tuple[str, str], dict[str, float]]


UPSTREAM = Published(
    "Sa2VA-4B",
    "Sa2VA paper, Table 8 (InternVL2.5 base); ReVOS from Table 6 (InternVL2 base)",
    {
        ("refcoco", "val"): {"cIoU": 82.4},
        ("refcoco+", "val"): {"cIoU": 77.6},
        ("refcocog", "val"): {"cIoU": 79.7},
        ("mevis", "valid_u"): {"J&F": 55.9},
        ("rvos", "valid"): {"J&F": 71.3},
        ("revos", "valid"): {"J&F": 53.2},
    },
)

_CHARADES = ("charades", "test")

ANCHORS: tuple[Published, ...] = (
    Published("UniVTG", "UniVTG paper", {_CHARADES: {"R1@0.3": 72.6, "R1@0.5": 60.2, "R1@0.7": 38.6, "mIoU": 52.2}}),
    Published(
        "VideoChat-TPO (fine-tuned)",
        "VideoChat-TPO paper",
        {_CHARADES: {"R1@0.3": 77.0, "R1@0.5": 65.0, "R1@0.7": 40.7, "mIoU": 55.0}},
    ),
    Published("Mr.BLIP", "Mr.BLIP paper", {_CHARADES: {"R1@0.5": 69.3, "R1@0.7": 49.3, "mIoU": 58.6}}),
    Published("MomentSeg-3B", "MomentSeg paper", {_CHARADES: {"R1@0.3": 76.1, "R1@0.5": 58.2, "mIoU": 50.0}}),
    Published(
        "E.T.Chat (zero-shot)",
        "E.T.Bench paper",
        {_CHARADES: {"R1@0.3": 65.7, "R1@0.5": 45.9, "R1@0.7": 20.0, "mIoU": 42.3}},
    ),
)


def published_for(dataset: str, split: str) -> list[tuple[str, str, float]]:
    """``(model, metric, value)`` of every published number of one split, upstream first."""
    found = []
    for source in (UPSTREAM, *ANCHORS):
        for metric, value in source.values.get((dataset, split), {}).items():
            found.append((source.model, metric, value))
    return found
