"""The report's figures, drawn with matplotlib (Agg) and returned as SVG text to inline in the page.

Every function takes plain records (training metrics, prediction records) and returns one SVG; none
reads files or runs a model.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..evaluation.metrics import top1_ious  # noqa: E402
from ..evaluation.score import temporal_truths  # noqa: E402

# Moment-DETR's length buckets (QVHighlights): a window up to 10 s is short, over 30 s long.
LENGTH_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("short (<= 10 s)", 0.0, 10.0),
    ("middle (10-30 s)", 10.0, 30.0),
    ("long (> 30 s)", 30.0, float("inf")),
)


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: no XML prolog or doctype


def training_curves(records: Sequence[Mapping[str, Any]]) -> str:
    """Loss per task (train records, and held-out points), learning rate and samples/s against the step."""
    train = [r for r in records if r.get("event") == "train"]
    held = [r for r in records if r.get("event") == "held_out"]
    figure, (loss_ax, lr_ax, speed_ax) = plt.subplots(1, 3, figsize=(13, 3.4))
    tasks = sorted({t for r in train for t in r["loss"]} | {t for r in held for t in r["loss"]})
    for i, task in enumerate(tasks):
        colour = f"C{i}"
        points = [(r["step"], r["loss"][task]) for r in train if r["loss"].get(task) is not None]
        if points:
            loss_ax.plot(*zip(*points), color=colour, label=f"{task} (train)")
        points = [(r["step"], r["loss"][task]) for r in held if r["loss"].get(task) is not None]
        if points:
            loss_ax.plot(*zip(*points), "o--", color=colour, label=f"{task} (held out)")
    loss_ax.set(title="loss per task", xlabel="optimizer step", yscale="log")
    loss_ax.legend(fontsize=7)
    if train:
        steps = [r["step"] for r in train]
        lr_ax.plot(steps, [r["lr"] for r in train], color="C3")
        speed_ax.plot(steps, [r.get("samples_per_s", np.nan) for r in train], color="C4")
    lr_ax.set(title="learning rate", xlabel="optimizer step")
    speed_ax.set(title="samples / s (all ranks)", xlabel="optimizer step")
    return _svg(figure)


def _ious(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The top-1 IoU the metrics score (`metrics.top1_ious`: unparseable answers at 0)."""
    return top1_ious([r["prediction"] for r in records], temporal_truths(records))


def r1_by_length(records: Sequence[Mapping[str, Any]], threshold: float = 0.5) -> tuple[str, list[dict[str, Any]]]:
    """R1@threshold per ground-truth length bucket (`LENGTH_BUCKETS`): the SVG and the table."""
    ious = _ious(records)
    lengths = np.array([r["expected"][1] - r["expected"][0] for r in records])
    table = []
    for name, low, high in LENGTH_BUCKETS:
        inside = (lengths > low) & (lengths <= high) if low > 0 else lengths <= high
        n = int(inside.sum())
        table.append({"bucket": name, "n": n, "R1": float((ious[inside] >= threshold).mean()) if n else None})
    figure, ax = plt.subplots(figsize=(4.5, 3))
    ax.bar([t["bucket"] for t in table], [t["R1"] or 0.0 for t in table], color="C0")
    for i, t in enumerate(table):
        ax.text(i, (t["R1"] or 0.0) + 0.02, f"n={t['n']}", ha="center", fontsize=8)
    ax.set(title=f"R1@{threshold:g} by window length", ylim=(0, 1.1))
    ax.tick_params(axis="x", labelsize=7)
    return _svg(figure), table


def iou_histogram(records: Sequence[Mapping[str, Any]]) -> str:
    """How the top-1 windows' IoUs spread (unparseable answers at 0)."""
    figure, ax = plt.subplots(figsize=(4.5, 3))
    ax.hist(_ious(records), bins=np.linspace(0, 1, 11), color="C2", edgecolor="white")
    ax.set(title="IoU of the answered window", xlabel="IoU with the true window", ylabel="queries")
    return _svg(figure)


def timelines(records: Sequence[Mapping[str, Any]], count: int = 8) -> str:
    """A few queries: the true window (grey) and the answered one (blue; none when unparseable)."""
    chosen = list(records)[:count]
    figure, ax = plt.subplots(figsize=(9, 0.45 * max(1, len(chosen)) + 0.8))
    for row, r in enumerate(chosen):
        duration = r.get("duration") or max(r["expected"][1], (r["prediction"] or [0, 0])[1])
        ax.broken_barh([(0, duration)], (row - 0.4, 0.8), color="#eeeeee")
        ax.broken_barh([(r["expected"][0], r["expected"][1] - r["expected"][0])], (row - 0.4, 0.4), color="#777777")
        if r["prediction"] is not None:
            p = r["prediction"]
            ax.broken_barh([(p[0], p[1] - p[0])], (row, 0.4), color="C0")
    ax.set_yticks(range(len(chosen)), [f"{r['id']}: {r['sentence'][:40]}" for r in chosen], fontsize=7)
    ax.invert_yaxis()
    ax.set(title="true (grey) and answered (blue) windows", xlabel="seconds")
    return _svg(figure)
