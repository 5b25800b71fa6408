"""The validation report of a manifests build: JSON (schema-checked) and Markdown for a person.

JSON (``report.json``; schema ``workflow/schemas/manifests/report.schema.json``)::

    {format, format_version, kind: "spatial" | "temporal",
     special_jsons_dir, data_root, [features_label, fps],
     reasons: {dropped: {reason: meaning}, clipped: {reason: meaning}}  (per manifest kind)
     datasets: {name: {status: "built", kind, splits: {split: {manifest, sha256, rows_in, kept,
                         clipped: {rows, by_reason}, dropped: {rows, by_reason}, notes, examples}}}
                     | {status: "skipped", reason}},
     totals: {rows_in, kept, clipped, dropped}}

Invariant per split: ``rows_in == kept + dropped.rows``; clipped rows are kept rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from ..atomic import atomic_write_json, atomic_write_text
from ..errors import ManifestError
from .schemas import CLIP_REASONS, DROP_REASONS, FORMAT, FORMAT_VERSION, default_schema_dir

REPORT_JSON, REPORT_MD = "report.json", "report.md"


def new_report(kind: str, kinds: list[str], **fields: Any) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        **fields,
        "reasons": {k: {"dropped": DROP_REASONS[k], "clipped": CLIP_REASONS[k]} for k in kinds},
        "datasets": {},
        "totals": {"rows_in": 0, "kept": 0, "clipped": 0, "dropped": 0},
    }


def add_totals(report: dict) -> dict:
    totals = {"rows_in": 0, "kept": 0, "clipped": 0, "dropped": 0}
    for entry in report["datasets"].values():
        for split in entry.get("splits", {}).values():
            totals["rows_in"] += split["rows_in"]
            totals["kept"] += split["kept"]
            totals["clipped"] += split["clipped"]["rows"]
            totals["dropped"] += split["dropped"]["rows"]
    report["totals"] = totals
    return report


def check_report(report: dict, schema_root: str | Path | None = None) -> None:
    """The report against ``{schema_root}/manifests/report.schema.json``, and its counts add up."""
    folder = Path(schema_root) / "manifests" if schema_root is not None else default_schema_dir()
    path = folder / "report.schema.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ManifestError(
            f"cannot read the manifests report schema ({error})",
            file=str(path),
            fix="run from a checkout of the project",
        ) from None
    validator = jsonschema.Draft202012Validator(schema)
    error = next(iter(sorted(validator.iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))), None)
    if error is not None:  # a bug in this module, never bad input
        where = "/".join(map(str, error.absolute_path)) or "(top level)"
        raise AssertionError(f"manifests report breaks its schema at {where}: {error.message}")
    for name, entry in report["datasets"].items():
        for split, s in entry.get("splits", {}).items():
            if s["rows_in"] != s["kept"] + s["dropped"]["rows"] or s["dropped"]["rows"] != sum(
                s["dropped"]["by_reason"].values()
            ):
                raise AssertionError(f"report counts of {name}/{split} do not add up: {s}")


def write_report(report: dict, folder: Path, title: str, schema_root: str | Path | None = None) -> None:
    """report.json and report.md in `folder`, each atomically (JSON last: it is the rule's output)."""
    check_report(report, schema_root)
    atomic_write_text(folder / REPORT_MD, markdown(report, title))
    atomic_write_json(folder / REPORT_JSON, report)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def markdown(report: dict, title: str) -> str:
    lines = [f"# {title}", ""]
    settings = [f"special_jsons: `{report['special_jsons_dir']}`", f"data_root: `{report['data_root']}`"]
    if report["kind"] == "temporal":
        settings += [f"features: `{report['features_label']}`", f"fps: {report['fps']:g}"]
    lines += ["; ".join(settings), ""]
    t = report["totals"]
    lines += [
        f"**{t['rows_in']}** rows in, **{t['kept']}** kept ({t['clipped']} of them clipped), **{t['dropped']}** dropped.",
        "",
    ]

    built = [(n, e) for n, e in report["datasets"].items() if e["status"] == "built"]
    lines += ["| dataset | split | in | kept | clipped | dropped | manifest |", "|---|---|---:|---:|---:|---:|---|"]
    for name, entry in built:
        for split, s in entry["splits"].items():
            lines.append(
                f"| {_cell(name)} | {_cell(split)} | {s['rows_in']} | {s['kept']} | {s['clipped']['rows']} | {s['dropped']['rows']} | `{s['manifest']}` |"
            )
    lines.append(f"| **total** | | {t['rows_in']} | {t['kept']} | {t['clipped']} | {t['dropped']} | |")
    lines.append("")
    skipped = [(n, e) for n, e in report["datasets"].items() if e["status"] == "skipped"]
    if skipped:
        lines += ["Skipped: " + "; ".join(f"{n} ({e['reason']})" for n, e in skipped), ""]

    for kind, reasons in report["reasons"].items():
        rows = [(n, e) for n, e in built if e["kind"] == kind]
        if not rows:
            continue
        for what in ("dropped", "clipped"):
            names = list(reasons[what])
            if not names:
                continue
            lines += [f"## {kind}: {what} by reason", ""]
            lines += ["| dataset | split | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
            for name, entry in rows:
                for split, s in entry["splits"].items():
                    counts = s[what]["by_reason"]
                    lines.append(
                        f"| {_cell(name)} | {_cell(split)} | " + " | ".join(str(counts[r]) for r in names) + " |"
                    )
            lines.append("")
            lines += [f"- `{r}`: {meaning}" for r, meaning in reasons[what].items()]
            lines.append("")

    notes = [(n, sp, s["notes"]) for n, e in built for sp, s in e["splits"].items() if s["notes"]]
    if notes:
        lines += ["## Notes", ""]
        lines += [f"- {n}/{sp}: " + ", ".join(f"{k} {v}" for k, v in note.items()) for n, sp, note in notes]
        lines.append("")

    examples = [(n, sp, s["examples"]) for n, e in built for sp, s in e["splits"].items() if s["examples"]]
    if examples:
        lines += ["## Dropped rows (first few per reason)", ""]
        for name, split, by_reason in examples:
            for reason, listed in by_reason.items():
                shown = "; ".join(f"`{_cell(x['id'])}` ({_cell(x['detail'])})" for x in listed)
                lines.append(f"- {name}/{split} `{reason}`: {shown}")
        lines.append("")
    return "\n".join(lines)
