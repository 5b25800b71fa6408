"""The report page: one self-contained HTML file (tables, inline SVG figures, PNG pictures as data URIs)
that a researcher opens instead of assembling numbers by hand. Sections, in order:

1. **Scorecard** (`scorecard.scorecard_rows`): every benchmark split and metric, trained and untrained,
   beside the published numbers, with the difference and where each value comes from.
2. **Provenance**: the dataset revision (hub commit of each archive), the feature model, weights and
   fps, the config hash, the git commit, the seed, package versions.
3. **Data health**: the manifests' kept / clipped / dropped rows by reason, per dataset and split.
4. **Training**: loss per task, learning rate, throughput; the checkpoint ledger (which step was
   exported and scored); the training-answers check.
5. **Temporal**: per split, R1 by window length, the IoU histogram, a few timelines, and the ceiling
   the answer grid imposes (the best R1 any answer on the grid could reach).
6. **Spatial**: per split its counts and scores; pictures of a few answers and of the worst ones.

Everything is read from files the pipeline wrote (`ReportInputs`); nothing here runs a model.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from .. import catalog, paths
from ..evaluation.metrics import recall_ceiling
from ..evaluation.predict import read_predictions
from ..evaluation.score import temporal_truths
from . import gallery, plots
from .published import ANCHORS, UPSTREAM
from .scorecard import read_metrics, scorecard_rows

PACKAGES = ("torch", "transformers", "peft", "deepspeed", "open_clip_torch", "huggingface_hub", "snakemake", "numpy")

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
.scored { color: #1a7f37; } .server { color: #9a6700; } .missing { color: #999; }
.note { background: #fff8c5; padding: 0.5em 1em; border-left: 4px solid #d4a72c; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figcaption { font-size: 12px; color: #555; }
"""


@dataclass
class ReportInputs:
    """Where the page's facts are, relative to the run directory (``root``)."""

    root: Path
    config: dict[str, Any]
    models: Sequence[str]
    train_metrics: Path | None = None
    training_answers: Path | None = None
    manifest_reports: Sequence[Path] = ()
    spatial_manifests: Path | None = None
    temporal_manifests: Path | None = None
    receipts: Sequence[Path] = ()
    feature_identities: Sequence[Path] = ()
    predictions: Mapping[str, Mapping[tuple[str, str], Sequence[Path]]] = field(default_factory=dict)
    submissions: Sequence[Path] = ()
    random_sam2: bool = False


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], text_columns: int = 1) -> str:
    def cell(tag: str, i: int, value: Any) -> str:
        cls = ' class="text"' if i < text_columns else ""
        return f"<{tag}{cls}>{value}</{tag}>"

    head = "".join(cell("th", i, _e(h)) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _png(data: bytes, caption: str) -> str:
    uri = base64.b64encode(data).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{uri}"><figcaption>{_e(caption)}</figcaption></figure>'


# ----------------------------------------------------------------------------- sections


def scorecard_section(inputs: ReportInputs, metrics: Mapping[str, Mapping[tuple[str, str], dict]]) -> str:
    rows = scorecard_rows({m: metrics.get(m, {}) for m in inputs.models})
    status_class = {"scored here": "scored", "needs server": "server", "not scored": "missing"}
    table_rows = []
    for r in rows:
        published = "; ".join(f"{_e(who)} {v:.1f}" for who, v in r["published"])
        diff = "" if r["difference"] is None else f"{r['difference']:+.1f}"
        status = f'<span class="{status_class[r["status"]]}">{_e(r["status"])}</span>'
        metric = r["metric"] + (" (random SAM2)" if inputs.random_sam2 and r["metric"] in catalog.MASK_METRICS else "")
        table_rows.append(
            [_e(r["benchmark"]), _e(metric), *(_pct(r["ours"].get(m)) for m in inputs.models), published, diff,
             status, "" if r["n"] is None else r["n"]]
        )  # fmt: skip
    header = ["benchmark", "metric", *inputs.models, "published", "difference", "status", "n"]
    note = (
        "<p>Values in %. <i>difference</i>: "
        f"{_e(inputs.models[0] if inputs.models else '')} minus {_e(UPSTREAM.model)} ({_e(UPSTREAM.source)}), or "
        f"minus the best temporal anchor ({', '.join(_e(a.model) for a in ANCHORS)}) where upstream publishes none. "
        "Video grounding is scored by boxes on the shown frames (Acc@0.5, box_mIoU) and by J&amp;F of SAM2's masks, "
        "propagated through every frame of the clip from the boxes answered on the shown frames; cIoU and gIoU "
        "score SAM2's mask of the answered box against the annotation's mask.</p>"
    )
    sam2 = (
        '<p class="note">SAM2 in this run has random weights (the demo\'s tiny preset): any mask number or '
        "picture says nothing about a real model.</p>"
        if inputs.random_sam2
        else ""
    )
    return f"<h2 id='scorecard'>Scorecard</h2>{sam2}{note}{_table(header, table_rows, 2)}{_submissions(inputs)}"


def _submissions(inputs: ReportInputs) -> str:
    """The archives written for the splits a server scores (what to upload, and how much is in each)."""
    if not inputs.submissions:
        return ""
    rows = []
    for path in inputs.submissions:
        with zipfile.ZipFile(inputs.root / path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".png")]
        expressions = {n.rsplit("/", 1)[0] for n in names}
        rows.append([f"<code>{_e(path)}</code>", len(expressions), len(names)])
    return (
        "<p><i>needs server</i>: the labels of these splits are held by their evaluation servers; upload the "
        "archive written for each (one PNG mask per expression and frame, SAM2 propagated from the answered "
        "boxes).</p>" + _table(["archive", "expressions", "masks"], rows)
    )


def _git_commit(root: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown (not a git checkout)"


def provenance_section(inputs: ReportInputs, repo: Path) -> str:
    rows = []
    for path in inputs.receipts:
        receipt = json.loads(Path(path).read_text())
        rows.append([_e(f"dataset archive {receipt.get('archive')}"), _e(receipt.get("commit"))])
    for path in inputs.feature_identities:
        identity = json.loads(Path(path).read_text())
        rows.append(
            [_e(f"features {Path(path).parent.parent.parent.name}"),
             _e(f"{identity['model']} {identity['weights']} at {identity['fps']:g} fps (frame rule {identity['frame_rule']})")]
        )  # fmt: skip
    config_hash = hashlib.sha256(json.dumps(inputs.config, sort_keys=True).encode()).hexdigest()[:16]
    rows += [
        ["config hash (sha256 of the validated config)", config_hash],
        ["git commit", _e(_git_commit(repo))],
        ["training seed", _e(inputs.config.get("training", {}).get("seed"))],
        ["model", _e(inputs.config.get("model", {}).get("vlm"))],
    ]
    for package in PACKAGES:
        try:
            rows.append([package, _e(metadata.version(package))])
        except metadata.PackageNotFoundError:
            pass
    return f"<h2 id='provenance'>Provenance</h2>{_table(['what', 'value'], rows, 2)}"


def data_health_section(inputs: ReportInputs) -> str:
    rows = []
    for path in inputs.manifest_reports:
        report = json.loads(Path(path).read_text())
        for name, dataset in report.get("datasets", {}).items():
            for split, s in dataset.get("splits", {}).items():
                reasons = {
                    **{f"clipped: {k}": v for k, v in s["clipped"]["by_reason"].items() if v},
                    **{f"dropped: {k}": v for k, v in s["dropped"]["by_reason"].items() if v},
                }
                detail = ", ".join(f"{k} {v}" for k, v in reasons.items()) or "-"
                rows.append(
                    [_e(name), _e(split), s["rows_in"], s["kept"], s["clipped"]["rows"], s["dropped"]["rows"],
                     _e(detail)]
                )  # fmt: skip
    header = ["dataset", "split", "rows in", "kept", "clipped", "dropped", "by reason"]
    return f"<h2 id='data'>Data health</h2>{_table(header, rows, 2)}"


def training_section(inputs: ReportInputs) -> str:
    if inputs.train_metrics is None or not Path(inputs.train_metrics).is_file():
        return "<h2 id='training'>Training</h2><p>No training metrics.</p>"
    records = [json.loads(line) for line in Path(inputs.train_metrics).read_text().splitlines() if line.strip()]
    parts = [f"<h2 id='training'>Training</h2>{_figure(plots.training_curves(records), 'training metrics')}"]
    checkpoints = [r for r in records if r.get("event") == "checkpoint"]
    last = max((r["step"] for r in records if "step" in r), default=None)
    ledger = [[_e(r["path"]), r["step"], "exported and scored" if r["step"] == last else ""] for r in checkpoints]
    parts.append("<h3>Checkpoints</h3>" + _table(["checkpoint", "step", ""], ledger))
    if inputs.training_answers and Path(inputs.training_answers).is_file():
        answers = json.loads(Path(inputs.training_answers).read_text())
        rows = [
            [_e(task), t["asked"], t["correct"], _pct(None if t["fraction"] is None else 100 * t["fraction"]),
             f"{t['frames_correct']} of {t['frames_asked']}" if "frames_asked" in t else ""]
            for task, t in answers["tasks"].items()
        ]  # fmt: skip
        parts.append(
            "<h3>Training samples answered through the inference API</h3>"
            "<p>A video sample is correct when every frame is; its frames are also counted one by one.</p>"
            + _table(["task", "asked", "correct", "%", "frames correct"], rows)
        )
    return "".join(parts)


def _manifest(folder: Path | None, dataset: str, split: str, root: Path) -> pd.DataFrame | None:
    if folder is None:
        return None
    path = root / paths.manifest(str(folder), dataset, split)
    return pd.read_parquet(path) if path.is_file() else None


def temporal_section(inputs: ReportInputs) -> str:
    parts = ["<h2 id='temporal'>Temporal grounding</h2>"]
    model = inputs.models[0] if inputs.models else None
    num_bins = inputs.config.get("model", {}).get("temporal", {}).get("num_tokens", 100)
    fps = inputs.config.get("fps")
    for (dataset, split), files in sorted(inputs.predictions.get(model, {}).items()):
        if catalog.dataset(dataset).task != catalog.TEMPORAL_GROUNDING:
            continue
        records = read_predictions(files)
        svg, table = plots.r1_by_length(records)
        truths = temporal_truths(records)
        durations = [r["duration"] for r in records]
        ceiling_rows = []
        for label, grid in (
            (f"{num_bins} answer bins", {"n_bins": num_bins}),
            (f"features at {fps:g} fps", {"fps": fps}),
        ):
            c = recall_ceiling(truths, durations, **grid)
            ceiling_rows.append([_e(label), *(_pct(100 * c[k]) for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU"))])
        parts += [
            f"<h3>{_e(catalog.dataset(dataset).title)} {_e(split)} ({_e(model)}, {len(records)} queries)</h3>",
            _figure(svg, "R1@0.5 by true window length"),
            _figure(plots.iou_histogram(records), "IoU histogram"),
            _table(["length", "queries", "R1@0.5 %"], [[_e(t["bucket"]), t["n"], _pct(None if t["R1"] is None else 100 * t["R1"])] for t in table]),
            "<p>The ceiling the grid imposes: the best R1 any answer on the grid could reach.</p>",
            _table(["grid", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU"], ceiling_rows),
            _figure(plots.timelines(records), "timelines"),
        ]  # fmt: skip
    return "".join(parts)


def spatial_section(
    inputs: ReportInputs, metrics: Mapping[str, Mapping[tuple[str, str], dict]], pictures_per_split: int = 3
) -> str:
    parts = ["<h2 id='spatial'>Spatial grounding</h2>"]
    rows = []
    for d in catalog.DATASETS:
        if d.task == catalog.TEMPORAL_GROUNDING:
            continue
        for s in d.eval_splits:
            for model in inputs.models:
                m = metrics.get(model, {}).get((d.name, s.name))
                if m:
                    masks = [_pct(100 * m[k]) if k in m else "" for k in ("cIoU", "gIoU", "J&F")]
                    rows.append(
                        [_e(f"{d.title} {s.name}"), _e(model), m["n"], m["unparseable"],
                         _pct(100 * m["Acc@0.5"]), _pct(100 * m["box_mIoU"]), *masks]
                    )  # fmt: skip
    header = ["split", "model", "n", "unparseable", "Acc@0.5 %", "box mIoU %", "cIoU %", "gIoU %", "J&F %"]
    parts.append(_table(header, rows, 2))
    model = inputs.models[0] if inputs.models else None
    parts.append(
        "<p>Green: the expected boxes; red: the answered ones. Image answers with masks show a second panel: "
        "the annotation's mask tinted green, SAM2's mask of the answered boxes tinted red"
        + (" (SAM2 with random weights: its masks mean nothing)" if inputs.random_sam2 else "")
        + ".</p>"
    )
    for (dataset, split), files in sorted(inputs.predictions.get(model, {}).items()):
        task = catalog.dataset(dataset).task
        if task == catalog.TEMPORAL_GROUNDING:
            continue
        manifest = _manifest(inputs.spatial_manifests, dataset, split, inputs.root)
        if manifest is None:
            continue
        by_id = {str(row["id"]): row for row in manifest.to_dict("records")}
        records = [r for r in read_predictions(files) if r["expected"] is not None and r["id"] in by_id]
        examples, failures = gallery.examples_and_failures(records, pictures_per_split)
        parts.append(f"<h3>{_e(catalog.dataset(dataset).title)} {_e(split)} ({_e(model)})</h3>")
        for kind, chosen in (("example", examples), ("worst", failures)):
            for r in chosen:
                picture = gallery.picture(r, by_id[r["id"]], inputs.root)
                parts.append(_png(picture, f"{kind}: {r['sentence'][:60]} (IoU {gallery.answer_iou(r):.2f})"))
    return "".join(parts)


def build_report(inputs: ReportInputs, repo: Path) -> str:
    """The whole page (see the module docstring)."""
    metrics = read_metrics(inputs.models, inputs.root)
    sections = [
        scorecard_section(inputs, metrics),
        provenance_section(inputs, repo),
        data_health_section(inputs),
        training_section(inputs),
        temporal_section(inputs),
        spatial_section(inputs, metrics),
    ]
    nav = " · ".join(
        f"<a href='#{a}'>{t}</a>"
        for a, t in (("scorecard", "Scorecard"), ("provenance", "Provenance"), ("data", "Data health"),
                     ("training", "Training"), ("temporal", "Temporal"), ("spatial", "Spatial"))
    )  # fmt: skip
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sa2va-st report</title>"
        f"<style>{STYLE}</style></head><body><h1>sa2va-st: {_e(paths.run_name(inputs.config['work_dir']))}</h1>"
        f"<p>{nav}</p>{''.join(sections)}</body></html>"
    )
